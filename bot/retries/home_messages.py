"""The App Home tab, built by a pure function: counts and recent requests in, a view out."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.domain.outcomes import OutcomeKind
from bot.domain.records import RequestView
from bot.rendering import limits
from bot.rendering.mrkdwn import shorten
from bot.retries.messages import log_lines

_NO_RETRIES_YET = "No retries yet. Use `/partoo-retry <message id>` or a Retry button."
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
        blocks.append(_section("\n".join(log_lines(recent))))
    else:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_NO_RETRIES_YET)]))
    return View(type="home", blocks=blocks)


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=shorten(text, limits.SECTION_TEXT)))
