"""Secrets stay secret: the main flows run with distinctive values, then every trace is searched for them."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakePartoo, FakeSlack
from tests.harness import ALERT_CHANNEL, CHANNEL, SECRETS, RunningBot, bot_environment, buttons, retryable_alert
from tests.processes import free_port, start_bot
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually, wait_until


async def _main_flows(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner) -> list[str]:
    """Commands, alerts, clicks and failures; returns every HTTP answer the bot gave."""
    answers: list[httpx.Response] = []
    partoo.answer(2, 401)
    partoo.answer(3, 400, body={"errors": {"json": "refused"}})
    slack.fail_next("chat.postMessage", times=1, status=429, retry_after=1)
    answers.append(await bot.command("1 2 3"))
    answers.append(await bot.command("status 1", response_url=slack.response_url("status")))
    answers.append(await bot.command("log"))
    answers.append(await bot.command("nonsense"))
    answers.append(await bot.command("4", secret="wrong-secret"))
    answers.append(await bot.webhook(message_updated_event(77), signer))
    answers.append(await bot.webhook(message_updated_event(78), PartooSigner()))
    answers.append(await bot.webhook(b"not json", signer))
    # DEBUG logging of every SQL statement slows everything down: wait generously.
    alert = await retryable_alert(slack)
    await bot.alert_recorded(77, alert.ts)
    click = await bot.click(
        action_id=buttons(alert)[0]["action_id"], value="77", channel_id=ALERT_CHANNEL, message_ts=alert.ts
    )
    answers.append(click)
    await eventually(lambda: slack.thread(ALERT_CHANNEL, alert.ts), timeout=20)
    await eventually(lambda: "3/3 done" in json.dumps([m.blocks for m in slack.messages(CHANNEL)]), timeout=20)
    # The 401's explanation is a thread reply of its own, paced like every post: it may follow the summary.
    await eventually(lambda: "PARTOO_API_KEY" in json.dumps([call.params for call in slack.calls]), timeout=20)
    answers.append(await bot.http.get("/readyz"))
    return [answer.text for answer in answers]


async def test_no_secret_in_logs_slack_messages_or_http_answers(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    answers = await _main_flows(bot, slack, partoo, signer)

    traces = {
        "logs": caplog.text,
        "Slack calls": json.dumps([call.params for call in slack.calls]),
        "response_url posts": json.dumps(slack.responses()),
        "HTTP answers": " ".join(answers),
    }
    assert "PARTOO_API_KEY" in traces["Slack calls"]  # the 401 flow did run and was explained
    for where, text in traces.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret appears in {where}"


@pytest.mark.e2e
def test_no_secret_in_the_output_of_a_running_bot(
    slack: FakeSlack, partoo: FakePartoo, sqlite_url: str, signer: PartooSigner, tmp_path: Path
) -> None:
    environment = bot_environment(slack, partoo, sqlite_url, signer)
    partoo.answer(2, 401)
    port = free_port()
    with start_bot(environment, tmp_path, port=port) as bot:
        bot.wait_healthy()
        from tests.harness import SIGNING_SECRET
        from tests.signing import slack_signature_headers, slash_command_body

        body = slash_command_body("1 2", response_url=slack.response_url("e2e"))
        httpx.post(f"{bot.url}/slack/events", content=body, headers=slack_signature_headers(SIGNING_SECRET, body))
        event = json.dumps(message_updated_event(5)).encode()
        httpx.post(f"{bot.url}/partoo/webhook", content=event, headers=signer.headers(event))
        httpx.post(f"{bot.url}/partoo/webhook", content=event, headers={"X-Partoo-Signature-v1": "bad"})
        wait_until(lambda: slack.root_messages(ALERT_CHANNEL) and len(partoo.calls) == 2, timeout=20)
        assert bot.stop(signal.SIGTERM) == 0
        output = bot.logs()
    assert "Partoo retry" in output  # the flows were logged
    for secret in SECRETS:
        assert secret not in output
