"""The durable queue: restarts lose and repeat nothing, replicas share one pace, outages are survived."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import pytest
from sqlalchemy import text

from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import AttemptView, BatchView, NewBatch, RequestView
from bot.platform.database import SchemaTooNewError, create_engine, migrate
from bot.retries.store import RetryQueue
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import (
    CHANNEL,
    FAST,
    RunningBot,
    assert_whole_entities,
    ephemeral_text,
    message_text,
    running_bot,
    section_texts,
)
from tests.outages import database_unavailable
from tests.waiting import eventually, eventually_async


async def test_a_bulk_retry_interrupted_by_a_restart_finishes_after_it_each_id_once(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    environment = {**environment, "PARTOO_RATE_LIMIT_PER_MINUTE": "1200"}  # one call per 50 ms
    ids = list(range(1000, 1040))
    async with running_bot(slack, environment) as first:
        await first.command(" ".join(map(str, ids)))
        await eventually(lambda: len(partoo.calls) >= 10, timeout=10)
    # The first process stopped mid-way: what it had claimed but not sent went back to the queue.
    stopped_after = len(partoo.calls)
    assert stopped_after < len(ids)

    async with running_bot(slack, environment):
        root = slack.root_messages(CHANNEL)[0]
        await eventually(lambda: "40/40 done" in message_text(slack.message(CHANNEL, root.ts)), timeout=20)

    assert sorted(int(message_id) for message_id in partoo.received_ids()) == ids
    assert len(slack.root_messages(CHANNEL)) == 1


async def test_a_dead_workers_requests_are_taken_over_and_a_call_in_flight_is_never_repeated(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str], database_url: str
) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    queue = RetryQueue(engine)
    ask = NewBatch(source="command", requested_by="U1", channel_id=CHANNEL, correlation_id="dead")
    result = await queue.enqueue(ask, [501, 502])
    assert result.batch_id is not None
    claimed = await queue.claim_announcement(30.0)
    assert claimed is not None and claimed[0].id == result.batch_id
    await queue.mark_announced(claimed[1], root_channel=None, root_ts=None, uses_response_url=False)
    # A worker claims both, opens an attempt for the first (the HTTP call was on its way), then dies.
    first = await queue.claim_next("dead-worker", lease_seconds=0.5)
    second = await queue.claim_next("dead-worker", lease_seconds=0.5)
    assert first is not None
    assert second is not None
    assert await queue.begin_attempt(first.id, first.lease_token, "dead-worker") is not None
    await engine.dispose()

    async with running_bot(slack, environment) as bot:
        await eventually(lambda: partoo.count(second.message_id) == 1, timeout=10)
        history = await eventually_async(lambda: _finished(bot, first.message_id), timeout=10)

    assert history is not None
    assert partoo.count(first.message_id) == 0  # it may have reached Partoo already: never resent
    request, _batch, attempts = history
    assert request.outcome is OutcomeKind.UNKNOWN
    assert len(attempts) == 1


async def _finished(bot: RunningBot, message_id: int) -> tuple[RequestView, BatchView, list[AttemptView]] | None:
    history = await bot.bot.retry_log.history(message_id)
    return history[-1] if history and history[-1][0].finished_at is not None else None


@pytest.mark.long(10)
async def test_two_replicas_share_one_pace_and_send_each_id_once(slack: FakeSlack, environment: dict[str, str]) -> None:
    # Partoo allows 20 calls in any 2 s here; the bots are told 300 a minute (5 a second) between them. Shared, the
    # 60 calls take about 12 s and a call must be held up almost 2 s by the machine to bunch into a 429; each
    # replica pacing alone would send twice as fast and finish in about 6 s.
    with FakePartoo(api_key=environment["PARTOO_API_KEY"], rate_limit_per_minute=20, rate_window_seconds=2.0) as partoo:
        shared = {**environment, "PARTOO_API_URL": partoo.api_url, "PARTOO_RATE_LIMIT_PER_MINUTE": "300"}
        async with running_bot(slack, shared) as one, running_bot(slack, shared) as two:
            await one.command(" ".join(str(n) for n in range(1, 31)))
            await two.command(" ".join(str(n) for n in range(31, 61)), channel_id="C456")
            await eventually(lambda: len(partoo.calls) >= 60, timeout=40)
        arrivals = sorted(call.at for call in partoo.calls)
        assert arrivals[-1] - arrivals[0] >= 9.0  # 59 slots 0.2 s apart, less what the machine may delay the first
        assert partoo.rate_limited_count == 0
        assert partoo.max_calls_in_any_window(2.0) <= 20
        assert sorted(int(message_id) for message_id in partoo.received_ids()) == list(range(1, 61))


async def test_a_429_pauses_every_call_until_retry_after(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    partoo.answer(1, 429, headers={"Retry-After": "1"}, times=1)
    # Calls 300 ms apart: the 429 arrives long before the second call's slot.
    async with running_bot(slack, {**environment, "PARTOO_RATE_LIMIT_PER_MINUTE": "200"}) as bot:
        await bot.command("1")
        await eventually(lambda: partoo.calls)
        await bot.command("2 3")
        await eventually(lambda: len(partoo.calls) == 4, timeout=10)

    calls = partoo.calls
    assert calls[0].message_id == "1"
    assert calls[0].status == 429
    assert all(call.at - calls[0].at >= 0.95 for call in calls[1:])


async def test_a_database_outage_refuses_commands_clearly_and_is_survived(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, database_url: str
) -> None:
    async with database_unavailable(database_url):
        answer = ephemeral_text(await bot.command("4567"))
        assert "retry log is unavailable" in answer
        readiness = await bot.http.get("/readyz")
        assert readiness.status_code == 503
        assert "database" in " ".join(readiness.json()["problems"])
        assert (await bot.http.get("/healthz")).status_code == 200
    assert partoo.calls == []

    # Back without a restart.
    await eventually_async(lambda: _ready(bot), timeout=10)
    assert (await bot.command("4567")).text == ""
    await eventually(lambda: partoo.count(4567) == 1, timeout=10)


async def _ready(bot: RunningBot) -> bool:
    return (await bot.http.get("/readyz")).status_code == 200


async def test_outcomes_are_mirrored_to_the_log_channel_in_batches(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    partoo.answer(3, 404)
    async with running_bot(slack, {**environment, "SLACK_LOG_CHANNEL": "CLOG"}) as bot:
        await bot.command(" ".join(str(n) for n in range(1, 21)))
        await eventually(lambda: all(f"`{n}`" in _log_text(slack) for n in range(1, 21)), timeout=10)
    posts = slack.root_messages("CLOG")
    text = _log_text(slack)
    assert "not found" in text
    assert len(posts) < 20  # batched, not one post per outcome


MIRRORED = text("SELECT count(*) FROM retry_requests WHERE logged_at IS NOT NULL")


@pytest.mark.long(10)
async def test_every_outcome_marked_mirrored_shows_in_the_log_channel(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    # Long ids make long lines, and every outcome arrives within one mirroring round: the round's forty lines
    # are far more than one section holds.
    ids = [9_000_000_000_000_000_000 + n for n in range(90)]
    for message_id in ids[::3]:
        partoo.answer(message_id, 404)
    tuning = dataclasses.replace(FAST, log_channel_interval=2.0)
    async with running_bot(slack, {**environment, "SLACK_LOG_CHANNEL": "CLOG"}, tuning) as bot:
        await bot.command(" ".join(map(str, ids)))

        async def all_mirrored() -> bool:
            async with bot.bot.queue.engine.connect() as connection:
                marked = await connection.scalar(MIRRORED)
            return bool(marked == len(ids))

        await eventually_async(all_mirrored, timeout=30)
    shown: list[str] = []
    for post in slack.root_messages("CLOG"):
        assert post.blocks
        for shown_text in section_texts(post.blocks):
            assert_whole_entities(shown_text)
            shown.extend(re.findall(r"`(\d+)`", shown_text))
    assert sorted(shown) == sorted(map(str, ids))  # each once, none lost


@pytest.mark.long(10)
async def test_outcomes_mirrored_while_the_log_channel_was_unavailable_are_posted_later_once(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    # Two posts' worth of failures, past slack_sdk's own retries: the bot gives up twice, then Slack is back.
    slack.fail_next("chat.postMessage", times=6, status=503, channel="CLOG")
    async with running_bot(slack, {**environment, "SLACK_LOG_CHANNEL": "CLOG"}) as bot:
        await bot.command("1 2 3")
        await eventually(lambda: len(_mirrored_ids(slack)) >= 3, timeout=20)
    assert len([call for call in slack.calls_to("chat.postMessage") if call.http_status == 503]) == 6
    assert sorted(_mirrored_ids(slack)) == ["1", "2", "3"]


def _mirrored_ids(slack: FakeSlack) -> list[str]:
    """The message ids the log channel's posts show, as people see them (the blocks)."""
    return [
        found
        for post in slack.root_messages("CLOG")
        for shown_text in section_texts(post.blocks or [])
        for found in re.findall(r"`(\d+)`", shown_text)
    ]


def _log_text(slack: FakeSlack) -> str:
    return " ".join(post.text or "" for post in slack.root_messages("CLOG"))


async def test_a_schema_newer_than_the_code_stops_with_a_clear_error(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaTooNewError, match="9999_from_the_future"):
        await migrate(engine)
    await engine.dispose()


@pytest.mark.long(10)
async def test_the_log_exports_as_csv_and_json(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    partoo.answer(2, 404)
    await bot.command("1 2")
    await eventually(lambda: len(partoo.calls) == 2)
    root = slack.root_messages(CHANNEL)[0]
    await eventually(lambda: "2/2 done" in message_text(slack.message(CHANNEL, root.ts)))

    csv_out = await _cli(environment, "log", "export", "--since", "1d", "--format", "csv")
    json_out = await _cli(environment, "log", "export", "--since", "1d", "--format", "json")

    lines = csv_out.strip().splitlines()
    assert lines[0].startswith("request_id,message_id,requested_by,requested_at")
    assert len(lines) == 3
    records = [json.loads(line) for line in json_out.strip().splitlines()]
    assert {(r["message_id"], r["outcome"]) for r in records} == {(1, "accepted"), (2, "not_found")}


async def _cli(environment: dict[str, str], *arguments: str) -> str:
    import os
    import sys

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *arguments,
        env={"PATH": os.environ.get("PATH", ""), **environment},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()
