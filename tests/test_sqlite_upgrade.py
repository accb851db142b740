"""A SQLite upgrade that cannot be done safely stops before changing anything, and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from bot.platform.database import SchemaUpgradeError, create_engine, migrate
from bot.platform.sqlite_upgrade import UpgradeError, backup_path, upgrade_with_foreign_keys_off
from tests.upgrade_fixtures import build, fixture_rows


async def _count(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    finally:
        await engine.dispose()


async def _revision(url: str) -> str:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return str((await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one())
    finally:
        await engine.dispose()


async def test_an_upgrade_that_would_orphan_rows_is_rolled_back(sqlite_url: str) -> None:
    await build(sqlite_url, "0001", fixture_rows("0001", 1_800_000_000.0))
    batches = await _count(sqlite_url, "retry_batches")

    def orphaning(connection: Connection) -> None:
        # With foreign keys off nothing stops this; the check after it must.
        connection.execute(text("DELETE FROM retry_batches"))

    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            with pytest.raises(UpgradeError, match=r"retry_requests row .* -> retry_batches"):
                await connection.run_sync(upgrade_with_foreign_keys_off, orphaning)
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        await engine.dispose()
    assert await _count(sqlite_url, "retry_batches") == batches


async def test_no_copy_aside_means_no_upgrade(sqlite_url: str) -> None:
    await build(sqlite_url, "0002", fixture_rows("0002", 1_800_000_000.0))
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    backup_path(database, "0002").mkdir()  # where the copy goes is taken: it cannot be written

    engine = create_engine(sqlite_url)
    try:
        with pytest.raises(SchemaUpgradeError, match=r"copying it aside .* failed"):
            await migrate(engine)
    finally:
        await engine.dispose()
    assert await _revision(sqlite_url) == "0002"
    assert not list(database.parent.glob("*.partial"))


async def test_a_new_database_is_not_copied(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    assert [path.name for path in database.parent.iterdir() if ".bak" in path.name] == []
