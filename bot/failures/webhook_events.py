"""Partoo's webhook deliveries, parsed into what the bot needs (pure, no I/O).

Strict with what the bot acts on (the event `type`, the message `id` and `status`): a delivery without them
is refused with a `PayloadError` whose message fits a 400 answer. Lenient with everything else: an optional
field that is missing or of the wrong type reads as unknown (None), because an alert with a blank field is
better than a lost one, and Partoo may add or change fields.

    ValueError
    └── PayloadError      the body is not a usable delivery; never raised for anything else
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.domain.message import MessageUpdate

# Partoo's deliveries are a few kilobytes; anything far larger is not one of them.
MAX_BODY_BYTES = 1024 * 1024  # Partoo events are small; 1 MiB is far beyond any real one
MESSAGE_EVENTS = frozenset({"message_created", "message_updated"})

# Message ids are stored in signed 64-bit columns.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UNSENDABLE = re.compile("[\ud800-\udfff\x00]")


class PayloadError(ValueError):
    """A delivery the bot cannot use; the message says what is wrong without repeating the input."""


@dataclass(frozen=True)
class WebhookEvent:
    """One delivery: its type, the message it is about (message events only) and its dedupe key."""

    type: str
    message: MessageUpdate | None
    dedupe_key: str
    # The parsed body, so that storing the delivery does not parse it again (never compared or shown).
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def parse_event(body: bytes) -> WebhookEvent:
    """Parse a raw delivery body; raise `PayloadError` (and nothing else) when it is unusable."""
    document = _load(body)
    if not isinstance(document, dict):
        raise PayloadError(f"the body must be a JSON object, not {_kind(document)}")
    event_type = document.get("type")
    if not isinstance(event_type, str):
        raise PayloadError(f'"type" must be a string: {_found(document, "type")}')
    message = _message_update(document) if event_type in MESSAGE_EVENTS else None
    return WebhookEvent(type=_clean(event_type), message=message, dedupe_key=_dedupe_key(document), document=document)


def for_storage(event: WebhookEvent, preview_chars: int | None) -> str:
    """The delivery as the bot keeps it: the message content cut to a preview, or removed (None).

    Built from the document `parse_event` read, copying only the objects on the way to the content.
    """
    document = event.document
    payload = document.get("payload")
    message = payload.get("message") if isinstance(payload, dict) else None
    if isinstance(payload, dict) and isinstance(message, dict) and isinstance(message.get("content"), str):
        content: str = message["content"]
        kept = {**message, "content": content[:preview_chars] if preview_chars else None}
        document = {**document, "payload": {**payload, "message": kept}}
    return json.dumps(document)


def _load(body: bytes) -> Any:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the body is not valid UTF-8") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise PayloadError("the JSON is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise PayloadError(f"the body is not JSON ({error.msg} at character {error.pos})") from None
    except ValueError:
        # Integers longer than Python's int/str conversion limit (4,300 digits) end here.
        raise PayloadError("the body holds a number too large to read") from None


def _dedupe_key(document: dict[str, Any]) -> str:
    # Canonical form: sorted keys, no spaces, ASCII only (a lone surrogate escaped in the JSON has no
    # UTF-8 encoding), so a redelivery gives the same key however its keys are ordered or spaced.
    try:
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (RecursionError, ValueError):
        raise PayloadError("the JSON is nested too deeply or holds a number too large") from None
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _message_update(document: dict[str, Any]) -> MessageUpdate:
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise PayloadError(f'"payload" must be an object: {_found(document, "payload")}')
    message = payload.get("message")
    if not isinstance(message, dict):
        raise PayloadError(f'"payload.message" must be an object: {_found(payload, "message")}')
    message_id = _int(message.get("id"))
    if message_id is None:
        raise PayloadError(f'"payload.message.id" must be an integer within signed 64 bits: {_found(message, "id")}')
    status = message.get("status")
    if not isinstance(status, str):
        raise PayloadError(f'"payload.message.status" must be a string: {_found(message, "status")}')
    conversation = _object(payload.get("conversation"))
    conversation_id = _int(message.get("conversation_id"))
    return MessageUpdate(
        message_id=message_id,
        conversation_id=conversation_id if conversation_id is not None else _int(conversation.get("id")),
        status=_clean(status),
        is_deleted=message.get("is_deleted") is True,
        sender_type=_text(message.get("sender_type")) or "",
        sender_label=_text(message.get("sender_label")),
        content_type=_text(message.get("content_type")) or "",
        content=_text(message.get("content")),
        date=_date(message.get("date")),
        messaging_partner=_text(conversation.get("messaging_partner")),
        consumer_name=_text(conversation.get("consumer_name")),
        business_id=_int(_object(conversation.get("business")).get("id")),
        org_id=_int(payload.get("org_id")),
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int | None:
    # bool is an int subclass: `true` is not an id.
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None


def _text(value: object) -> str | None:
    return _clean(value) if isinstance(value, str) else None


def _clean(text: str) -> str:
    # JSON escapes can carry lone surrogates and NUL, which Slack's and PostgreSQL's UTF-8 text refuse.
    return _UNSENDABLE.sub("\ufffd", text)


def _date(value: object) -> datetime | None:
    """Partoo's "2023-01-31 16:22:17.327878+00:00", or any ISO 8601 variant, as an aware UTC datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        # Partoo's dates are UTC; one without an offset is read as UTC rather than as local time.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _found(container: dict[str, Any], key: str) -> str:
    return f"found {_kind(container[key])}" if key in container else "it is missing"


def _kind(value: object) -> str:
    """The JSON type of a value, for error messages that must not echo the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer out of range" if _int(value) is None else "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unexpected value"
