"""Operating the bot: /metrics, request ids across the queue, Socket Mode, and two replicas as processes."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.logs import AddRequestId
from tests.fakes import FakePartoo, FakeSlack
from tests.fakes.socket_mode import FakeSocketMode, payload_of
from tests.harness import (
    ALERT_CHANNEL,
    CHANNEL,
    SIGNING_SECRET,
    USER,
    RunningBot,
    bot_environment,
    buttons,
    message_text,
    retryable_alert,
    running_bot,
)
from tests.processes import free_port, start_bot
from tests.signing import (
    PartooSigner,
    block_actions_body,
    message_updated_event,
    slack_signature_headers,
    slash_command_body,
)
from tests.waiting import eventually, eventually_async, wait_until


async def test_metrics_count_retries_partoo_calls_webhooks_alerts_and_slack_errors(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    partoo.answer(2, 404)
    slack.not_in_channel("CPRIVATE")
    await bot.command("1 2")
    await bot.command("3", channel_id="CPRIVATE", response_url=slack.response_url("private"))
    await bot.webhook(message_updated_event(77), signer)
    await bot.webhook(message_updated_event(77), signer)
    await eventually(lambda: slack.root_messages(ALERT_CHANNEL) and slack.responses("private"))
    await eventually(lambda: len(partoo.calls) == 3)
    # Fake Slack and Partoo record a call before the bot has read the answer and counted it: wait for the counts.
    expected = [
        'retries_total{outcome="accepted"} 2.0',
        'retries_total{outcome="not_found"} 1.0',
        'partoo_responses_total{status="200"} 2.0',
        "partoo_request_seconds_bucket",
        'webhook_events_total{type="message_updated",verdict="stored"} 1.0',
        'webhook_events_total{type="message_updated",verdict="duplicate"} 1.0',
        'alerts_posted_total{kind="alert"} 1.0',
        'slack_api_errors_total{error="not_in_channel"}',
        "queue_depth 0.0",
    ]
    response = await eventually_async(lambda: _metrics_showing(bot, expected))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


async def _metrics_showing(bot: RunningBot, lines: list[str]) -> httpx.Response:
    response = await bot.http.get("/metrics")
    missing = [line for line in lines if line not in response.text]
    assert not missing, f"/metrics lacks {missing}"
    return response


async def test_metrics_count_webhooks_refused_as_too_large(bot: RunningBot, signer: PartooSigner) -> None:
    oversized = b"{" + b" " * (1024 * 1024) + b"}"

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: refused while it is read
        for start in range(0, len(oversized), 64 * 1024):
            yield oversized[start : start + 64 * 1024]

    declared = await bot.webhook(oversized, signer)
    chunked = await bot.http.post("/partoo/webhook", content=streamed(), headers=signer.headers(oversized))
    elsewhere = await bot.http.post("/slack/events", content=oversized)

    assert [declared.status_code, chunked.status_code, elsewhere.status_code] == [413, 413, 413]
    text = (await bot.http.get("/metrics")).text
    assert 'webhook_events_total{type="unknown",verdict="too_large"} 2.0' in text


async def test_one_request_id_ties_the_command_its_partoo_call_and_its_replies_together(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(AddRequestId())
    caplog.set_level(logging.INFO)

    response = await bot.command("4567")

    request_id = response.headers["X-Request-ID"]
    await eventually(lambda: partoo.count(4567) == 1)
    record = await eventually(
        lambda: next((r for r in caplog.records if "Partoo message 4567: accepted" in r.getMessage()), None)
    )
    assert record is not None
    assert record.request_id == request_id  # type: ignore[attr-defined]
    asked = next(r for r in caplog.records if "asked to retry" in r.getMessage())
    assert asked.request_id == request_id  # type: ignore[attr-defined]


async def test_metrics_and_health_need_no_slack_signature(bot: RunningBot) -> None:
    assert (await bot.http.get("/healthz")).status_code == 200
    assert (await bot.http.get("/readyz")).json()["status"] == "ready"  # with webhook and retention detail
    assert (await bot.http.get("/metrics")).status_code == 200


async def test_socket_mode_serves_commands_and_clicks_and_reconnects(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, environment: dict[str, str]
) -> None:
    with FakeSocketMode() as socket_mode:
        slack.socket_mode_url = socket_mode.url
        socket_environment = {key: value for key, value in environment.items() if key != "SLACK_SIGNING_SECRET"} | {
            "SLACK_APP_TOKEN": slack.app_token
        }
        async with running_bot(slack, socket_environment) as bot:
            await eventually(lambda: socket_mode.open_connections == 1)
            assert (await bot.http.get("/readyz")).status_code == 200
            # Over HTTP, /slack/events is not served in Socket Mode (no signing secret to check it with).
            body = slash_command_body("4567")
            refused = await bot.http.post("/slack/events", content=body, headers=slack_signature_headers("x", body))
            assert refused.status_code == 404

            command = socket_mode.send_envelope("slash_commands", payload_of(slash_command_body("4567")))
            await eventually(lambda: socket_mode.ack(command))
            root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
            await eventually(lambda: slack.thread(CHANNEL, root.ts))
            assert partoo.count(4567) == 1

            await bot.webhook(message_updated_event(88), signer)
            alert = await retryable_alert(slack)
            await bot.alert_recorded(88, alert.ts)
            socket_mode.disconnect("close")
            await eventually(lambda: socket_mode.connections == 2 and socket_mode.open_connections == 1, timeout=15)
            click = block_actions_body(
                action_id=buttons(alert)[0]["action_id"],
                value="88",
                channel_id=ALERT_CHANNEL,
                message_ts=alert.ts,
                user_id=USER,
            )
            clicked = socket_mode.send_envelope("interactive", payload_of(click))
            ack = await eventually(lambda: socket_mode.ack(clicked))
            assert ack is not None
            assert ack.connection == 2
            await eventually(lambda: partoo.count(88) == 1)
            await eventually(lambda: "Retried by" in message_text(slack.message(ALERT_CHANNEL, alert.ts)))


def _command(url: str, text: str, slack: FakeSlack, user: str) -> httpx.Response:
    body = slash_command_body(text, user_id=user, response_url=slack.response_url(f"{user}-{text[:8]}"))
    return httpx.post(
        f"{url}/slack/events", content=body, headers=slack_signature_headers(SIGNING_SECRET, body), timeout=10
    )


@pytest.mark.long(10)
@pytest.mark.e2e
def test_two_replica_processes_share_one_postgresql_one_pace_and_send_each_id_once(
    slack: FakeSlack, postgres_url: str, signer: PartooSigner, tmp_path: Path
) -> None:
    # Partoo allows 30 calls in any 3 s here (its minute, shortened); the replicas are told 420 a minute (7 a
    # second) between them: shared, that leaves a call about 1.2 s to be late, as Partoo's minute does (see
    # bot.platform.pace); two paces would send 14 a second. (With 10 in 1 s, 0.45 s of lateness drew a 429 in CI.)
    partoo = FakePartoo(api_key="partoo-test-key-c4d8e1", rate_limit_per_minute=30, rate_window_seconds=3.0)
    with partoo:
        environment = bot_environment(
            slack, partoo, postgres_url, signer, PARTOO_RATE_LIMIT_PER_MINUTE="420", LOG_FORMAT="json"
        )
        with (
            start_bot(environment, tmp_path, port=free_port(), name="one") as one,
            start_bot(environment, tmp_path, port=free_port(), name="two") as two,
        ):
            one.wait_healthy()
            two.wait_healthy()
            wait_until(lambda: httpx.get(f"{one.url}/readyz").status_code == 200, timeout=20)
            wait_until(lambda: httpx.get(f"{two.url}/readyz").status_code == 200, timeout=20)
            for first in range(1, 41, 10):
                replica = one if first % 20 == 1 else two
                ids = " ".join(str(n) for n in range(first, first + 10))
                assert _command(replica.url, ids, slack, user=f"U{first}").status_code == 200
            # A failure alert, clicked on both replicas by two people at once.
            event = json.dumps(message_updated_event(500)).encode()
            httpx.post(f"{one.url}/partoo/webhook", content=event, headers=signer.headers(event))
            httpx.post(f"{two.url}/partoo/webhook", content=event, headers=signer.headers(event))
            alert = wait_until(lambda: slack.root_messages(ALERT_CHANNEL), timeout=20)[0]
            for replica, user in ((one, "UA"), (two, "UB")):
                click = block_actions_body(
                    action_id="partoo_retry.retry",
                    value="500",
                    user_id=user,
                    channel_id=ALERT_CHANNEL,
                    message_ts=alert.ts,
                )
                httpx.post(
                    f"{replica.url}/slack/events",
                    content=click,
                    headers=slack_signature_headers(SIGNING_SECRET, click),
                )
            wait_until(lambda: len(partoo.calls) >= 41, timeout=60)
            assert one.stop(signal.SIGTERM) == 0
            assert two.stop(signal.SIGTERM) == 0
        received = sorted(int(n) for n in partoo.received_ids())
        assert received == [*range(1, 41), 500]
        assert partoo.rate_limited_count == 0
        assert partoo.max_calls_in_any_window(3.0) <= 30
        assert len(slack.root_messages(ALERT_CHANNEL)) == 1
        # Both replicas did some of the work, and logged it as JSON lines with request ids.
        for replica in (one, two):
            lines = [json.loads(line) for line in replica.stderr().splitlines() if line.startswith("{")]
            assert any("Partoo message" in line["message"] for line in lines)
            assert all("level" in line and "time" in line for line in lines)


async def test_readiness_says_when_slack_rejects_the_token(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    async with running_bot(slack, environment) as bot:
        slack.fail_next("auth.test", times=1, status=200, error="invalid_auth")
        answer = await bot.http.get("/readyz")
    assert answer.status_code == 503
    assert "Slack rejects the bot token (invalid_auth)" in answer.json()["problems"]
