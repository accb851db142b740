"""The weekly report: its figures against a known history, its schedule, and "posted once a week, never twice".

The model is a history a person can read (who failed when, who retried, what Partoo later reported) and the
figures that person would expect from it, written out by hand, not computed by the bot's own functions.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from bot.domain.verdict import Verdict, VerdictKind, verdict_to_json
from bot.domain.weekly_report import ScheduleError, parse_schedule
from bot.failures.state import failure_json
from bot.platform.database import create_engine, migrate
from bot.platform.models import Alert, Batch, Request, WeeklyReport
from bot.reports.store import ReportReads
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import RunningBot, bot_environment, message_text, running_bot
from tests.signing import PartooSigner, message_updated_event
from tests.test_alert_messages import failure
from tests.waiting import eventually, eventually_async

HOUR = 3600.0
DAY = 24 * HOUR
# The week under report: Monday 2026-11-23 09:00 UTC to Monday 2026-11-30 09:00 UTC.
WEEK_START = datetime(2026, 11, 23, 9, tzinfo=UTC).timestamp()
WEEK_END = WEEK_START + 7 * DAY
REPORTS = "CREPORTS"


# -- the schedule ---------------------------------------------------------------------------------


def test_the_latest_occurrence_is_the_last_monday_nine_in_the_schedules_own_time_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    schedule = parse_schedule("mon 09:00", paris)
    # Wednesday 2026-12-02 12:00 UTC: the latest Monday 09:00 in Paris is 2026-11-30 08:00 UTC (winter time).
    wednesday = datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp()
    assert schedule.latest_due(wednesday) == datetime(2026, 11, 30, 8, tzinfo=UTC).timestamp()
    # At the very minute it is due, that minute is the latest; a second before, it is the week before.
    due = datetime(2026, 11, 30, 8, tzinfo=UTC).timestamp()
    assert schedule.latest_due(due) == due
    assert schedule.latest_due(due - 1) == datetime(2026, 11, 23, 8, tzinfo=UTC).timestamp()
    # Across the change to summer time (29 March 2026), Monday 09:00 in Paris is 07:00 UTC.
    assert schedule.latest_due(datetime(2026, 4, 1, tzinfo=UTC).timestamp()) == (
        datetime(2026, 3, 30, 7, tzinfo=UTC).timestamp()
    )


NOT_SCHEDULES = ["", "mon", "9:00", "monday 25:00", "mon 09:60", "funday 09:00", "mo 09:00", "mon -9:00"]
FULL_WIDTH_NINE = "\uff19"


@pytest.mark.parametrize("text", [*NOT_SCHEDULES, f"mon {FULL_WIDTH_NINE}:00", "mon +9:00"])
def test_a_schedule_that_is_not_a_day_and_a_time_is_refused(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(text, ZoneInfo("UTC"))


def test_the_configuration_names_a_bad_schedule_or_time_zone(slack: FakeSlack, partoo: FakePartoo) -> None:
    from bot.config import ConfigError, load_settings

    environment = bot_environment(
        slack, partoo, "sqlite:///unused.db", REPORT_SCHEDULE="someday", REPORT_TIMEZONE="Mars"
    )
    with pytest.raises(ConfigError) as refused:
        load_settings(environment)
    assert any("REPORT_SCHEDULE" in problem for problem in refused.value.problems)
    assert any("REPORT_TIMEZONE" in problem for problem in refused.value.problems)


# -- the figures ----------------------------------------------------------------------------------


def _verdict(kind: VerdictKind) -> str:
    return verdict_to_json(Verdict(kind=kind, checked_at=WEEK_START))


async def _write_history(database_url: str) -> None:
    """The week (and the one before): every figure below follows from these rows.

    - 5001 (business 1187, WhatsApp): failed Monday 10:00; retried 10:30 and delivered 11:00 (1 h after failing).
    - 5002 (business 1187, WhatsApp): failed Tuesday; the check found the conversation closed; never retried.
    - 5003 (business 2210, Facebook): failed Wednesday with a channel setup problem; retried anyway, refused.
    - 5004 (business 2210, Facebook): failed Thursday 08:00; retried at 08:10, failed again Friday 08:00;
      retried again Friday 09:00 and delivered Friday 11:00 (3 h after the failure it answered).
    - 4001 and 4002: failed the week before; 4001 retried then, and delivered then.
    """
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        monday = WEEK_START + HOUR  # Monday 10:00
        alerts = [
            (5001, 1187, "whatsapp", monday, None, None),
            (5002, 1187, "whatsapp", WEEK_START + DAY, None, _verdict(VerdictKind.CLOSED)),
            (5003, 2210, "facebook", WEEK_START + 2 * DAY, None, _verdict(VerdictKind.SETUP_PROBLEM)),
            (5004, 2210, "facebook", WEEK_START + 3 * DAY - HOUR, WEEK_START + 4 * DAY - HOUR, None),
            (4001, 1187, "whatsapp", WEEK_START - 3 * DAY, None, None),
            (4002, 3300, "sms", WEEK_START - 2 * DAY, None, _verdict(VerdictKind.CAN_RETRY)),
        ]
        async with engine.begin() as connection:
            for message_id, business, partner, failed_at, failed_again_at, verdict in alerts:
                update = failure(message_id=message_id, business_id=business, messaging_partner=partner)
                await connection.execute(
                    insert(Alert).values(
                        message_id=message_id,
                        channel_id="CALERTS",
                        failure=failure_json(update),
                        failed_at=failed_at,
                        failed_again_at=failed_again_at,
                        verdict=verdict,
                    )
                )
            batch_id = (
                await connection.execute(
                    insert(Batch)
                    .values(
                        source="command",
                        requested_by="U1",
                        channel_id="C1",
                        total=1,
                        created_at=WEEK_START - 3 * DAY,
                        correlation_id="report-test",
                    )
                    .returning(Batch.id)
                )
            ).scalar_one()
            retries = [
                # message, asked at, outcome, delivery, delivery time
                (5001, monday + HOUR / 2, "accepted", "delivered", monday + HOUR),
                (5003, WEEK_START + 2 * DAY + HOUR, "refused", None, None),
                (5004, WEEK_START + 3 * DAY - HOUR + 600, "accepted", "failed_again", WEEK_START + 4 * DAY - HOUR),
                (5004, WEEK_START + 4 * DAY, "accepted", "delivered", WEEK_START + 4 * DAY + 2 * HOUR),
                (4001, WEEK_START - 3 * DAY + HOUR, "accepted", "delivered", WEEK_START - 3 * DAY + 2 * HOUR),
            ]
            for message_id, asked_at, outcome, delivery, delivery_at in retries:
                await connection.execute(
                    insert(Request).values(
                        batch_id=batch_id,
                        message_id=message_id,
                        requested_by="U1",
                        requested_at=asked_at,
                        state="done",
                        next_attempt_at=asked_at,
                        outcome=outcome,
                        finished_at=asked_at + 1,
                        delivery=delivery,
                        delivery_at=delivery_at,
                    )
                )
    finally:
        await engine.dispose()


async def test_the_figures_of_a_known_week(database_url: str) -> None:
    await _write_history(database_url)
    engine = create_engine(database_url)
    try:
        report = await ReportReads(engine).report(WEEK_START, WEEK_END)
    finally:
        await engine.dispose()
    assert report.failures == 4  # 5001-5004 (5004 failed twice: one message)
    assert report.failures_before == 2  # 4001, 4002
    assert report.retried == 3  # 5001, 5003, 5004
    assert report.retry_requests == 4
    assert report.delivered == 2  # 5001, 5004
    assert report.delivery_rate == pytest.approx(2 / 3)
    assert report.median_to_delivery == pytest.approx(2 * HOUR)  # median of 1 h and 3 h
    assert dict(report.not_retryable) == {"conversation closed": 1, "channel setup problem": 1}
    assert dict(report.top_businesses) == {"business 1187": 2, "business 2210": 2}
    assert dict(report.top_causes) == {"not checked": 2, "conversation closed": 1, "channel setup problem": 1}


async def test_businesses_are_ranked_by_name_where_a_check_learned_it(database_url: str) -> None:
    from bot.failures.businesses import BusinessNames
    from bot.reports.messages import report_message

    await _write_history(database_url)
    engine = create_engine(database_url)
    try:
        await BusinessNames(engine).remember([1187], "Le Bistrot <!here>", "Paris")
        report = await ReportReads(engine).report(WEEK_START, WEEK_END)
    finally:
        await engine.dispose()
    # 2210 was never named: "business <id>", as before names were known.
    assert dict(report.top_businesses) == {"Le Bistrot <!here> · Paris": 2, "business 2210": 2}
    fields = [
        field["text"] for block in report_message(report).as_kwargs()["blocks"] for field in block.get("fields", [])
    ]
    ranking = next(text for text in fields if text.startswith("*Most failures*"))
    assert "Le Bistrot &lt;!here&gt; · Paris: 2" in ranking


async def test_a_week_with_no_failure_reports_zeros_and_says_so(database_url: str) -> None:
    from bot.reports.messages import report_message

    await _write_history(database_url)
    engine = create_engine(database_url)
    try:
        # Four weeks later: nothing failed, nothing was retried; the week before had nothing either.
        report = await ReportReads(engine).report(WEEK_START + 28 * DAY, WEEK_END + 28 * DAY)
    finally:
        await engine.dispose()
    assert (report.failures, report.failures_before, report.retried, report.delivered) == (0, 0, 0, 0)
    assert report.delivery_rate is None and report.median_to_delivery is None
    text = message_text(_as_recorded(report_message(report)))
    assert "No message failed in these seven days" in text
    assert "nothing retried" in text


def _as_recorded(message: object) -> object:
    """A built message in the shape FakeSlack records (for message_text)."""
    kwargs = message.as_kwargs()  # type: ignore[attr-defined]
    return type("Recorded", (), {"text": kwargs["text"], "blocks": kwargs["blocks"]})()


# -- posted once a week ---------------------------------------------------------------------------


async def _earlier_report_posted(database_url: str, due_at: float) -> None:
    """A bot that has run before: an earlier occurrence is on record, so the latest one is owed."""
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        async with engine.begin() as connection:
            await connection.execute(
                insert(WeeklyReport).values(due_at=int(due_at), channel_id=REPORTS, posted_at=due_at, ts="1.000001")
            )
    finally:
        await engine.dispose()


def _reports_posted(slack: FakeSlack) -> list[object]:
    return [message for message in slack.messages(REPORTS) if "Weekly report" in (message.text or "")]


async def _open_home(bot: RunningBot) -> None:
    await bot.event(
        {
            "type": "event_callback",
            "team_id": "T1",
            "api_app_id": "A1",
            "event_id": "Ev1",
            "event_time": 1,
            "event": {"type": "app_home_opened", "user": "U123", "channel": "D1", "tab": "home"},
        }
    )


async def test_a_report_owed_while_the_bot_was_down_is_posted_at_start_once_and_not_again_after_a_restart(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner
) -> None:
    latest_due = parse_schedule("mon 09:00", ZoneInfo("UTC")).latest_due(time.time())
    await _earlier_report_posted(database_url, latest_due - 7 * DAY)
    environment = bot_environment(slack, partoo, database_url, signer, REPORT_CHANNEL=REPORTS)
    async with running_bot(slack, environment) as bot:
        await eventually(lambda: _reports_posted(slack), timeout=10, message="the owed report is posted")
        # Shown in App Home too: the same week, as the channel got it.
        await _open_home(bot)
        view = await eventually_async(lambda: _published(slack), timeout=10)
        assert "Weekly report" in json.dumps(view)
    async with running_bot(slack, environment) as bot:
        # The restarted bot finds the occurrence posted: a round of its own posts nothing.
        assert bot.bot.report_poster is not None
        await bot.bot.report_poster.tick()
        assert await _round_done(bot)
    assert len(_reports_posted(slack)) == 1


async def _published(slack: FakeSlack) -> object:
    return slack.published_view("U123")


async def _round_done(bot: RunningBot) -> bool:
    # The poster's round claims nothing once the occurrence is posted: its row shows one post, and no lease.
    engine = bot.bot.engine
    async with engine.connect() as connection:
        rows = list(await connection.execute(select(WeeklyReport.due_at, WeeklyReport.lease_until)))
    return len(rows) == 2 and all(row.lease_until is None for row in rows)


async def test_a_new_install_waits_for_the_next_occurrence_instead_of_posting_at_once(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner
) -> None:
    environment = bot_environment(slack, partoo, database_url, signer, REPORT_CHANNEL=REPORTS)
    async with running_bot(slack, environment) as bot:

        async def skipped_recorded() -> bool:
            async with bot.bot.engine.connect() as connection:
                rows = list(await connection.execute(select(WeeklyReport.skipped)))
            return rows == [(True,)]

        await eventually_async(skipped_recorded, timeout=10)
    assert _reports_posted(slack) == []


async def test_a_report_on_demand_covers_the_seven_days_up_to_now_and_leaves_the_schedule_alone(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner
) -> None:
    environment = bot_environment(slack, partoo, database_url, signer, REPORT_CHANNEL=REPORTS)
    async with running_bot(slack, environment) as bot:
        poster = bot.bot.report_poster
        assert poster is not None

        async def schedule_rows() -> list[tuple[bool, bool]]:
            async with bot.bot.engine.connect() as connection:
                rows = await connection.execute(select(WeeklyReport.skipped, WeeklyReport.ts.is_(None)))
                return [(row[0], row[1]) for row in rows]

        # A new install: the occurrence due before it ran is recorded as skipped.
        await eventually_async(lambda: _equals(schedule_rows(), [(True, True)]), timeout=10)
        assert (await bot.webhook(message_updated_event(7001), signer)).status_code == 200
        await eventually_async(lambda: bot.bot.alerts.alert_for(7001), timeout=10)
        ts = await poster.post_now()

        [posted] = _reports_posted(slack)
        assert posted.ts == ts  # type: ignore[attr-defined]
        assert "Weekly report: 1 failed messages, 0 retried" in message_text(posted)
        # Not one of the schedule's occurrences: the skipped one stays as it was, and the next is still owed.
        assert await schedule_rows() == [(True, True)]


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_no_channel_means_no_report(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner
) -> None:
    environment = bot_environment(slack, partoo, database_url, signer)
    async with running_bot(slack, environment) as bot:
        assert bot.bot.report_poster is None


async def test_two_replicas_post_the_owed_report_once(
    slack: FakeSlack, partoo: FakePartoo, postgres_url: str, signer: PartooSigner
) -> None:
    latest_due = parse_schedule("mon 09:00", ZoneInfo("UTC")).latest_due(time.time())
    await _earlier_report_posted(postgres_url, latest_due - 7 * DAY)
    environment = bot_environment(slack, partoo, postgres_url, signer, REPORT_CHANNEL=REPORTS)
    async with running_bot(slack, environment) as first, running_bot(slack, environment) as second:
        await eventually(lambda: _reports_posted(slack), timeout=10)
        await eventually_async(lambda: _round_done(first), timeout=10)
        await eventually_async(lambda: _round_done(second), timeout=10)
        # And rounds of both, side by side, once it is posted: nothing more.
        assert first.bot.report_poster is not None and second.bot.report_poster is not None
        await asyncio.gather(first.bot.report_poster.tick(), second.bot.report_poster.tick())
    assert len(_reports_posted(slack)) == 1


# -- the terminal ---------------------------------------------------------------------------------


async def test_the_report_command_prints_the_figures_as_json(
    sqlite_url: str, slack: FakeSlack, partoo: FakePartoo
) -> None:
    await _write_history(sqlite_url)
    environment = {**os.environ, **bot_environment(slack, partoo, sqlite_url)}
    since = datetime.fromtimestamp(WEEK_START, tz=UTC).isoformat()
    finished = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "report", "--since", since, "--format", "json"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    figures = json.loads(finished.stdout)
    # Up to now: the known week and everything after it, which holds nothing more.
    assert (figures["failures"], figures["retried"], figures["delivered_after_retry"]) == (4, 3, 2)
    assert figures["not_retryable"] == {"conversation closed": 1, "channel setup problem": 1}

    text = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "report", "--since", since],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert text.returncode == 0, text.stderr
    assert "delivered after retry" in text.stdout and "conversation closed" in text.stdout
