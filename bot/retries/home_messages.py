"""The App Home tab, built by a pure function: counts and recent requests in, a view out."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.domain.outcomes import OutcomeKind
from bot.domain.records import RequestView
from bot.rendering import limits
from bot.rendering.mrkdwn import escape, shorten
from bot.retries.log_messages import log_lines
from bot.retries.messages import _line_sections

_COUNT_LABELS = (
    ("requested", "requested"),
    (OutcomeKind.ACCEPTED.value, "accepted"),
    ("not_accepted", "not accepted"),
    ("delivered", "delivered"),
    ("failed_again", "failed again"),
)


def home(recent: Sequence[RequestView], today: dict[str, int], week: dict[str, int]) -> View:
    """The App Home tab: counts for today and this week, then the recent log."""

    def counts_line(counts: dict[str, int]) -> str:
        return " · ".join(f"*{counts.get(key, 0)}* {label}" for key, label in _COUNT_LABELS)

    blocks: list[Block] = [
        HeaderBlock(text="Partoo retries"),
        _section(f"*Today (UTC)*\n{counts_line(today)}"),
        _section(f"*Last 7 days*\n{counts_line(week)}"),
        DividerBlock(),
        _section("*Recent retries*"),
    ]
    if recent:
        sections, _shown = _line_sections(log_lines(recent), limits.MAX_VIEW_BLOCKS - len(blocks))
        blocks.extend(sections)
    else:
        text = f"No retries yet. Use `{escape('/partoo-retry <message id>')}` or a Retry button."
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=text)]))
    return View(type="home", blocks=blocks)


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=shorten(text, limits.SECTION_TEXT)))
