"""On SQLite, pruning gives the space back: the file shrinks instead of staying at its largest size."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import insert

from bot.platform.database import create_engine, migrate
from bot.platform.models import WebhookEvent
from bot.platform.retention import DAY, Pruner, ensure_incremental_vacuum


def _pragma(path: Path, name: str) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute(f"PRAGMA {name}").fetchone()[0])


async def test_pruned_pages_are_handed_back_to_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        await migrate(engine)
        await ensure_incremental_vacuum(engine)
        old = time.time() - 100 * DAY
        async with engine.begin() as connection:
            await connection.execute(
                insert(WebhookEvent),
                [
                    {
                        "dedupe_key": f"k{n}",
                        "received_at": old,
                        "type": "message_updated",
                        "status": "Failed",
                        "payload": "x" * 4000,
                        "processed_at": old,
                    }
                    for n in range(2000)
                ],
            )
        full = _pragma(path, "page_count")

        report = await Pruner(engine, retention_seconds=90 * DAY, batch_size=500, pause=0.0).prune()

        assert report.deleted["events"] == 2000
        assert report.pages_freed > 1500
        assert _pragma(path, "freelist_count") == 0
        assert _pragma(path, "page_count") < full / 4
    finally:
        await engine.dispose()


async def test_an_existing_file_is_switched_to_incremental_auto_vacuum_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:  # as an older version left it: tables, no auto-vacuum
        connection.execute("CREATE TABLE kept (x TEXT)")
        connection.execute("INSERT INTO kept VALUES ('still here')")
    assert _pragma(path, "auto_vacuum") == 0
    engine = create_engine(f"sqlite:///{path}")
    try:
        await ensure_incremental_vacuum(engine)
        await ensure_incremental_vacuum(engine)  # the second time changes nothing
    finally:
        await engine.dispose()
    assert _pragma(path, "auto_vacuum") == 2
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT x FROM kept").fetchall() == [("still here",)]
