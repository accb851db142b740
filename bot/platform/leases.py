"""The one condition every claim in the store uses: nobody holds this lease (never taken, or expired)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import InstrumentedAttribute


def lease_free(lease_until: InstrumentedAttribute[float | None], now: float) -> ColumnElement[bool]:
    """True where the lease column is empty or already past `now`."""
    return or_(lease_until.is_(None), lease_until < now)
