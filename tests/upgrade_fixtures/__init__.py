"""Populated databases at every schema revision, as the bot of that revision wrote them, for tests/test_upgrades.py.

One module per revision, `r<revision>.py`, with `rows(now)`: the rows, in insertion order, written with the
column names that revision's migration created. A revision builds on the one before it (the same history,
plus what its bot wrote into the new columns and tables), so an older module never changes once added.

Ids are not written: the database gives them, as it gave them to the bot (on PostgreSQL a written id would leave
the sequence behind, and the next insert would collide). A row has a key; `Ref(key)` is that row's id.

**A new migration adds its fixture here** (`r<its revision>.py`, building on the previous one): the test fails
until every revision has one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.platform.database import MIGRATIONS, create_engine

# Tables whose rows are found by an id the database gives; the others by their natural primary key.
NATURAL_KEYS = {
    "partoo_pace": "name",
    "conversation_checks": "scope",
    "webhook_intake": "minute",
    "webhook_watch": "name",
    "weekly_reports": "due_at",
    "businesses": "id",
}


@dataclass(frozen=True)
class Ref:
    """The id the database gave the row with this key."""

    key: str


@dataclass(frozen=True)
class Row:
    table: str
    key: str
    columns: Mapping[str, Any]


def fixture_rows(revision: str, now: float) -> list[Row]:
    """The rows of the fixture at `revision` (ModuleNotFoundError when there is none)."""
    module = importlib.import_module(f"{__name__}.r{revision}")
    rows: list[Row] = module.rows(now)
    return rows


async def migrate_to(database_url: str, revision: str) -> None:
    """The database's schema brought to `revision` (not further), as the bot of that revision left it."""

    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade)
    finally:
        await engine.dispose()


async def build(database_url: str, revision: str, rows: list[Row]) -> dict[str, Any]:
    """The database at `revision`, holding `rows`; {row key: id}."""
    await migrate_to(database_url, revision)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            return await insert(connection, rows)
    finally:
        await engine.dispose()


def with_columns(rows: Iterable[Row], added: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """`rows`, with the columns a later revision added set on the rows named in `added` (by key)."""
    extended = [Row(row.table, row.key, {**row.columns, **added.get(row.key, {})}) for row in rows]
    unknown = set(added) - {row.key for row in extended}
    assert not unknown, f"columns added to rows that do not exist: {unknown}"
    return extended


async def insert(connection: AsyncConnection, rows: Iterable[Row]) -> dict[str, Any]:
    """Insert `rows` with plain SQL; {key: the row's id, or its natural key}."""
    ids: dict[str, Any] = {}
    for row in rows:
        values = resolved(row, ids)
        names = ", ".join(values)
        placeholders = ", ".join(f":{name}" for name in values)
        statement = f"INSERT INTO {row.table} ({names}) VALUES ({placeholders})"
        if row.table in NATURAL_KEYS:
            await connection.execute(text(statement), values)
            ids[row.key] = values[NATURAL_KEYS[row.table]]
        else:
            ids[row.key] = (await connection.execute(text(statement + " RETURNING id"), values)).scalar_one()
    return ids


def resolved(row: Row, ids: Mapping[str, Any]) -> dict[str, Any]:
    """The row's columns with every `Ref` replaced by the id it names."""
    return {name: ids[value.key] if isinstance(value, Ref) else value for name, value in row.columns.items()}


def posted_messages(rows: Iterable[Row]) -> list[tuple[str, str]]:
    """(channel, ts) of every Slack message the bot had posted: alerts, digests and command root messages."""
    posted: dict[tuple[str, str], None] = {}  # ordered, and a click's root is its alert's message
    for row in rows:
        columns = row.columns
        if row.table in ("alerts", "alert_digests") and columns.get("ts"):
            posted[(columns["channel_id"], columns["ts"])] = None
        elif row.table == "retry_batches" and columns.get("root_ts"):
            posted[(columns["root_channel"], columns["root_ts"])] = None
    return list(posted)
