"""Databases already at this version's schema head, for the tests that start a bot on them.

Nearly every test starts a bot, and a bot on an empty database first migrates it: twelve Alembic revisions,
about 80 ms of CPU on SQLite and 100 ms on PostgreSQL, paid some 1,300 times by a suite that is CPU-bound on 2
cores. These fixtures migrate once per pytest process and hand out copies instead; the bot then finds its schema
current and starts as it does in production after its first start. Tests of the first start itself, and of
every upgrade, keep the empty ``sqlite_url`` / ``postgres_url``.

- SQLite: one migrated file per pytest process, copied into each test's ``tmp_path``.
- PostgreSQL: databases migrated once and emptied after each test back to what migrating leaves (every table
  truncated, identities restarted, the rows the migrations seed put back). A database whose schema a test
  changed is dropped instead, so no test ever sees another's schema or rows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # asyncpg ships no type hints
from sqlalchemy.ext.asyncio import create_async_engine

from bot.platform.database import migrate
from tests.databases import CONNECT_TIMEOUT, ReusableDatabases, end_sessions, run_on_own_loop, to_async_url

SQLITE_FILE = "partoo-retry.db"

# What a test may not change for its database to be emptied and reused: tables, columns, indexes, schemas
# (the revision is a row, put back with the others).
_SCHEMA = """
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type AS part
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
  WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
ORDER BY part
"""


async def migrated(url: str) -> None:
    """Bring the database of the plain ``url`` to this version's head, as the bot's first start does."""
    engine = create_async_engine(to_async_url(url))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def migrated_sqlite_file(directory: Path) -> Path:
    """A SQLite file at the schema head in ``directory`` (synchronous, for a session fixture)."""
    path = directory / SQLITE_FILE
    run_on_own_loop(migrated(f"sqlite:///{path}"))
    return path


def copy_sqlite(template: Path, directory: Path) -> str:
    """A copy of the migrated SQLite ``template`` in ``directory``; its plain URL."""
    target = directory / SQLITE_FILE
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@dataclass(frozen=True)
class _Seeded:
    """What migrating leaves in a PostgreSQL database: its schema's fingerprint and every table's rows."""

    schema: list[str]
    rows: dict[str, tuple[list[str], list[tuple[object, ...]]]]  # table: (columns, rows)


class MigratedDatabases(ReusableDatabases):
    """PostgreSQL databases at the schema head, emptied back to their freshly migrated state between tests."""

    def __init__(self, server_url: str) -> None:
        super().__init__(server_url)
        self._seeded: _Seeded | None = None

    async def _new(self) -> str:
        url = await super()._new()
        await migrated(url)
        if self._seeded is None:
            self._seeded = await _read_seeded(url)
        return url

    async def _make_reusable(self, url: str) -> bool:
        await end_sessions(url, self.server_url)
        return await self._reset(url)

    async def _reset(self, url: str) -> bool:
        """Truncate and re-seed; False when the test changed the schema (the database is then not reused)."""
        seeded = self._seeded
        if seeded is None:
            return False
        connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
        try:
            if await _schema(connection) != seeded.schema:
                return False
            async with connection.transaction():
                tables = ", ".join(f'"{table}"' for table in seeded.rows)
                await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
                for table, (columns, rows) in seeded.rows.items():
                    if rows:
                        await connection.copy_records_to_table(table, records=rows, columns=columns)
            return True
        finally:
            await connection.close()


async def _schema(connection: asyncpg.Connection) -> list[str]:
    return [row["part"] for row in await connection.fetch(_SCHEMA)]


async def _read_seeded(url: str) -> _Seeded:
    connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    try:
        tables = [
            row["tablename"]
            for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        rows: dict[str, tuple[list[str], list[tuple[object, ...]]]] = {}
        for table in tables:
            records = await connection.fetch(f'SELECT * FROM "{table}"')
            columns = list(records[0].keys()) if records else []
            rows[table] = (columns, [tuple(record.values()) for record in records])
        return _Seeded(schema=await _schema(connection), rows=rows)
    finally:
        await connection.close()
