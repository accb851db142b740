"""Throwaway databases for the tests: one fresh SQLite file or PostgreSQL database per test.

The PostgreSQL server comes from env ``TEST_POSTGRES_URL`` (``.ci/run`` exports it); by default the local
server at 127.0.0.1:5432 with trust auth. Each test gets its own database on that server, created with
``create_database()`` and dropped with ``drop_database()``, so tests never see each other's rows and
several bot processes can share one database within a test.

URLs handed to tests are plain ``sqlite:///…`` / ``postgresql://…`` (what a user would put in the bot's
configuration); ``to_async_url()`` turns them into SQLAlchemy async URLs.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # asyncpg ships no type hints

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

    Synchronous so that a session-scoped fixture can call it; it runs its own event loop in a worker
    thread, which works whether or not the calling thread already runs a loop.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _probe(server_url)).result()


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
