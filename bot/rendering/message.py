"""A message as the bot posts it (fallback text and blocks), and the vocabulary every message shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import Block

from bot.domain.outcomes import OutcomeKind

OUTCOME_EMOJI: dict[OutcomeKind | None, str] = {
    OutcomeKind.ACCEPTED: ":white_check_mark:",
    OutcomeKind.REFUSED: ":no_entry:",
    OutcomeKind.BAD_KEY: ":key:",
    OutcomeKind.FORBIDDEN: ":no_entry:",
    OutcomeKind.NOT_FOUND: ":grey_question:",
    OutcomeKind.RATE_LIMITED: ":hourglass:",
    OutcomeKind.UNAVAILABLE: ":warning:",
    OutcomeKind.UNKNOWN: ":warning:",
    OutcomeKind.SKIPPED: ":no_entry_sign:",
    OutcomeKind.STOPPED: ":octagonal_sign:",
    None: ":hourglass_flowing_sand:",
}


@dataclass(frozen=True)
class SlackMessage:
    """A message: its fallback text (notifications, screen readers) and its blocks."""

    text: str
    blocks: Sequence[Block] = field(default_factory=tuple)

    def as_kwargs(self) -> dict[str, Any]:
        """Arguments for chat.postMessage / chat.update / response_url."""
        return {"text": self.text, "blocks": [block.to_dict() for block in self.blocks]}
