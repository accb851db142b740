"""Group commit: concurrent writes share transactions, yet each caller hears back only once its own row is durable.

Run against real SQLite and PostgreSQL; durability is checked through a connection of another engine, which
sees only what was committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.platform.database import create_engine, migrate
from bot.platform.group_commit import GroupCommit, each
from bot.platform.models import WebhookEvent as EventRow
from tests.databases import to_async_url
from tests.harness import RunningBot
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def observer(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Another engine on the same database: it sees committed rows only.

    A plain engine, not the bot's: the bot's SQLite transactions begin IMMEDIATE, which would wait for the
    writer's COMMIT and so hide a caller answered too early.
    """
    engine = create_async_engine(to_async_url(database_url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def _insert(connection: AsyncConnection, key: str) -> str:
    # A plain INSERT: a key stored twice raises IntegrityError (and aborts the transaction on PostgreSQL).
    await connection.execute(
        insert(EventRow).values(dedupe_key=key, received_at=0.0, type="message_updated", payload="{}")
    )
    return key


async def _insert_slowly(connection: AsyncConnection, key: str) -> str:
    # Holding the transaction open a little makes a caller answered before the COMMIT see its row missing.
    await _insert(connection, key)
    await asyncio.sleep(0.002)
    return key


async def _committed(observer: AsyncEngine, key: str) -> bool:
    async with observer.connect() as connection:
        found = await connection.execute(select(EventRow.id).where(EventRow.dedupe_key == key))
        return found.first() is not None


async def test_each_caller_returns_only_once_its_own_row_is_committed(
    engine: AsyncEngine, observer: AsyncEngine
) -> None:
    writer: GroupCommit[str, str] = GroupCommit(engine, each(_insert_slowly))

    async def submit_then_look(key: str) -> bool:
        await writer.submit(key)
        return await _committed(observer, key)

    seen = await asyncio.gather(*(submit_then_look(f"key-{n}") for n in range(60)))

    assert all(seen)
    assert writer.committed_items == 60
    # Sixty callers at once share transactions: the writer committed far fewer times than it was asked.
    assert writer.commits < 60


async def test_one_bad_row_fails_only_its_own_caller(engine: AsyncEngine, observer: AsyncEngine) -> None:
    writer: GroupCommit[str, str] = GroupCommit(engine, each(_insert))
    await writer.submit("taken")
    keys = [f"good-{n}" for n in range(10)]
    keys.insert(5, "taken")

    answers = await asyncio.gather(*(writer.submit(key) for key in keys), return_exceptions=True)

    failed = [key for key, answer in zip(keys, answers, strict=True) if isinstance(answer, BaseException)]
    assert failed == ["taken"]
    assert isinstance(answers[5], IntegrityError)
    for key in keys:
        if key != "taken":
            assert await _committed(observer, key), key


async def test_under_light_load_every_write_commits_alone_and_at_once(engine: AsyncEngine) -> None:
    writer: GroupCommit[str, str] = GroupCommit(engine, each(_insert))

    for n in range(5):
        assert await writer.submit(f"alone-{n}") == f"alone-{n}"

    assert (writer.commits, writer.committed_items) == (5, 5)


async def test_a_caller_that_gives_up_does_not_lose_the_others_writes(
    engine: AsyncEngine, observer: AsyncEngine
) -> None:
    writer: GroupCommit[str, str] = GroupCommit(engine, each(_insert))
    impatient = asyncio.ensure_future(writer.submit("impatient"))
    patient = asyncio.ensure_future(writer.submit("patient"))
    impatient.cancel()

    assert await patient == "patient"
    assert await _committed(observer, "patient")
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_concurrent_copies_of_one_delivery_are_stored_once(bot: RunningBot, signer: PartooSigner) -> None:
    events = [message_updated_event(7000 + n) for n in range(20)]
    # Every delivery twice, all at once: copies land in the same batch or in the next one.
    answers = await asyncio.gather(*(bot.webhook(event, signer) for event in events + events))

    assert {answer.status_code for answer in answers} == {200}
    verdicts = [answer.json()["status"] for answer in answers]
    for n in range(20):
        assert sorted([verdicts[n], verdicts[n + 20]]) == ["duplicate", "stored"]
    async with bot.bot.engine.connect() as connection:
        stored = (await connection.execute(text("SELECT count(*) FROM webhook_events"))).scalar_one()
    assert stored == 20


async def test_several_writers_write_batches_side_by_side(engine: AsyncEngine, observer: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the bot has one connection to SQLite: its transactions never overlap")
    open_now = most_open = 0

    async def write_wave(connection: AsyncConnection, keys: list[str]) -> list[str]:
        nonlocal open_now, most_open
        open_now += 1
        most_open = max(most_open, open_now)
        try:
            for key in keys:
                await _insert(connection, key)
            # Held open until three transactions are open at once: one writer would wait here for ever.
            await eventually(lambda: most_open >= 3, timeout=10)
        finally:
            open_now -= 1
        return keys

    async def opened(count: int) -> None:
        await eventually(lambda: most_open >= count)  # grows only, unlike open_now

    writer: GroupCommit[str, str] = GroupCommit(engine, write_wave, writers=3)
    waves: list[asyncio.Future[str]] = []
    for wave in range(3):
        # Each wave arrives while the earlier ones are still being written: it becomes a batch of its own.
        waves += [asyncio.ensure_future(writer.submit(f"wave-{wave}-{n}")) for n in range(5)]
        await opened(wave + 1)

    answers = await asyncio.gather(*waves)

    assert answers == [f"wave-{wave}-{n}" for wave in range(3) for n in range(5)]
    assert (most_open, writer.commits, writer.committed_items) == (3, 3, 15)
    for key in answers:
        assert await _committed(observer, key), key
