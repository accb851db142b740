"""The migrated databases most tests run on are what a bot's first start leaves, and no test sees another's.

The model is a database migrated from nothing: whatever a test did to its rows, the next test's database must
hold exactly what a fresh one would; a test that changed the schema must not pass its database on at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg  # asyncpg ships no type hints
from sqlalchemy.ext.asyncio import create_async_engine

from bot.platform.database import schema_status
from tests.databases import create_database, database_name, drop_database, to_async_url
from tests.migrated_databases import MigratedDatabases, copy_sqlite, migrated, migrated_sqlite_file
from tests.test_databases import existing_databases, was_terminated


async def _contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, and where every sequence stands: what a test could tell apart."""
    connection = await asyncpg.connect(url)
    try:
        tables = [
            row["tablename"]
            for row in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        contents = {
            table: sorted(tuple(record.values()) for record in await connection.fetch(f'SELECT * FROM "{table}"'))
            for table in sorted(tables)
        }
        contents["sequences"] = sorted(
            tuple(row.values())
            for row in await connection.fetch(
                "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
            )
        )
        return contents
    finally:
        await connection.close()


async def _at_head(url: str) -> bool:
    engine = create_async_engine(to_async_url(url))
    try:
        current, head = await schema_status(engine)
    finally:
        await engine.dispose()
    return current == head


async def _scribble(url: str) -> None:
    """What a test does to a bot's database: rows added, seeded rows changed and removed, ids used up."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("INSERT INTO businesses (id, name, seen_at) VALUES ('42', 'Bistrot', 0)")
        await connection.execute("UPDATE partoo_pace SET next_slot_at = 12345")
        await connection.execute("DELETE FROM loop_leases")
        await connection.execute("SELECT nextval('retry_batches_id_seq')")
    finally:
        await connection.close()


async def test_a_migrated_database_given_back_is_handed_out_again_as_freshly_migrated(postgres_server: str) -> None:
    databases = MigratedDatabases(postgres_server)
    fresh = await create_database(postgres_server)
    try:
        await migrated(fresh)
        url = await databases.take()
        assert await _at_head(url)
        assert await _contents(url) == await _contents(fresh)
        await _scribble(url)
        left_open = await asyncpg.connect(url)  # e.g. a bot process that did not shut down cleanly
        await databases.give_back(url)

        assert await databases.take() == url
        assert left_open.is_closed() or await was_terminated(left_open)
        assert await _contents(url) == await _contents(fresh)
    finally:
        databases.drop_all()
        await drop_database(fresh, postgres_server)


async def test_a_migrated_database_whose_schema_a_test_changed_is_not_handed_out_again(postgres_server: str) -> None:
    databases = MigratedDatabases(postgres_server)
    try:
        url = await databases.take()
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("ALTER TABLE businesses ADD COLUMN nickname text")
        finally:
            await connection.close()
        await databases.give_back(url)

        again = await databases.take()
        assert again != url
        assert database_name(url) not in await existing_databases(postgres_server)
        assert await _at_head(again)
    finally:
        databases.drop_all()


def test_each_migrated_sqlite_database_is_a_copy_of_its_own(tmp_path: Path) -> None:
    template = migrated_sqlite_file(tmp_path)
    first, second = (tmp_path / name for name in ("first", "second"))
    for directory in (first, second):
        directory.mkdir()
    url = copy_sqlite(template, first)
    copy_sqlite(template, second)
    (first / "partoo-retry.db").write_bytes(b"")  # whatever one test does to its file

    assert url == f"sqlite:///{first}/partoo-retry.db"
    assert (second / "partoo-retry.db").read_bytes() == template.read_bytes()


async def test_database_url_is_at_the_schema_head(database_url: str) -> None:
    assert await _at_head(database_url)
