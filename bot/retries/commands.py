"""Parsing the text of `/partoo-retry`: what the user asked for, or what is wrong with it."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from bot.domain.bulk import SUBCOMMAND as FAILED
from bot.domain.bulk import Filter, parse_filter
from bot.domain.commands import (
    DEFAULT_LOG_SIZE,
    MAX_IDS,
    MAX_LOG_SIZE,
    MAX_MESSAGE_ID,
    ascii_number,
    is_ascii_number,
)
from bot.rendering.mrkdwn import quote_code

_SEPARATORS = re.compile(r"[\s,]+")
# The last word of `/partoo-retry 4567 anyway`.
ANYWAY = "anyway"
SILENCES = "silences"


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Retry:
    message_ids: tuple[int, ...]
    # `<ids> anyway`: pass a verdict that says the retry cannot succeed (asked to confirm before anything).
    anyway: bool = False


@dataclass(frozen=True)
class Status:
    message_id: int


@dataclass(frozen=True)
class Log:
    size: int


@dataclass(frozen=True)
class Failed:
    """`failed …`: make a plan of the failed messages the filter matches (nothing is sent)."""

    filter: Filter


@dataclass(frozen=True)
class Silences:
    """`silences`: list the active silences, each with End now (issue 22)."""


@dataclass(frozen=True)
class UsageError:
    problem: str


Parsed = Help | Retry | Status | Log | Failed | Silences | UsageError


def parse_command(text: str, now: float | None = None) -> Parsed:
    """Turn the command's text into a request, or a UsageError that says what was wrong."""
    tokens = [token for token in _SEPARATORS.split(text.strip()) if token]
    if not tokens or tokens[0].lower() == "help":
        return Help() if len(tokens) <= 1 else UsageError("`help` takes nothing after it.")
    keyword = tokens[0].lower()
    if keyword == "status":
        if len(tokens) != 2:
            return UsageError("`status` takes exactly one message id.")
        parsed = _message_id(tokens[1])
        return parsed if isinstance(parsed, UsageError) else Status(parsed)
    if keyword == "log":
        return _log(tokens[1:])
    if keyword == SILENCES:
        return Silences() if len(tokens) == 1 else UsageError("`silences` takes nothing after it.")
    if keyword == FAILED:
        found = parse_filter(tokens[1:], time.time() if now is None else now)
        return UsageError(found) if isinstance(found, str) else Failed(found)
    if tokens[0].isalpha():
        return UsageError(
            f"`{_shown(tokens[0])}` is not a subcommand; use `failed`, `status`, `log`, `silences` or `help`."
        )

    anyway = len(tokens) > 1 and tokens[-1].lower() == ANYWAY
    if anyway:
        tokens = tokens[:-1]
    message_ids: dict[int, None] = {}  # a dict keeps the order while collapsing duplicates
    for token in tokens:
        parsed = _message_id(token)
        if isinstance(parsed, UsageError):
            return parsed
        message_ids[parsed] = None
    if len(message_ids) > MAX_IDS:
        return UsageError(f"At most {MAX_IDS} message ids per command; you gave {len(message_ids)}.")
    return Retry(tuple(message_ids), anyway=anyway)


def _message_id(token: str) -> int | UsageError:
    # Total: every token gets a number or a UsageError, whatever its signs, digits or length.
    number = ascii_number(token, MAX_MESSAGE_ID)
    if number is not None and number > 0:
        return number
    if number == 0 or (token.startswith("-") and is_ascii_number(token[1:])):
        return UsageError(f"`{_shown(token)}` is not a message id: ids are positive.")
    if is_ascii_number(token):
        return UsageError(f"`{_shown(token)}` is too large to be a Partoo message id.")
    return UsageError(f"`{_shown(token)}` is not a message id: ids are whole numbers such as 4567.")


def _log(arguments: list[str]) -> Log | UsageError:
    if not arguments:
        return Log(DEFAULT_LOG_SIZE)
    if len(arguments) > 1:
        return UsageError("`log` takes at most one number.")
    size = ascii_number(arguments[0], MAX_LOG_SIZE)
    if size is None or size < 1:
        return UsageError(f"`log` takes a number from 1 to {MAX_LOG_SIZE}; `{_shown(arguments[0])}` is not one.")
    return Log(size)


def _shown(token: str) -> str:
    """A user's token, made safe to show inside `code` in mrkdwn."""
    return quote_code(token, limit=40)
