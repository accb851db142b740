"""What one check of `partoo-retry-bot check` found: ✓, ✗ or skipped, a detail, and a hint under a problem."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(Enum):
    OK = "✓"
    PROBLEM = "✗"
    SKIPPED = "-"


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    detail: str
    hint: str | None = None

    def line(self) -> str:
        text = f"{self.status.value} {self.name}: {self.detail}"
        if self.hint:
            text += f"\n    {self.hint}"
        return text


def ok(name: str, detail: str, hint: str | None = None) -> Result:
    return Result(name, Status.OK, detail, hint)


def problem(name: str, detail: str, hint: str | None = None) -> Result:
    return Result(name, Status.PROBLEM, detail, hint)


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
