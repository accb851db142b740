"""The database fixtures give each test a fresh, working database on both backends."""

from __future__ import annotations

import time

import asyncpg  # asyncpg ships no type hints
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.databases import (
    DATABASE_PREFIX,
    ReusableDatabases,
    create_database,
    database_name,
    drop_database,
    probe_postgres_server,
    redact,
    to_async_url,
    with_database,
)

metadata = sa.MetaData()
notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("text", sa.String(200), nullable=False),
)


async def table_names(url: str) -> list[str]:
    engine = create_async_engine(to_async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    finally:
        await engine.dispose()


async def existing_databases(server_url: str) -> set[str]:
    connection = await asyncpg.connect(server_url)
    try:
        return {row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")}
    finally:
        await connection.close()


async def test_fresh_database_round_trip(empty_database_url: str) -> None:
    assert await table_names(empty_database_url) == []

    engine = create_async_engine(to_async_url(empty_database_url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(sa.insert(notes), [{"text": "first"}, {"text": "second"}])
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.select(notes.c.text).order_by(notes.c.id))).scalars().all()
    finally:
        await engine.dispose()

    assert rows == ["first", "second"]
    assert await table_names(empty_database_url) == ["notes"]


async def test_database_url_backend(database_url: str, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.id
    if backend == "sqlite":
        assert database_url.startswith("sqlite:///")
        assert database_url.endswith("/partoo-retry.db")
    else:
        assert backend == "postgresql"
        assert database_url.startswith("postgresql://")
        assert database_name(database_url).startswith(DATABASE_PREFIX)


async def test_two_postgres_databases_are_distinct(postgres_url: str, postgres_server: str) -> None:
    other_url = await create_database(postgres_server)
    try:
        assert database_name(other_url) != database_name(postgres_url)
        assert database_name(other_url).startswith(DATABASE_PREFIX)

        engine = create_async_engine(to_async_url(postgres_url))
        try:
            async with engine.begin() as connection:
                await connection.run_sync(metadata.create_all)
        finally:
            await engine.dispose()

        assert await table_names(postgres_url) == ["notes"]
        assert await table_names(other_url) == []
    finally:
        await drop_database(other_url, postgres_server)

    existing = await existing_databases(postgres_server)
    assert database_name(postgres_url) in existing
    assert database_name(other_url) not in existing


async def test_a_database_given_back_is_handed_out_again_as_a_new_one(postgres_server: str) -> None:
    databases = ReusableDatabases(postgres_server)
    try:
        url = await databases.take()
        engine = create_async_engine(to_async_url(url))
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(sa.insert(notes), [{"text": "left behind"}])
            await connection.execute(sa.text("CREATE TYPE mood AS ENUM ('sad', 'happy')"))
        left_open = await asyncpg.connect(url)  # e.g. a bot process that did not shut down cleanly
        await databases.give_back(url)

        assert await databases.take() == url
        assert await table_names(url) == []
        reopened = await asyncpg.connect(url)
        try:
            assert await reopened.fetchval("SELECT count(*) FROM pg_type WHERE typname = 'mood'") == 0
        finally:
            await reopened.close()
        assert left_open.is_closed() or await was_terminated(left_open)
        await engine.dispose()
    finally:
        databases.drop_all()
    assert database_name(url) not in await existing_databases(postgres_server)


async def was_terminated(connection: asyncpg.Connection) -> bool:
    try:
        await connection.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return True
    finally:
        connection.terminate()
    return False


async def test_drop_database_closes_open_sessions(postgres_server: str) -> None:
    url = await create_database(postgres_server)
    left_open = await asyncpg.connect(url)  # e.g. a bot process that did not shut down cleanly
    try:
        await drop_database(url, postgres_server)
    finally:
        left_open.terminate()
    assert database_name(url) not in await existing_databases(postgres_server)


def test_unreachable_server_is_reported_quickly() -> None:
    started = time.monotonic()
    problem = probe_postgres_server("postgresql://postgres@127.0.0.1:1/postgres")
    assert problem is not None
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////tmp/x/partoo-retry.db", "sqlite+aiosqlite:////tmp/x/partoo-retry.db"),
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_to_async_url(url: str, expected: str) -> None:
    assert to_async_url(url) == expected


def test_to_async_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="mysql"):
        to_async_url("mysql://u:secret@h/db")


def test_url_helpers() -> None:
    url = "postgresql://postgres:secret@127.0.0.1:5432/postgres?sslmode=disable"
    assert with_database(url, "other") == "postgresql://postgres:secret@127.0.0.1:5432/other?sslmode=disable"
    assert database_name(url) == "postgres"
    assert redact(url) == "postgresql://postgres:***@127.0.0.1:5432/postgres?sslmode=disable"
    assert redact("postgresql://postgres@h/db") == "postgresql://postgres@h/db"
