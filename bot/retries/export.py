"""`partoo-retry-bot log export`: the retry log as CSV or JSON lines, for audits."""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

from bot.domain.retry_requests import BatchView, RequestView

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

COLUMNS = (
    "request_id",
    "message_id",
    "requested_by",
    "requested_at",
    "source",
    "channel_id",
    "state",
    "outcome",
    "http_status",
    "detail",
    "attempts",
    "finished_at",
)


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), +cmd|...). The log
# holds text from outside (Partoo's error details), so such cells get a leading quote (OWASP's advice).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ExportError(ValueError):
    """The export's arguments are wrong; the message says how."""


def parse_since(value: str, *, now: float | None = None) -> float:
    """`7d`, `12h`, `30m`, `2w` back from now, or an ISO date/time (UTC when no zone is given)."""
    now = time.time() if now is None else now
    match = _DURATION.match(value.strip().lower())
    if match:
        return now - int(match.group(1)) * _SECONDS[match.group(2)]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ExportError(f"--since takes a duration like 7d, 12h, 30m or an ISO date, not {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat() if timestamp is not None else None


def row(request: RequestView, batch: BatchView) -> dict[str, Any]:
    return {
        "request_id": request.id,
        "message_id": request.message_id,
        "requested_by": request.requested_by,
        "requested_at": _iso(request.requested_at),
        "source": batch.source,
        "channel_id": batch.channel_id,
        "state": request.state,
        "outcome": request.outcome.value if request.outcome else None,
        "http_status": request.http_status,
        "detail": request.detail,
        "attempts": request.attempts,
        "finished_at": _iso(request.finished_at),
    }


def history_note(since: float, history_start: float | None) -> str | None:
    """What to tell on stderr when RETENTION_DAYS pruned part of the period asked for (None: nothing pruned)."""
    if history_start is None:
        return None
    starts = _iso(history_start)
    if since < history_start:
        return f"the log keeps finished retries since {starts} (RETENTION_DAYS); earlier ones were pruned"
    return f"the log keeps finished retries since {starts} (RETENTION_DAYS)"


def _inert(value: Any) -> Any:
    """A text cell a spreadsheet shows as text, never evaluates."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write(rows: Sequence[tuple[RequestView, BatchView]], output_format: str, out: IO[str]) -> None:
    """Write the rows as CSV (with a header) or as one JSON object per line."""
    if output_format == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for request, batch in rows:
            writer.writerow({column: _inert(value) for column, value in row(request, batch).items()})
    elif output_format == "json":
        for request, batch in rows:
            out.write(json.dumps(row(request, batch)) + "\n")
    else:
        raise ExportError(f"--format is csv or json, not {output_format!r}")
