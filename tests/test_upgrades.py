"""Upgrades keep everything: a populated database at each earlier revision upgrades, and the bot works on it.

For every revision, a database is built the way the bot of that revision left it (`alembic upgrade <rev>`, then
rows written with plain SQL against that revision's schema: tests/upgrade_fixtures/), on SQLite and on
PostgreSQL. It is upgraded the way the bot upgrades it on start, every row is read back, and the real bot is
started on it: the requests it left queued are sent, an old alert is updated in place, and a new retry works.

**A new migration must add its fixture** to tests/upgrade_fixtures/ (`r<revision>.py`, building on the one
before it); `test_every_revision_has_a_fixture` fails until it does.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.alerts.messages import RETRY_ACTION_ID
from bot.platform.database import MIGRATIONS, create_engine, migrate
from bot.platform.sqlite_upgrade import backup_path
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import ALERT_CHANNEL, CHANNEL, RunningBot, bot_environment, ephemeral_text, message_text, running_bot
from tests.signing import PartooSigner
from tests.upgrade_fixtures import NATURAL_KEYS, Row, build, fixture_rows, posted_messages, r0001, r0002, resolved
from tests.waiting import eventually, eventually_async

_SCRIPTS = ScriptDirectory(str(MIGRATIONS))
# A message no revision's history holds: a retry of it after the upgrade is new.
NEVER_RETRIED = 8123
# Every revision, oldest first.
REVISIONS = [script.revision for script in reversed(list(_SCRIPTS.walk_revisions()))]
HEAD = REVISIONS[-1]
# Waits for the bot's work on a loaded machine (the suite shares two cores with other runs).
WITHIN = 30.0


def test_every_revision_has_a_fixture() -> None:
    missing = [rev for rev in REVISIONS if importlib.util.find_spec(f"tests.upgrade_fixtures.r{rev}") is None]
    assert missing == [], f"add tests/upgrade_fixtures/r<revision>.py for {missing} (see its __init__)"


@pytest.mark.parametrize("revision", REVISIONS)
async def test_a_populated_database_upgrades_and_the_bot_works_on_it(
    revision: str, empty_database_url: str, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    now = time.time()
    rows = fixture_rows(revision, now)
    ids = await build(empty_database_url, revision, rows)

    engine = create_engine(empty_database_url)
    try:
        await migrate(engine)  # what the bot does first on start
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one() == HEAD
            await _assert_rows_kept(connection, rows, ids)
            if engine.dialect.name == "sqlite":
                # Foreign keys were turned off for the rebuilds only.
                assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        await engine.dispose()
    _assert_copied_aside(empty_database_url, revision, rows)

    for channel, ts in posted_messages(rows):
        slack.add_message(channel, ts, "posted by the bot before the upgrade")
    async with running_bot(slack, bot_environment(slack, partoo, empty_database_url, signer)) as bot:
        await _assert_left_work_is_done(bot, slack, partoo)
        if revision >= "0002":
            await _assert_old_alerts_work(bot, slack, partoo, posted_messages(rows))
        await _assert_a_new_retry_works(bot, slack, partoo, revision)


async def _assert_rows_kept(connection: Any, rows: list[Row], ids: dict[str, Any]) -> None:
    """Every row is still there with every value the old bot wrote, and no table gained or lost a row."""
    for table, expected in Counter(row.table for row in rows).items():
        count = (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
        if table == "partoo_pace":
            continue  # the migrations add their own pace rows
        assert count == expected, f"{table}: {count} rows after the upgrade, {expected} before"
    for row in rows:
        key_column = NATURAL_KEYS.get(row.table, "id")
        found = (
            await connection.execute(
                text(f"SELECT * FROM {row.table} WHERE {key_column} = :key"),
                {"key": ids[row.key]},
            )
        ).one()
        kept = {name: found._mapping[name] for name in row.columns}
        assert kept == resolved(row, ids), f"{row.table} row {row.key!r} changed in the upgrade"


def _assert_copied_aside(database_url: str, revision: str, rows: list[Row]) -> None:
    """SQLite: a copy of the database as it was, beside it, named after its revision (none when nothing ran)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return
    database = Path(url.database or "")
    copies = sorted(path.name for path in database.parent.glob(f"{database.name}.*.bak"))
    if revision == HEAD:
        assert copies == []
        return
    assert copies == [backup_path(database, revision).name]
    with sqlite3.connect(backup_path(database, revision)) as copy:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [(revision,)]
        requests = copy.execute("SELECT count(*) FROM retry_requests").fetchone()
        assert requests == (sum(row.table == "retry_requests" for row in rows),)


async def _assert_left_work_is_done(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo) -> None:
    """What the old bot left queued is sent once and reported; what it had in flight is never sent again."""
    await eventually(
        lambda: partoo.count(r0001.QUEUED) == 1 and partoo.count(r0001.EXPIRED_RUNNING) == 1, timeout=WITHIN
    )

    async def in_flight_closed() -> bool:
        async with bot.bot.engine.connect() as connection:
            state = (
                await connection.execute(
                    text("SELECT state FROM retry_requests WHERE message_id = :id"), {"id": r0001.IN_FLIGHT}
                )
            ).scalar_one()
        return bool(state == "done")

    await eventually_async(in_flight_closed, timeout=WITHIN)
    assert partoo.count(r0001.IN_FLIGHT) == 0

    def reported() -> bool:
        # Accepted retries of a batch are summed up on its root message; those not sent get a thread reply.
        root = slack.message("C101", r0001.IN_PROGRESS_ROOT)
        replies = " ".join(message_text(reply) for reply in slack.thread("C101", r0001.IN_PROGRESS_ROOT))
        return root is not None and "3/3 done: 2 accepted" in message_text(root) and f"`{r0001.IN_FLIGHT}`" in replies

    await eventually(reported, timeout=WITHIN)


async def _assert_old_alerts_work(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, before: list[tuple[str, str]]
) -> None:
    """A click on an alert posted before the upgrade retries it and updates that message; a stored failure alerts."""
    await bot.click(
        action_id=RETRY_ACTION_ID,
        value=str(r0002.FRESH_ALERT),
        channel_id=ALERT_CHANNEL,
        message_ts=r0002.FRESH_ALERT_TS,
        response_url=slack.response_url("click"),
    )

    await eventually(lambda: partoo.count(r0002.FRESH_ALERT) == 1, timeout=WITHIN)
    reply = (await eventually(lambda: slack.thread(ALERT_CHANNEL, r0002.FRESH_ALERT_TS), timeout=WITHIN))[0]
    assert "accepted" in message_text(reply)

    def updated_in_place() -> bool:
        alert = slack.message(ALERT_CHANNEL, r0002.FRESH_ALERT_TS)
        return alert is not None and alert.edits > 0 and "Retried by" in message_text(alert)

    await eventually(updated_in_place, timeout=WITHIN)
    new_alerts = await eventually(lambda: _posted_since_start(slack, ALERT_CHANNEL, before), timeout=WITHIN)
    assert [str(r0002.PENDING_FAILURE) in message_text(alert) for alert in new_alerts] == [True]


async def _assert_a_new_retry_works(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, revision: str) -> None:
    """A new `/partoo-retry` is sent and its outcome posted; history kept before the upgrade still counts.

    1001 was accepted before the upgrade, and from 0002 on Partoo's Success report for it is stored: the
    upgraded bot knows it was delivered and sends nothing (admission reads the upgraded rows). Before 0002 the
    bot kept no delivery reports, so the accepted retry, long past its wait for a report, may be asked again.
    """
    if revision >= "0002":
        answer = ephemeral_text(await bot.command(str(r0001.ACCEPTED)))
        assert f"`{r0001.ACCEPTED}` was delivered" in answer, answer
        message_id = NEVER_RETRIED
    else:
        message_id = r0001.ACCEPTED
    assert (await bot.command(str(message_id))).status_code == 200

    await eventually(lambda: partoo.count(message_id) == 1, timeout=WITHIN)
    root = (await eventually(lambda: slack.root_messages(CHANNEL), timeout=WITHIN))[0]
    reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts), timeout=WITHIN))[0]
    assert "accepted" in message_text(reply)
    assert f"`{message_id}`" in message_text(reply)
    assert partoo.count(r0001.ACCEPTED) == (0 if revision >= "0002" else 1)


def _posted_since_start(slack: FakeSlack, channel: str, before: list[tuple[str, str]]) -> list[Any]:
    """Root messages the upgraded bot posted in `channel`: those the old one posted are updated, not new."""
    return [message for message in slack.root_messages(channel) if (channel, message.ts) not in before]
