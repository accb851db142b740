"""The App Home tab, built by a pure function: counts and recent requests in, a view out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.domain.businesses import Business
from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import RequestView
from bot.domain.webhook_activity import WebhookActivity
from bot.rendering import limits, mrkdwn
from bot.rendering.mrkdwn import escape, shorten
from bot.retries.log_messages import history_kept, log_lines
from bot.retries.messages import _line_sections

_COUNT_LABELS = (
    ("requested", "requested"),
    (OutcomeKind.ACCEPTED.value, "accepted"),
    ("not_accepted", "not accepted"),
    ("delivered", "delivered"),
    ("failed_again", "failed again"),
)


def home(
    recent: Sequence[RequestView],
    today: dict[str, int],
    week: dict[str, int],
    *,
    webhooks: WebhookActivity | None = None,
    history_start: float | None = None,
    now: float | None = None,
    report: Sequence[Block] = (),
    businesses: Mapping[int, Business] | None = None,
) -> View:
    """The App Home tab: counts for today and this week, the weekly report's blocks when given, the recent log
    (with each message's business, by message id, where known)."""

    def counts_line(counts: dict[str, int]) -> str:
        return " · ".join(f"*{counts.get(key, 0)}* {label}" for key, label in _COUNT_LABELS)

    blocks: list[Block] = [
        HeaderBlock(text="Partoo retries"),
        _section(f"*Today (UTC)*\n{counts_line(today)}"),
        _section(f"*Last 7 days*\n{counts_line(week)}"),
        *report,
        DividerBlock(),
        _section("*Recent retries*"),
    ]
    if recent:
        sections, _shown = _line_sections(log_lines(recent, businesses), limits.MAX_VIEW_BLOCKS - len(blocks))
        blocks.extend(sections)
    else:
        text = f"No retries yet. Use `{escape('/partoo-retry <message id>')}` or a Retry button."
        blocks.append(_context(text))
    if webhooks is not None:
        blocks.append(_context(_webhooks_line(webhooks, now or webhooks.last_at or 0.0)))
    if kept := history_kept(history_start):
        blocks.append(_context(kept))
    return View(type="home", blocks=blocks)


def _webhooks_line(activity: WebhookActivity, now: float) -> str:
    if activity.last_at is None:
        return "*Partoo webhooks*: none received yet"
    ago = mrkdwn.duration(now - activity.last_at)
    return (
        f"*Partoo webhooks*: last one {mrkdwn.when(activity.last_at)} ({ago} ago) · "
        f"*{activity.last_hour:,}* in the last hour"
    )


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=shorten(text, limits.SECTION_TEXT)))
