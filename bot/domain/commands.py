"""The slash command's grammar limits: how many ids one command may carry, how long a log may be."""

from __future__ import annotations

import re

COMMAND = "/partoo-retry"
# Stop on a many-message retry's progress message or on a digest whose Retry all runs (its value: the batch's
# id, or the digest's). Stable: posted messages carry it. Here, so that retries and alerts both render it.
STOP_ACTION_ID = "partoo_retry.stop"


MAX_IDS = 100


DEFAULT_LOG_SIZE = 10


MAX_LOG_SIZE = 50


# Partoo message ids are integers; the database stores them as signed 64-bit.
MAX_MESSAGE_ID = 2**63 - 1


# ASCII digits only: str.isdigit() and regex \d also accept '²' and other scripts' digits ('٤٥٦٧'), which
# int() either refuses (raising) or reads as a number nobody typed in this form.
_ASCII_DIGITS = re.compile(r"[0-9]+")


def ascii_number(token: str, maximum: int) -> int | None:
    """`token` as a whole number when it is ASCII digits only and at most `maximum`; None otherwise. Never raises.

    The length is checked before int(): a number of thousands of digits makes int() raise (Python's
    int_max_str_digits) and would be slow to convert anyway.
    """
    if _ASCII_DIGITS.fullmatch(token) is None:
        return None
    significant = token.lstrip("0") or "0"
    if len(significant) > len(str(maximum)):
        return None
    number = int(significant)
    return number if number <= maximum else None


def is_ascii_number(token: str) -> bool:
    """Whether `token` is written with ASCII digits only, however large."""
    return _ASCII_DIGITS.fullmatch(token) is not None
