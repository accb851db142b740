"""The retry log as Slack shows it: one message's history (`status`), the last retries (`log`), the log channel.

Pure functions like the rest of bot.retries.messages, whose pieces they share: every line is shown whole,
packed into sections (a cut line could end inside an entity), and outside text is escaped here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.domain.businesses import Business
from bot.domain.retry_requests import AttemptView, BatchView, RequestView
from bot.rendering import mrkdwn
from bot.rendering.message import SlackMessage
from bot.rendering.mrkdwn import escape, shorten
from bot.retries.messages import (
    MAX_BLOCKS,
    _context,
    _fallback,
    _line_sections,
    _section,
    outcome_label,
    outcome_sentence,
)

# chat.postMessage refuses blocks totalling more than about 12,000 characters (msg_blocks_too_long, not in the
# documented limits; bolt-js #2509), so a log channel post holds at most three full sections.
LOG_POST_SECTIONS = 3


def status(
    message_id: int,
    history: Sequence[tuple[RequestView, BatchView, Sequence[AttemptView]]],
    permalinks: dict[int, str],
    alert_post_error: str | None = None,
    *,
    history_start: float | None = None,
    business: Business | None = None,
) -> SlackMessage:
    """The whole retry history of one Partoo message, as far back as the log keeps it (and why its alert
    could not be posted, if so). `business`: the message's business, when a webhook named it."""
    kept = history_kept(history_start)
    notes: list[Block] = [_context(f"*Business*: {mrkdwn.business(business)}")] if business else []
    if kept:
        notes.append(_context(kept))
    if alert_post_error:
        notes.append(
            _section(
                f":warning: The failure alert for this message could not be posted in Slack: "
                f"`{escape(shorten(alert_post_error, 64))}`."
            )
        )
    if not history:
        text = f"No retry of Partoo message `{message_id}` is in the log."
        return SlackMessage(text=text, blocks=[_section(text), *notes])
    groups: list[list[Block]] = []
    for request, batch, attempts in history[-12:]:
        where = f" in {mrkdwn.channel(batch.channel_id)}" if batch.channel_id else ""
        link = f" · <{permalinks[batch.id]}|thread>" if batch.id in permalinks else ""
        lines = [
            f"*{outcome_label(request.outcome)}* · asked by {mrkdwn.user(request.requested_by)} "
            f"{mrkdwn.when(request.requested_at)} by {batch.source}{where}{link}",
            outcome_sentence(request),
        ]
        for attempt in attempts[-8:]:
            answer = f"HTTP {attempt.http_status}" if attempt.http_status else "no HTTP answer"
            latency = f", {attempt.latency_ms:.0f} ms" if attempt.latency_ms is not None else ""
            detail = f": {escape(shorten(attempt.detail, 200))}" if attempt.detail else ""
            kind = attempt.outcome.value if attempt.outcome else "in flight"
            lines.append(f"  ↳ attempt {mrkdwn.when(attempt.started_at)}: {kind} ({answer}{latency}){detail}")
        groups.append(_line_sections(lines, MAX_BLOCKS)[0])
    # Long attempt details take several sections; the newest requests that fit beside the header and the
    # "showing" note are kept whole rather than any being cut.
    while len(groups) > 1 and sum(map(len, groups)) > MAX_BLOCKS - 2:
        groups.pop(0)
    blocks: list[Block] = [HeaderBlock(text=shorten(f"Partoo message {message_id}", 150))]
    blocks.extend(block for group in groups for block in group)
    if len(groups) < len(history):
        blocks.append(_context(f"Showing the last {len(groups)} of {len(history)} requests."))
    blocks.extend(notes)
    text = f"Retry history of Partoo message {message_id}: {len(history)} requests."
    return SlackMessage(text=text, blocks=blocks)


def log_lines(requests: Sequence[RequestView], businesses: Mapping[int, Business] | None = None) -> list[str]:
    """One line a retry; with its message's business (by message id) when known."""
    known = businesses or {}
    return [
        f"{outcome_label(r.outcome)} · `{r.message_id}`{_business(known.get(r.message_id))} · "
        f"{mrkdwn.user(r.requested_by)} · {mrkdwn.when(r.requested_at)}"
        for r in requests
    ]


def _business(business: Business | None) -> str:
    return f" · {mrkdwn.business(business, 60)}" if business else ""


def recent_log(requests: Sequence[RequestView]) -> SlackMessage:
    """The last N retries, newest first."""
    if not requests:
        text = "No retries in the log yet."
        return SlackMessage(text=text, blocks=[_section(text)])
    sections, shown = _line_sections(log_lines(requests), MAX_BLOCKS - 1)
    # The heading counts the lines shown, so it stays true even if they ever outgrew one message.
    text = "The last retry" if shown == 1 else f"The last {shown} retries, newest first"
    return SlackMessage(text=text, blocks=[_section(f"*{text}*"), *sections])


def log_channel_posts(requests: Sequence[RequestView]) -> list[tuple[SlackMessage, Sequence[RequestView]]]:
    """The posts in SLACK_LOG_CHANNEL for a batch of finished retries, each with the retries it shows.

    Every line is shown whole: over several sections, and over several posts when one holds too few.
    """
    posts: list[tuple[SlackMessage, Sequence[RequestView]]] = []
    rest = list(requests)
    while rest:
        lines = log_lines(rest)
        sections, shown = _line_sections(lines, LOG_POST_SECTIONS)
        posts.append((SlackMessage(text=_fallback("Retry outcomes:", lines[:shown]), blocks=sections), rest[:shown]))
        rest = rest[shown:]
    return posts


def history_kept(start: float | None) -> str | None:
    """Where the log begins when RETENTION_DAYS prunes it (None: it keeps everything)."""
    return f"The log keeps finished retries since {mrkdwn.when(start)} (older ones are pruned)." if start else None
