"""Finding Partoo message ids in what people write: "message 4567 failed", "#4567", a forwarded email.

Pure. The rules lean towards missing an id rather than picking up personal data: a number is an id only
when it is written as one. Phone numbers, dates, times, amounts, postal and verification codes must never
be offered as ids (they would be shown back in a modal, and could be retried by mistake), so:

- numbers joined by `-`, `.`, `/` or `:` (dates, times, decimals, phone numbers, versions, addresses) and
  numbers written after `+` (international phone numbers) are never ids;
- numbers split in short groups by spaces ("06 12 34 56 78", "1 234 567") are never ids;
- numbers with a leading zero, or glued to letters, URLs, currencies or `@`, are never ids;
- a number right after a word such as "business", "conversation", "order", "code" or "phone" is not an id;
- a number is an id when written as one: after "message", "msg", "id" (and lists after them: "messages 12,
  13 and 14"), after `#`, or inside `code` quotes, as the bot itself writes ids;
- otherwise a bare number is an id only with BARE_DIGITS digits: shorter ones are years, times and postal
  codes; longer ones are phone numbers and timestamps.
"""

from __future__ import annotations

import re

from bot.domain.commands import MAX_MESSAGE_ID, ascii_number

# A bare number (no "message", `#` or `code` around it) is taken as an id only with this many digits.
BARE_DIGITS = range(6, 10)
# Ids written one after the other with spaces ("messages 4567 4568") have at least this many digits each.
MIN_LISTED_DIGITS = 4
_CONTEXT = 40
# Text longer than this is not read further: the ids people mean are near the top of a message.
MAX_TEXT = 20_000

# A run of digit groups joined by one separator each: "4567", "06 12 34 56 78", "2026-11-28", "14:02".
# ASCII digits only (\d would take '٤٥٦٧' too): ids are shown back and typed as the bot writes them.
_RUN = re.compile(r"[0-9]+(?:[ \-./:][0-9]+)*")
_NOT_ID_JOINERS = frozenset("-./:")
# Right before a run, any of these means the digits belong to something else (a URL, a phone, money).
_GLUED_BEFORE = frozenset("+-./:=?&@%$€£¥_\\")
_GLUED_AFTER = frozenset("/=?&@%$€£¥_\\")
_MARKER = re.compile(
    r"(?:\b(?:messages?|msgs?|message[\s_-]?ids?|ids?)\b\s*(?:(?:no\.?|n°|nr\.?|number|#|:)\s*)*"
    r"|#|`)$",
    re.IGNORECASE,
)
# Between two ids of one list: "12, 13 and 14", "12 / 13", "`12`, `13`".
_LIST_GAP = re.compile(r"^[`\s]*(?:,|;|&|\band\b|\bet\b|\bor\b|\bou\b)?[\s`#]*$", re.IGNORECASE)
_NOT_AN_ID_WORD = re.compile(
    r"\b(?:business(?:es)?|conversations?|conv|orgs?|organi[sz]ations?|customers?|orders?|invoices?|tickets?"
    r"|codes?|otp|pin|phones?|tel|mobile|zip|postal|postcode|siret|siren|iban|page|room|flat|street|rue|year"
    r"|amount|total|price)\b\s*(?:(?:no\.?|n°|nr\.?|number|id|#|:)\s*)*$",
    re.IGNORECASE,
)
_MONEY_AFTER = re.compile(r"^\s*(?:€|\$|£|eur\b|euros?\b|usd\b|%)", re.IGNORECASE)
# Slack's own markup: <@U123>, <#C123|name>, <!date^1700000000^…|…>, <https://…|label>.
_SLACK_ENTITY = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def find_message_ids(text: str) -> tuple[int, ...]:
    """The Partoo message ids written in `text`, in order of first appearance, without duplicates."""
    readable = _without_slack_markup(text[:MAX_TEXT])
    found: dict[int, None] = {}
    previous_end: int | None = None
    previous_was_id = False
    for match in _RUN.finditer(readable):
        groups = re.split(r"[ \-./:]", match.group())
        # Only the words right around a number decide what it is (and long texts stay linear).
        before = readable[max(0, match.start() - _CONTEXT) : match.start()]
        after = readable[match.end() : match.end() + _CONTEXT]
        gap = readable[previous_end : match.start()] if previous_end is not None else ""
        listed = previous_was_id and _LIST_GAP.match(gap) is not None
        previous_end = match.end()
        previous_was_id = False
        if not _stands_alone(before, after, match.group()):
            continue
        if _NOT_AN_ID_WORD.search(before):
            continue
        explicit = listed or bool(_MARKER.search(before))
        candidates = _candidates(groups, explicit)
        for number in candidates:
            found[number] = None
        previous_was_id = bool(candidates)
    return tuple(found)


def _without_slack_markup(text: str) -> str:
    """Drop mentions, channel links and dates; keep only the visible label of a link."""

    def label(match: re.Match[str]) -> str:
        target, shown = match.group(1), match.group(2)
        if target.startswith(("http://", "https://", "mailto:")) and shown:
            return f" {shown} "
        return " "

    return _SLACK_ENTITY.sub(label, text)


def _stands_alone(before: str, after: str, run: str) -> bool:
    if before and (before[-1].isalnum() or before[-1] in _GLUED_BEFORE):
        return False
    if after:
        first = after[0]
        if first.isalnum() or first in _GLUED_AFTER:
            return False
        # "4567." ends a sentence; "4567.5" or "4567.html" does not.
        if first in ".," and len(after) > 1 and after[1].isalnum():
            return False
        if _MONEY_AFTER.match(after):
            return False
    return not any(joiner in run for joiner in _NOT_ID_JOINERS)


def _candidates(groups: list[str], explicit: bool) -> list[int]:
    """The ids in one run of digit groups, or none when the run looks like anything else."""
    if any(group.startswith("0") for group in groups):
        return []  # phone numbers and codes start with 0; ids never do
    if len(groups) > 1 and any(len(group) < MIN_LISTED_DIGITS for group in groups):
        return []  # "06 12 34 56 78", "1 234 567": digits in short groups are not a list of ids
    numbers = [ascii_number(group, MAX_MESSAGE_ID) for group in groups if explicit or len(group) in BARE_DIGITS]
    return [number for number in numbers if number is not None]  # None: too large to be an id
