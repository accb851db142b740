"""Making a test database unavailable for a while, the way an outage or a long lock would."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import make_url

from tests.databases import postgres_server_url


@contextlib.asynccontextmanager
async def database_unavailable(database_url: str) -> AsyncIterator[None]:
    """SQLite: another process holds the write lock. PostgreSQL: the database refuses connections."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # Taken from a thread: the bot under test shares this event loop, and a transaction it has in flight
        # must be able to finish (and release the lock) while we wait for it.
        locker = await asyncio.to_thread(_lock_sqlite, url.database or "")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        return
    name = url.database
    admin = await asyncpg.connect(postgres_server_url())
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        try:
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


def _lock_sqlite(path: str) -> sqlite3.Connection:
    locker = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    return locker
