"""Hostile input from anyone who can reach the bot: a clear answer or a 4xx, never a 5xx, never a Partoo call."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import create_app
from bot.config import load_settings
from bot.retries.commands import UsageError, parse_command
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import ALERT_CHANNEL, FAST, SIGNING_SECRET, RunningBot, message_text, running_bot
from tests.signing import PartooSigner, message_updated_event, slack_signature_headers, slash_command_body
from tests.waiting import eventually

# One bot serves every generated example: the point is that no input, however odd, breaks it.
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


# The command's own grammar, so that the fuzzer writes what people and attackers type, not only noise:
# subcommands, signs before numbers, digits of several scripts, numbers longer than any id, separators.
_DIGITS = "0123456789"
_OTHER_DIGITS = "\u0660\u0664\u06f5\u0967\uff19\u00b2\u00b3\u2075"  # Arabic-Indic, Persian, Devanagari, ...
_numbers = (
    st.text(alphabet=_DIGITS, min_size=1, max_size=25)
    | st.text(alphabet=_DIGITS + _OTHER_DIGITS, min_size=1, max_size=8)
    | st.text(alphabet=_DIGITS, min_size=19, max_size=5000)
)
_signs = st.sampled_from(["", "", "+", "-", "--", "+-", "-+", "++", "---"])
_tokens = (
    st.builds(lambda sign, number: sign + number, _signs, _numbers)
    | st.sampled_from(
        ["status", "log", "help", "silences", "STATUS", "Log", "Silences", "--", "+", "-", ",", "<!channel>"]
    )
    # `failed`'s filter (issue 21): keywords, spans, times and values, well- and ill-formed.
    | st.sampled_from(["failed", "FAILED", "since", "business", "partner", "cause", "closed", "setup", "whatsapp"])
    | st.builds(lambda number, unit: number + unit, _numbers, st.sampled_from(["m", "h", "d", "s", "H", ""]))
    | st.sampled_from(["2026-12-05T09:30", "2026-12-05", "9999-99-99", "0001-01-01T00:00+14:00", "2h30m", "`x`"])
    | st.text(max_size=12)
)
_separators = st.sampled_from([" ", ",", ", ", "  ", "\t", "\n", "\u00a0", ""])
command_texts = st.builds(
    lambda tokens, separators: "".join(token + separator for token, separator in zip(tokens, separators, strict=False)),
    st.lists(_tokens, min_size=1, max_size=5),
    st.lists(_separators, min_size=5, max_size=5),
)


_commands = itertools.count()


@settings(max_examples=400, deadline=None)
@given(text=st.builds(lambda rest: "failed " + rest, command_texts) | command_texts)
def test_parsing_a_filter_is_total(text: str) -> None:
    # Whatever follows `failed`, the parser gives a filter or a sentence: it never raises, never echoes `<`.
    parsed = parse_command(text, now=1_796_000_000.0)
    if isinstance(parsed, UsageError):
        assert "<" not in parsed.problem


@settings(FUZZ, max_examples=100)
@given(text=command_texts | st.text(max_size=300))
async def test_any_command_text_gets_a_clear_answer(bot: RunningBot, partoo: FakePartoo, text: str) -> None:
    before = len(await bot.bot.retry_log.recent(50))

    # Slack gives every command its own response_url (one may be used five times): `log` and `status` use it.
    response = await bot.command(text, response_url=bot.slack.response_url(f"fuzz-{next(_commands)}"))

    assert response.status_code == 200
    if isinstance(parse_command(text), UsageError):
        assert response.json()["response_type"] == "ephemeral"
        assert len(await bot.bot.retry_log.recent(50)) == before


@FUZZ
@given(payload=json_values)
async def test_any_signed_json_is_answered_without_a_server_error(
    bot: RunningBot, signer: PartooSigner, payload: Any
) -> None:
    response = await bot.webhook(json.dumps(payload).encode(), signer)
    assert response.status_code in (200, 400)


@FUZZ
@given(message=st.dictionaries(st.sampled_from(["id", "status", "sender_type", "content", "date"]), json_values))
async def test_any_message_shape_is_answered_without_a_server_error(
    bot: RunningBot, signer: PartooSigner, message: dict[str, Any]
) -> None:
    event = {"type": "message_updated", "payload": {"message": message, "conversation": message}}
    response = await bot.webhook(event, signer)
    assert response.status_code in (200, 400)


@FUZZ
@given(body=st.binary(max_size=400))
async def test_any_signed_bytes_are_answered_without_a_server_error(
    bot: RunningBot, signer: PartooSigner, body: bytes
) -> None:
    response = await bot.webhook(body, signer)
    assert response.status_code in (200, 400)


async def test_bad_input_never_reached_partoo_or_slack(bot: RunningBot, partoo: FakePartoo, slack: FakeSlack) -> None:
    for text in ("<!channel>", "12a", "-1", "0", "status", "log 99", "x" * 5000, "\x00\x01"):
        await bot.command(text)
    assert partoo.calls == []
    assert slack.calls_to("chat.postMessage") == []


@pytest.mark.parametrize(
    "forge",
    ["wrong secret", "no headers", "replayed", "other body", "malformed signature"],
)
async def test_forged_slack_requests_are_refused(
    bot: RunningBot, partoo: FakePartoo, slack: FakeSlack, forge: str
) -> None:
    body = slash_command_body("4567", response_url=slack.response_url("forged"))
    headers = slack_signature_headers(SIGNING_SECRET, body)
    if forge == "wrong secret":
        headers = slack_signature_headers("not-the-secret", body)
    elif forge == "no headers":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    elif forge == "replayed":
        headers = slack_signature_headers(SIGNING_SECRET, body, timestamp=int(time.time()) - 6 * 60)
    elif forge == "other body":
        body = slash_command_body("9999", response_url=slack.response_url("forged"))
    elif forge == "malformed signature":
        headers["X-Slack-Signature"] = "v0=zz"

    response = await bot.http.post("/slack/events", content=body, headers=headers)

    assert response.status_code == 401
    assert partoo.calls == []
    assert slack.calls_to("chat.postMessage") == []
    assert await bot.bot.retry_log.recent(5) == []


async def test_webhooks_signed_with_a_key_other_than_partoos_are_refused(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, environment: dict[str, str]
) -> None:
    # No PARTOO_WEBHOOK_PUBLIC_KEY: the bot trusts only Partoo's published production key.
    production = {key: value for key, value in environment.items() if key != "PARTOO_WEBHOOK_PUBLIC_KEY"}
    async with running_bot(slack, production) as bot:
        response = await bot.webhook(message_updated_event(1), signer)
        assert response.status_code == 401
        stored = await bot.bot.alerts.claim_events(lease_seconds=1)
    assert stored == []


INJECTIONS = "<!channel> <!here> <@U666> <https://evil.example|click> & <b>"


def _no_raw_injection(text: str) -> None:
    for raw in ("<!channel>", "<!here>", "<@U666>", "<https://evil.example|click>"):
        assert raw not in text, f"{raw} reached Slack unescaped"


async def test_mrkdwn_injection_in_every_field_is_shown_as_text(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    event = message_updated_event(
        4567,
        content=INJECTIONS,
        consumer_name=INJECTIONS,
        sender_label=INJECTIONS,
        messaging_partner=INJECTIONS,
    )
    partoo.answer(4567, 400, body={"errors": {"json": {"message": [INJECTIONS]}}})
    await bot.webhook(event, signer)
    alert = (await eventually(lambda: slack.root_messages(ALERT_CHANNEL)))[0]

    await bot.alert_recorded(4567, alert.ts)
    await bot.click(action_id="partoo_retry.retry", value="4567", channel_id=ALERT_CHANNEL, message_ts=alert.ts)
    await eventually(lambda: slack.thread(ALERT_CHANNEL, alert.ts))
    refusal = await bot.command("4568 <!channel>")
    texts_of_answers = [refusal.text]
    await bot.command("status 4567", response_url=slack.response_url("status"))
    await eventually(lambda: slack.responses("status"))

    texts = [json.dumps(call.params) for call in slack.calls if call.method.startswith("chat.")]
    texts += [json.dumps(response) for response in slack.responses()] + texts_of_answers
    for text in texts:
        _no_raw_injection(text)
    everything = " ".join(texts)
    assert "&lt;!channel&gt;" in everything
    assert "&amp;" in everything
    assert "&lt;@U666&gt;" in message_text(slack.message(ALERT_CHANNEL, alert.ts))


async def test_oversized_bodies_are_refused_on_every_route(bot: RunningBot, signer: PartooSigner) -> None:
    huge = b"x" * (1024 * 1024 + 1)
    slack_headers = slack_signature_headers(SIGNING_SECRET, huge)
    assert (await bot.http.post("/slack/events", content=huge, headers=slack_headers)).status_code == 413
    assert (await bot.webhook(huge, signer)).status_code == 413
    assert (await bot.http.get("/healthz")).status_code == 200


async def test_a_slow_body_is_cut_off_and_the_bot_keeps_serving(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    app = create_app(load_settings(environment), FAST.__class__(**{**FAST.__dict__, "body_read_seconds": 0.5}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /partoo/webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"type":'
        )
        await writer.drain()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200  # served while the slow body trickles
        answer = await asyncio.wait_for(reader.read(200), timeout=5)
        assert answer.startswith(b"HTTP/1.1 408")
        writer.close()
    finally:
        server.should_exit = True
        await serving


async def test_a_burst_of_forged_requests_does_not_take_the_bot_down(bot: RunningBot, signer: PartooSigner) -> None:
    body = json.dumps(message_updated_event(1)).encode()
    forged = [
        bot.http.post("/partoo/webhook", content=body, headers={"X-Partoo-Signature-v1": "AAAA"}) for _ in range(300)
    ]
    answers = await asyncio.gather(*forged)
    assert {answer.status_code for answer in answers} == {401}
    assert (await bot.webhook(message_updated_event(2), signer)).status_code == 200
    assert (await bot.command("help")).status_code == 200
