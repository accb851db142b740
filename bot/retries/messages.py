"""Every message the bot posts, built by pure functions: domain objects in, blocks and fallback text out.

Outside text (Partoo's details, ids typed by users) is escaped here, at the last step before Slack.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.domain.access import AccessPolicy
from bot.domain.admission import DELIVERED
from bot.domain.commands import COMMAND, DEFAULT_LOG_SIZE, MAX_IDS, MAX_LOG_SIZE
from bot.domain.commands import STOP_ACTION_ID as STOP_ACTION_ID  # re-exported: Stop's handler and tests read it
from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import BatchView, RequestView
from bot.rendering import limits, mrkdwn
from bot.rendering.message import OUTCOME_EMOJI, SlackMessage
from bot.rendering.mrkdwn import escape, shorten

SECTION_LIMIT = limits.SECTION_TEXT
MAX_BLOCKS = limits.MAX_BLOCKS
# Slack advises keeping a message's fallback `text` under 4,000 characters (it is what notifications show).
TEXT_BUDGET = 3900
# Ids listed inline before "and N more", so that one section stays far below Slack's 3,000 characters.
INLINE_IDS = 20

USAGE = (
    f"`{COMMAND} <message id> [<message id> …]` retries Partoo messages (up to {MAX_IDS}, "
    "separated by spaces or commas)\n"
    f"`{COMMAND} <message id> … anyway` retries even where the conversation check says it cannot succeed "
    "(asks you to confirm first)\n"
    f"`{COMMAND} failed [since 2h|30m|1d|<ISO time>] [business <id>] [partner whatsapp|facebook|…] "
    "[cause closed|setup|open|unchecked]` shows a plan of the failed messages that match (default: the last "
    "day), grouped by what the bot knows; nothing is sent until you click its Retry\n"
    f"`{COMMAND} status <message id>` shows the retry history of one message\n"
    f"`{COMMAND} silences` lists the active silences (started from an alert's menu), each with End now\n"
    f"`{COMMAND} log [N]` lists the last N retries (default {DEFAULT_LOG_SIZE}, at most {MAX_LOG_SIZE})\n"
    f"`{COMMAND} help` shows this help"
)


_SHORT: dict[OutcomeKind, str] = {
    OutcomeKind.ACCEPTED: "accepted",
    OutcomeKind.REFUSED: "refused",
    OutcomeKind.BAD_KEY: "API key rejected",
    OutcomeKind.FORBIDDEN: "not allowed",
    OutcomeKind.NOT_FOUND: "not found",
    OutcomeKind.RATE_LIMITED: "rate limited, gave up",
    OutcomeKind.UNAVAILABLE: "Partoo unavailable, gave up",
    OutcomeKind.UNKNOWN: "no answer, not resent",
    OutcomeKind.SKIPPED: "not sent, cannot succeed",
    OutcomeKind.STOPPED: "stopped, not sent",
}


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=shorten(text, SECTION_LIMIT)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=shorten(text, SECTION_LIMIT))])


def _line_sections(lines: Sequence[str], max_sections: int) -> tuple[list[Block], int]:
    """Whole lines packed into sections of at most SECTION_LIMIT characters, and how many lines they hold.

    A section cut at its limit loses lines and can end inside an entity (`<!date^…>`), so lines are never cut
    (only a single line longer than a section is shortened). When `max_sections` cannot hold every line, the
    first lines that fit are kept and the caller says how many it shows.
    """
    sections: list[Block] = []
    chunk: list[str] = []
    size = shown = 0
    for line in lines:
        line = shorten(line, SECTION_LIMIT)
        if chunk and size + 1 + len(line) > SECTION_LIMIT:
            sections.append(_section("\n".join(chunk)))
            chunk, size = [], 0
        if not chunk and len(sections) == max_sections:
            break
        size += len(line) + (1 if chunk else 0)
        chunk.append(line)
        shown += 1
    if chunk:
        sections.append(_section("\n".join(chunk)))
    return sections, shown


def _fallback(heading: str, lines: Sequence[str]) -> str:
    """A heading and as many whole lines as the fallback text holds; the blocks show them all."""
    text = heading
    for shown, line in enumerate(lines):
        candidate = f"{text}\n{line}"
        more = f"\n… and {len(lines) - shown} more"
        last = shown == len(lines) - 1
        if len(candidate) > (TEXT_BUDGET if last else TEXT_BUDGET - len(more)):
            return text + more
        text = candidate
    return text


def _ids(message_ids: Sequence[int]) -> str:
    shown = ", ".join(f"`{message_id}`" for message_id in message_ids[:INLINE_IDS])
    hidden = len(message_ids) - INLINE_IDS
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def outcome_label(outcome: OutcomeKind | None) -> str:
    return f"{OUTCOME_EMOJI[outcome]} {_SHORT[outcome] if outcome else 'in progress'}"


def outcome_sentence(request: RequestView) -> str:
    """The plain-words outcome of one request, with Partoo's detail when there is one."""
    if request.outcome is None:
        return "Waiting for its turn with Partoo."
    sentence = request.outcome.sentence
    if request.outcome is OutcomeKind.REFUSED and request.detail:
        sentence = f"Partoo refused the retry: {escape(request.detail)}"
    elif request.outcome in (OutcomeKind.RATE_LIMITED, OutcomeKind.UNAVAILABLE):
        sentence = f"{request.outcome.sentence} The bot gave up after {request.attempts} attempts."
        if request.detail:
            sentence += f" Last answer: {escape(request.detail)}"
    elif request.detail and request.outcome is not OutcomeKind.ACCEPTED:
        sentence += f" ({escape(request.detail)})"
    return sentence


# -- answers to the person who typed the command (ephemeral) ------------------------------------


def usage(problem: str | None = None) -> SlackMessage:
    blocks: list[Block] = []
    if problem:
        blocks.append(_section(f":warning: {problem}"))
    # USAGE is plain text: its placeholders (`<message id>`) would read as links in mrkdwn.
    blocks.append(_section(f"*How to use it*\n{escape(USAGE)}"))
    text = f"{problem} See /partoo-retry help." if problem else "How to use /partoo-retry"
    return SlackMessage(text=text, blocks=blocks)


def not_allowed(policy: AccessPolicy) -> SlackMessage:
    """Why the user may not retry, and who may."""
    people = [mrkdwn.user(user_id) for user_id in sorted(policy.users)]
    people += [f"members of {mrkdwn.usergroup(group_id)}" for group_id in sorted(policy.usergroups)]
    parts = []
    if people:
        parts.append("Retrying Partoo messages is open to " + ", ".join(people))
    if policy.channels:
        channels = ", ".join(mrkdwn.channel(channel_id) for channel_id in sorted(policy.channels))
        parts.append(("in " if people else "Retrying Partoo messages is open in ") + channels)
    who = " ".join(parts) + "." if parts else ""
    text = f":lock: You may not retry Partoo messages here. {who} Ask a workspace admin to be added."
    return SlackMessage(text=text, blocks=[_section(text)])


def authorization_unavailable() -> SlackMessage:
    text = (
        ":warning: The bot could not check whether you may retry (Slack did not answer its "
        "user group lookup). Nothing was retried; try again in a minute."
    )
    return SlackMessage(text=text, blocks=[_section(text)])


def click_refused(reason: str) -> SlackMessage:
    text = f":no_entry_sign: {reason}"
    return SlackMessage(text=text, blocks=[_section(text)])


def queue_unavailable() -> SlackMessage:
    text = (
        ":warning: The retry log is unavailable right now (database unreachable or busy), so nothing was "
        "retried. Try again in a minute; if it lasts, tell whoever runs the bot (`/readyz` says why)."
    )
    return SlackMessage(text=text, blocks=[_section(text)])


# -- the root message of a command and its thread -----------------------------------------------


def batch_root(
    batch: BatchView,
    message_ids: Sequence[int],
    done: int = 0,
    waiting: int = 0,
    requests: Sequence[RequestView] = (),
) -> SlackMessage:
    """The channel message that says who asked to retry what; its thread gets the outcomes.

    `waiting`: posts queued behind Slack's posting limit in the channel, said here rather than kept silent.
    `requests`: the batch's requests as stored now; a many-message batch tallies their outcomes so far.
    A plan's batch (`/partoo-retry failed …`) also says its filter and how many changed since the plan.
    """
    who = mrkdwn.user(batch.requested_by)
    if batch.total == 1 and batch.plan_filter is None:
        text = f"{who} asked to retry Partoo message `{message_ids[0]}`."
        status = ":hourglass_flowing_sand: Retrying…"
    else:
        text = _many_head(batch, message_ids)
        status = f":hourglass_flowing_sand: {done}/{batch.total} done"
        if requests:
            status += _tally(requests, delivered=batch.plan_filter is not None)
    if waiting:
        status += f" · {waiting} outcomes waiting for Slack's posting limit in this channel (about one post a second)"
    blocks: list[Block] = [_section(text), _context(status)]
    blocks += _plan_context(batch)
    if batch.skipped:
        blocks.append(_context(f"Not asked again, already being retried: {_ids(list(batch.skipped))}."))
    if batch.is_bulk and done < batch.total:
        blocks.append(ActionsBlock(elements=[_stop_button(batch)]))
    return SlackMessage(text=text, blocks=blocks)


def _many_head(batch: BatchView, message_ids: Sequence[int]) -> str:
    who = mrkdwn.user(batch.requested_by)
    if batch.plan_filter is None:
        return f"{who} asked to retry {batch.total} Partoo messages: {_ids(message_ids)}."
    # The filter came through the grammar's character sets; escaped all the same, like every stored text.
    anyway = " anyway" if batch.retry_anyway else ""
    return (
        f"{who} asked to retry{anyway} the failed Partoo messages *{escape(batch.plan_filter)}* "
        f"({batch.total}, from a plan): {_ids(message_ids)}."
    )


def _tally(requests: Sequence[RequestView], *, delivered: bool) -> str:
    """Outcomes so far: accepted, refused (every answer but accepted and stopped), stopped, delivered."""
    counts = Counter(request.outcome for request in requests if request.finished_at is not None)
    accepted = counts[OutcomeKind.ACCEPTED]
    stopped = counts[OutcomeKind.STOPPED]
    refused = sum(counts.values()) - accepted - stopped
    parts = [f"{accepted} accepted", f"{refused} refused"]
    if stopped:
        parts.append(f"{stopped} stopped")
    if delivered:
        parts.append(f"{sum(1 for request in requests if request.delivery == DELIVERED)} delivered so far")
    return " · " + " · ".join(parts)


def _plan_context(batch: BatchView) -> list[Block]:
    """A plan's batch: what changed since the plan (admission refused it at Retry), said even when nothing did."""
    if batch.plan_filter is None:
        return []
    if not batch.plan_changed:
        return [_context("Nothing changed since the plan: every message it could retry was queued.")]
    count = batch.plan_changed
    return [
        _context(
            f"{count} changed since the plan (retried by someone else, delivered or otherwise settled in between): "
            f"not asked again; the answer to the Retry click names {'it' if count == 1 else 'them'}."
        )
    ]


def _stop_button(batch: BatchView) -> ButtonElement:
    return ButtonElement(
        text="Stop",
        action_id=STOP_ACTION_ID,
        value=str(batch.id),
        style="danger",
        confirm=ConfirmObject(
            title="Stop these retries?",
            text="The retries not yet sent are removed; those already on their way to Partoo finish.",
            confirm="Stop",
            deny="Keep going",
        ),
    )


def stopped(count: int, still_going: int) -> SlackMessage:
    """Told to whoever clicked Stop."""
    text = f":octagonal_sign: Stopped {count} retr{'y' if count == 1 else 'ies'} not yet sent."
    if still_going:
        going = "its way to Partoo finishes" if still_going == 1 else "their way to Partoo finish"
        text += f" {still_going} already on {going} as sent."
    return SlackMessage(text=text, blocks=[_section(text)])


def single_finished(batch: BatchView, request: RequestView) -> SlackMessage:
    """The root message of a one-id command once Partoo has answered."""
    text = f"{mrkdwn.user(batch.requested_by)} asked to retry Partoo message `{request.message_id}`."
    return SlackMessage(text=text, blocks=[_section(text), _context(outcome_label(request.outcome))])


def outcome_reply(request: RequestView) -> SlackMessage:
    """The thread reply that tells one request's outcome in plain words."""
    text = f"{OUTCOME_EMOJI[request.outcome]} Partoo message `{request.message_id}`: {outcome_sentence(request)}"
    return SlackMessage(text=text, blocks=[_section(text)])


def alert_outcome_reply(batch: BatchView, request: RequestView) -> SlackMessage:
    """The reply in an alert's thread: who retried, and what Partoo answered."""
    # A retry the conversation check kept back was asked for, not made.
    verb = "Retry asked by" if request.outcome is OutcomeKind.SKIPPED else "Retried by"
    text = f"{OUTCOME_EMOJI[request.outcome]} {verb} {mrkdwn.user(batch.requested_by)}: {outcome_sentence(request)}"
    return SlackMessage(text=text, blocks=[_section(text)])


def batch_summary(batch: BatchView, requests: Sequence[RequestView]) -> SlackMessage:
    """The root message of a many-id command once every request is finished."""
    counts = Counter(request.outcome for request in requests)
    parts = [f"{count} {_SHORT[outcome]}" for outcome, count in counts.most_common() if outcome]
    ids = [request.message_id for request in requests]
    head = _many_head(batch, ids)
    all_accepted = counts[OutcomeKind.ACCEPTED] == len(requests)
    emoji = OUTCOME_EMOJI[OutcomeKind.ACCEPTED] if all_accepted else ":ballot_box_with_check:"
    status = f"{emoji} {len(requests)}/{batch.total} done: " + ", ".join(parts) + "."
    if batch.plan_filter is not None:
        delivered = sum(1 for request in requests if request.delivery == DELIVERED)
        status += f" {delivered} delivered so far."
    blocks: list[Block] = [_section(head), _context(status), *_plan_context(batch)]
    if batch.skipped:
        blocks.append(_context(f"Not asked again, already being retried: {_ids(list(batch.skipped))}."))
    return SlackMessage(text=f"{head} {status}", blocks=blocks)


def problems_replies(requests: Sequence[RequestView]) -> list[SlackMessage]:
    """Thread replies listing every request Partoo did not accept, split to fit Slack's limits."""
    failed = [request for request in requests if request.outcome not in (OutcomeKind.ACCEPTED, OutcomeKind.SKIPPED)]
    lines = _skipped_lines(requests)
    lines += [f"{OUTCOME_EMOJI[r.outcome]} `{r.message_id}`: {outcome_sentence(r)}" for r in failed]
    failed += [request for request in requests if request.outcome is OutcomeKind.SKIPPED]
    replies: list[SlackMessage] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        line = shorten(line, 600)
        if chunk and (size + len(line) + 1 > SECTION_LIMIT - 100 or len(chunk) >= 25):
            replies.append(_lines_message(chunk, len(failed)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        replies.append(_lines_message(chunk, len(failed)))
    return replies


def _skipped_lines(requests: Sequence[RequestView]) -> list[str]:
    """Requests the conversation check kept from being sent, one line per cause rather than one per id."""
    by_cause: dict[str, list[int]] = {}
    for request in requests:
        if request.outcome is OutcomeKind.SKIPPED:
            by_cause.setdefault(request.detail or "", []).append(request.message_id)
    emoji = OUTCOME_EMOJI[OutcomeKind.SKIPPED]
    return [
        f"{emoji} {len(ids)} not sent, a retry cannot succeed: {escape(cause)} ({_ids(ids)})"
        for cause, ids in sorted(by_cause.items(), key=lambda item: -len(item[1]))
    ]


def _lines_message(lines: Sequence[str], total: int) -> SlackMessage:
    body = "\n".join(lines)
    # A long list spans several replies: each one's notification says how much of it it carries.
    heading = f"{total} messages were not retried" + (f" ({len(lines)} of them here)" if len(lines) < total else "")
    return SlackMessage(text=f"{heading}:\n{body}", blocks=[_section(body)])


def response_url_outcome(batch: BatchView, requests: Sequence[RequestView]) -> SlackMessage:
    """Everything in one message, for channels where the bot cannot post (sent via response_url)."""
    if len(requests) == 1:
        request = requests[0]
        text = (
            f"{mrkdwn.user(batch.requested_by)} asked to retry Partoo message `{request.message_id}`.\n"
            f"{OUTCOME_EMOJI[request.outcome]} {outcome_sentence(request)}"
        )
        return SlackMessage(text=text, blocks=[_section(text)])
    summary = batch_summary(batch, requests)
    blocks = list(summary.blocks)
    for reply in problems_replies(requests)[: MAX_BLOCKS - len(blocks)]:
        blocks.extend(reply.blocks)
    return SlackMessage(text=summary.text, blocks=blocks[:MAX_BLOCKS])
