"""Logging setup: one line per event, a request id on every line, and no secret ever written, whoever logs it.

Lines are JSON (one object per line, for log platforms) when LOG_FORMAT=json, or with LOG_FORMAT=auto when
stderr is not a terminal; readable text otherwise. JSON fields: time (ISO 8601, UTC), level, logger,
message, request_id (when one is bound, see bot.platform.correlation), exc (the traceback, when any), stack (when
asked for) and any `extra={...}` fields the caller passed.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.defaults import LOG_FORMATS
from bot.platform.correlation import correlation_id

REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from `extra={...}`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    # uvicorn's colored twin of its message: noise in a structured line.
    "color_message",
}
_SCALARS = (str, int, float, bool, type(None))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


class RedactSecrets(logging.Filter):
    """Replaces every known secret value in a record's final text before any handler sees it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so that a secret containing another is replaced whole.
        self.secrets = sorted({secret for secret in secrets if len(secret) >= 6}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = self._clean(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in _extras(record).items():
            # Formatters render non-text extras too, so they are checked in the form they will be written.
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            if self._clean(text) != text:
                setattr(record, key, self._clean(text))
        return True


class AddRequestId(logging.Filter):
    """Stamps each record with the request id bound where it was logged (None when there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # An explicit extra={"request_id": ...} wins: the worker logs for a stored request, not a bound one.
        if getattr(record, "request_id", None) is None:
            record.request_id = correlation_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; newlines inside messages and tracebacks are escaped by JSON itself."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        for key, value in _extras(record).items():
            entry.setdefault(key, value if isinstance(value, _SCALARS) else _jsonable(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


class TextFormatter(logging.Formatter):
    """`2024-05-01 12:00:00,123 INFO bot.app [request id]: message key=value`, for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [self.formatTime(record), record.levelname, record.name]
        request_id = getattr(record, "request_id", None)
        if request_id:
            parts.append(f"[{request_id}]")
        line = f"{' '.join(parts)}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += "  " + " ".join(f"{key}={value}" for key, value in extras.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def resolve_format(log_format: str, stream: TextIO) -> str:
    """ "json" or "text": auto means text for a person at a terminal, JSON for a platform collecting lines."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of {', '.join(LOG_FORMATS)}")
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure_logging(
    secrets: Iterable[str],
    level: int = logging.INFO,
    *,
    log_format: str = "auto",
    stream: TextIO | None = None,
) -> None:
    """Send every log line to `stream` (stderr) through the request id and redaction filters."""
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    chosen = resolve_format(log_format, stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    # On the handler, not a logger: handler filters see records propagated from every library's logger.
    handler.addFilter(AddRequestId())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Their DEBUG lines carry request details; INFO and above is what operators need.
    for noisy in ("slack_sdk", "slack_bolt", "httpx", "httpcore", "aiohttp", "sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
