"""SQLite through aiosqlite with one hand-off to its thread per statement, instead of three or four.

SQLAlchemy's aiosqlite adapter asks aiosqlite for a new cursor, executes on it, fetches its rows and closes
it: each step is queued to aiosqlite's thread and awaited back on the event loop. The profiles of the
webhook intake and of the acknowledgement path (docs/benchmarks.md) put those hand-offs at about a third of
the event loop's busy time. The cursor here runs the statement, reads its rows and closes it in ONE job on
aiosqlite's thread; fetching and closing on the loop then cost nothing.

It plugs in through `create_async_engine(async_creator=...)`: SQLAlchemy still owns dialect, pooling,
transactions and error translation, and the connection is aiosqlite's own (so its isolation-level,
commit, rollback and close work unchanged). Rows are always read whole, as SQLAlchemy's adapter does for
every statement except server-side cursors, which the bot does not use.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

_Outcome = tuple[Any, int, int | None, list[Any]]  # description, rowcount, lastrowid, rows


class OneHopCursor:
    """The part of aiosqlite's Cursor that SQLAlchemy's adapter uses, one thread hand-off per statement."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> OneHopCursor:
        def run(database: sqlite3.Connection) -> _Outcome:
            return _drained(database.execute(sql) if parameters is None else database.execute(sql, parameters))

        self._settle(await self._connection.run_in_thread(run))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> OneHopCursor:
        def run(database: sqlite3.Connection) -> _Outcome:
            return _drained(database.executemany(sql, parameters))

        self._settle(await self._connection.run_in_thread(run))
        return self

    def _settle(self, outcome: _Outcome) -> None:
        self.description, self.rowcount, self.lastrowid, self._rows = outcome

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = size or self.arraysize
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> list[Any]:
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        self._rows = []  # the sqlite3 cursor was closed in the thread already

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class OneHopConnection(aiosqlite.Connection):
    """aiosqlite's connection, whose cursors run each statement in one job on its thread."""

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        # SQLAlchemy awaits `cursor().__aenter__()`: made here, on the loop, with no hand-off at all.
        return OneHopCursor(self)

    async def run_in_thread(self, job: Any) -> Any:
        """Run `job(sqlite3_connection)` on aiosqlite's thread, in order with everything else queued there."""
        return await self._execute(lambda: job(self._conn))  # type: ignore[no-untyped-call]


def connect(database: str, **kwargs: Any) -> OneHopConnection:
    """Like `aiosqlite.connect`; awaiting the result opens the connection on its thread."""

    def connector() -> sqlite3.Connection:
        opened: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return opened

    connection = OneHopConnection(connector, 64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite: never hold the process open
    return connection


def _drained(cursor: sqlite3.Cursor) -> _Outcome:
    """Everything a statement's cursor has to say, read on the database thread, then the cursor closed."""
    try:
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()
