"""Throwaway databases for the tests: one fresh SQLite file or PostgreSQL database per test.

The PostgreSQL server comes from env ``TEST_POSTGRES_URL`` (``.ci/run`` exports it); by default the local
server at 127.0.0.1:5432 with trust auth. Each test gets its own database on that server, so tests never see
each other's rows and several bot processes can share one database within a test. ``ReusableDatabases``
hands them out: created with ``create_database()``, emptied after a test rather than dropped, and dropped with
``drop_database()`` when the pytest process ends. ``tests/migrated_databases.py`` builds on them for the
databases most tests use, already at the schema head.

URLs handed to tests are plain ``sqlite:///…`` / ``postgresql://…`` (what a user would put in the bot's
configuration); ``to_async_url()`` turns them into SQLAlchemy async URLs.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # asyncpg ships no type hints

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# How long the reachability probe waits: a server that does not answer within this is "not there".
PROBE_TIMEOUT = 2.0
# Creating or dropping a database on a busy CI machine may take longer than a probe.
CONNECT_TIMEOUT = 10.0

DATABASE_PREFIX = "partoo_retry_test_"


def postgres_server_url() -> str:
    """The server the tests create their databases on (any database of it that the role may connect to)."""
    return os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead, keeping user, password, host, port and query."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def to_async_url(url: str) -> str:
    """A plain database URL as SQLAlchemy's async engine wants it (aiosqlite / asyncpg driver)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    drivers = {
        "sqlite": "sqlite+aiosqlite",
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
    }
    if scheme in drivers:
        return f"{drivers[scheme]}://{rest}"
    if scheme in drivers.values():
        return url
    raise ValueError(f"unsupported database URL scheme {scheme!r} in {redact(url)!r}")


async def _probe(server_url: str) -> str | None:
    try:
        connection = await asyncpg.connect(server_url, timeout=PROBE_TIMEOUT)
    except Exception as error:  # refused, timed out, bad password, no such role/database: all "unusable"
        return f"{type(error).__name__}: {error}".strip().rstrip(":")
    try:
        can_create = await connection.fetchval(
            "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
        )
    finally:
        await connection.close()
    return None if can_create else "the role may not create databases (needs CREATEDB)"


def probe_postgres_server(server_url: str) -> str | None:
    """None when the server answers and lets us create databases, else why not.

    Synchronous so that a session-scoped fixture can call it (``run_on_own_loop``).
    """
    return run_on_own_loop(_probe(server_url))


def run_on_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on an event loop of its own, in a worker thread: callable from sync code
    such as a session fixture, whether or not the calling thread already runs a loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def create_database(server_url: str) -> str:
    """Create a fresh, uniquely named database on the server of ``server_url``; return its URL."""
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(server_url, timeout=CONNECT_TIMEOUT)
    try:
        # Identifiers cannot be bound as parameters; the name is generated above, hence safe to quote.
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(url: str, server_url: str | None = None) -> None:
    """Drop the database ``url`` points at, closing any connection still open to it.

    The DROP runs over a connection to another database of the same server: the one of ``server_url``,
    by default the one of ``postgres_server_url()`` (a database cannot be dropped from inside itself).
    """
    name = database_name(url)
    maintenance_db = database_name(server_url or postgres_server_url()) or "postgres"
    if name == maintenance_db:
        raise ValueError(f"refusing to drop the maintenance database {name!r}")
    connection = await asyncpg.connect(with_database(url, maintenance_db), timeout=CONNECT_TIMEOUT)
    try:
        # WITH (FORCE) (PostgreSQL 13+) ends sessions a test or a bot process left open.
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


class ReusableDatabases:
    """Empty PostgreSQL databases for one pytest process (one per xdist worker), reused from test to test.

    CREATE DATABASE copies a template and forces a checkpoint: 0.4 s on an idle machine and over a second on a
    loaded one, paid by each of some 400 PostgreSQL tests, as much again to drop it. Dropping the one schema
    and creating it again takes milliseconds and leaves what a new database has: no table, type, sequence,
    row or session of the previous test. A database that cannot be emptied that way is dropped instead.
    """

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._idle: list[str] = []
        self._made: set[str] = set()

    async def take(self) -> str:
        if self._idle:
            return self._idle.pop()
        return await self._new()

    async def give_back(self, url: str) -> None:
        try:
            reusable = await self._make_reusable(url)
        except Exception:  # whatever the test left (another schema, a broken connection): start anew
            reusable = False
        if reusable:
            self._idle.append(url)
            return
        self._made.discard(url)
        await drop_database(url, self.server_url)

    @asynccontextmanager
    async def lend(self) -> AsyncIterator[str]:
        """One database for the ``with`` block, given back after it."""
        url = await self.take()
        try:
            yield url
        finally:
            await self.give_back(url)

    async def _new(self) -> str:
        """A database made for this pool (and dropped with it), as ``take`` hands it out."""
        url = await create_database(self.server_url)
        self._made.add(url)
        return url

    async def _make_reusable(self, url: str) -> bool:
        """Bring ``url`` back to what ``_new`` hands out; False (or an error) when only dropping it will do."""
        await _empty(url, self.server_url)
        return True

    def drop_all(self) -> None:
        """Drop every database this process made (synchronous, for a session fixture's teardown)."""

        async def drop() -> None:
            for url in sorted(self._made):
                await drop_database(url, self.server_url)

        run_on_own_loop(drop())
        self._made.clear()
        self._idle.clear()


async def end_sessions(url: str, server_url: str) -> None:
    """Connections to the database of ``url`` allowed again, and every session a test left on it ended."""
    name = database_name(url)
    admin = await asyncpg.connect(server_url, timeout=CONNECT_TIMEOUT)
    try:
        # tests/outages.py may have refused connections; a bot process may still hold some.
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()


async def _empty(url: str, server_url: str) -> None:
    """Make the database of ``url`` as a new one is: sessions ended, connections allowed, an empty schema."""
    name = database_name(url)
    await end_sessions(url, server_url)
    connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    try:
        schemas = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
        )
        if [row["nspname"] for row in schemas] != ["public"]:
            raise RuntimeError(f"unexpected schemas in {name}: {[row['nspname'] for row in schemas]}")
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()
