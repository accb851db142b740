"""The fakes behave as documented, seen through real HTTP clients (httpx, slack_sdk)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes import ANY_MESSAGE, FakePartoo, FakeSlack, Reply
from tests.signing import (
    PartooSigner,
    block_actions_body,
    json_body,
    message_updated_event,
    slack_signature_headers,
    slash_command_body,
)
from tests.waiting import eventually, wait_until

KEY = "partoo-test-key"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(usergroups={"S1": ["U1", "U2"]}) as fake:
        yield fake


@pytest.fixture
def partoo() -> Iterator[FakePartoo]:
    with FakePartoo() as fake:
        yield fake


@pytest.fixture
def web(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url, retry_handlers=[])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def retry(http: httpx.AsyncClient, partoo: FakePartoo, message_id: object, key: str = KEY) -> httpx.Response:
    return await http.post(f"{partoo.api_url}/messages/{message_id}/retry", headers={"x-APIKey": key})


# -- server base ---------------------------------------------------------------------------------------------


def test_server_listens_on_a_free_loopback_port_and_stops() -> None:
    with FakeSlack() as first, FakeSlack() as second:
        assert first.port != second.port
        assert first.api_url == f"http://127.0.0.1:{first.port}/api/"
        assert httpx.post(f"{first.api_url}auth.test").json() == {"ok": False, "error": "invalid_auth"}
        url = first.api_url
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}auth.test")
    first.stop()  # a second stop is harmless


async def test_async_context_manager(http: httpx.AsyncClient) -> None:
    async with FakePartoo() as partoo:
        assert (await retry(http, partoo, 1)).json() == {"status": "success"}
    assert not partoo.running


def test_stop_releases_a_held_call() -> None:
    partoo = FakePartoo().start()
    partoo.hold()
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.post(f"{partoo.api_url}/messages/1/retry", headers={"x-APIKey": KEY}).status_code)
        except httpx.HTTPError as error:
            outcome.append(error)

    thread = threading.Thread(target=call)
    thread.start()
    wait_until(lambda: partoo.in_flight == 1)
    started = time.monotonic()
    partoo.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert outcome
    assert time.monotonic() - started < 3


# -- FakeSlack -----------------------------------------------------------------------------------------------


async def test_auth_test_and_invalid_auth(slack: FakeSlack, web: AsyncWebClient) -> None:
    answer = await web.auth_test()
    assert (answer["team_id"], answer["user_id"], answer["bot_id"], answer["user"]) == (
        "T0001",
        "UBOT",
        "BBOT",
        "partoo-retry",
    )
    with pytest.raises(SlackApiError) as caught:
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test()
    assert caught.value.response["error"] == "invalid_auth"
    assert [call.method for call in slack.calls] == ["auth.test", "auth.test"]
    assert slack.calls[0].headers["Authorization"] == "Bearer xoxb-test"


async def test_post_message_records_params_and_keeps_threads(slack: FakeSlack, web: AsyncWebClient) -> None:
    root = await web.chat_postMessage(channel="C1", text="alert", blocks=[SECTION])
    reply = await web.chat_postMessage(channel="C1", thread_ts=root["ts"], text="retried")
    nested = await web.chat_postMessage(channel="C1", thread_ts=reply["ts"], text="again")
    other = await web.chat_postMessage(channel="C2", text="elsewhere")

    assert root["ts"] == "1700000000.000100"
    assert root["ts"] < reply["ts"] < nested["ts"] < other["ts"]
    assert root["message"]["blocks"] == [SECTION]
    call = slack.calls_to("chat.postMessage")[0]
    assert call.params["blocks"] == [SECTION]
    assert call.params["channel"] == "C1"
    assert call.headers["Content-Type"].startswith("application/json")  # slack_sdk sends JSON here
    assert call.http_status == 200
    assert call.response["ts"] == root["ts"]
    assert slack.calls_to("chat.postMessage")[1].params["thread_ts"] == root["ts"]

    assert [m.text for m in slack.root_messages("C1")] == ["alert"]
    # A reply to a reply lands in the root's thread, as in Slack.
    assert [m.text for m in slack.thread("C1", root["ts"])] == ["retried", "again"]
    message = slack.message("C1", root["ts"])
    assert message is not None
    assert message.blocks == [SECTION]
    assert message.thread_ts is None
    assert slack.message("C1", "1.2") is None


async def test_form_encoded_params_and_blocks_are_parsed(slack: FakeSlack, http: httpx.AsyncClient) -> None:
    form = {"channel": "C1", "text": "t", "blocks": json.dumps([SECTION]), "thread_ts": ""}
    answer = await http.post(
        f"{slack.api_url}chat.postMessage", data=form, headers={"Authorization": "Bearer xoxb-test"}
    )
    assert answer.json()["ok"] is True
    assert slack.calls[0].params["blocks"] == [SECTION]
    assert slack.root_messages("C1")[0].thread_ts is None
    # The token may also come as a form field, as older clients send it.
    answer = await http.post(f"{slack.api_url}auth.test", data={"token": "xoxb-test"})
    assert answer.json()["ok"] is True


async def test_update_changes_only_what_is_given(slack: FakeSlack, web: AsyncWebClient) -> None:
    posted = await web.chat_postMessage(channel="C1", text="v1", blocks=[SECTION])
    await web.chat_update(channel="C1", ts=posted["ts"], text="v2")
    message = slack.message("C1", posted["ts"])
    assert message is not None
    assert (message.text, message.blocks, message.edits) == ("v2", [SECTION], 1)
    await web.chat_update(channel="C1", ts=posted["ts"], text="v3", blocks=[])
    message = slack.message("C1", posted["ts"])
    assert message is not None
    assert (message.text, message.blocks) == ("v3", [])
    with pytest.raises(SlackApiError) as caught:
        await web.chat_update(channel="C1", ts="1700000000.999999", text="x")
    assert caught.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError):
        await web.chat_update(channel="C2", ts=posted["ts"], text="x")


async def test_other_methods(slack: FakeSlack, web: AsyncWebClient) -> None:
    ephemeral = await web.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert ephemeral["message_ts"]
    link = await web.chat_getPermalink(channel="C1", message_ts="1700000000.000100")
    assert link["permalink"] == "https://fake.slack.com/archives/C1/p1700000000000100"
    assert (await web.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "U2"]
    assert slack.calls_to("usergroups.users.list")[0].params == {"usergroup": "S1"}
    with pytest.raises(SlackApiError) as caught:
        await web.usergroups_users_list(usergroup="S404")
    assert caught.value.response["error"] == "no_such_subteam"
    view = {"type": "home", "blocks": [SECTION]}
    assert (await web.views_publish(user_id="U1", view=view))["ok"]
    assert slack.published_view("U1") == view
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Retry"}, "blocks": [SECTION]}
    assert (await web.views_open(trigger_id="t1", view=modal))["ok"]
    assert (await web.conversations_info(channel="C1"))["channel"]["id"] == "C1"
    with pytest.raises(SlackApiError) as caught:
        await web.api_call("chat.doesNotExist")
    assert caught.value.response["error"] == "unknown_method"


async def test_socket_mode_url(slack: FakeSlack) -> None:
    app = AsyncWebClient(token="xapp-test", base_url=slack.api_url)
    with pytest.raises(SlackApiError) as caught:
        await app.apps_connections_open(app_token="xapp-test")
    assert caught.value.response["error"] == "not_allowed"
    slack.socket_mode_url = "ws://127.0.0.1:1/socket"
    assert (await app.apps_connections_open(app_token="xapp-test"))["url"] == "ws://127.0.0.1:1/socket"
    bot = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    with pytest.raises(SlackApiError) as caught:
        await bot.apps_connections_open(app_token="xoxb-test")
    assert caught.value.response["error"] == "not_allowed_token_type"


async def test_response_url_takes_five_posts(slack: FakeSlack) -> None:
    hook = AsyncWebhookClient(slack.response_url("r1"))
    for n in range(5):
        answer = await hook.send(text=f"post {n}", response_type="in_channel")
        assert (answer.status_code, answer.body) == (200, "ok")
    sixth = await hook.send(text="too many")
    assert (sixth.status_code, sixth.body) == (404, "used_url")
    await AsyncWebhookClient(slack.response_url("r2")).send(text="other")
    assert [r["text"] for r in slack.responses("r1")] == [f"post {n}" for n in range(5)]
    assert slack.responses("r1")[0]["response_type"] == "in_channel"
    assert len(slack.responses()) == 6


async def test_response_url_expires_after_thirty_minutes(slack: FakeSlack) -> None:
    hook = AsyncWebhookClient(slack.response_url("late"))
    slack.advance(29 * 60)
    assert (await hook.send(text="in time")).status_code == 200
    slack.advance(2 * 60)
    expired = await hook.send(text="too late")
    assert (expired.status_code, expired.body) == (404, "expired_url")
    assert [r["text"] for r in slack.responses("late")] == ["in time"]
    assert [(r.method, r.error) for r in slack.refusals] == [("response_url:late", "expired_url")]


async def test_response_url_refuses_what_slack_cannot_show(slack: FakeSlack) -> None:
    hook = AsyncWebhookClient(slack.response_url("r1"))
    refused = await hook.send(text="x", blocks=[_section("x" * 3001)])
    assert (refused.status_code, refused.body) == (400, "invalid_blocks")
    too_long = await hook.send(text="x" * 40_001)
    assert (too_long.status_code, too_long.body) == (400, "msg_too_long")
    empty = await hook.send(response_type="ephemeral")
    assert (empty.status_code, empty.body) == (400, "no_text")
    assert slack.responses("r1") == []
    # Refused posts are not shown, so they do not use up the five.
    for n in range(5):
        assert (await hook.send(text=f"post {n}")).status_code == 200
    assert [r.error for r in slack.refusals] == ["invalid_blocks", "msg_too_long", "no_text"]


# -- FakeSlack: Block Kit limits ------------------------------------------------------------------------------


def _section(text: str, **fields: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **fields}


def _button(**fields: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": "Retry"},
        "action_id": "retry",
        "value": "1",
        **fields,
    }


def _actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def _fields(count: int, length: int) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * length} for _ in range(count)]}


def _header(text: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": "header", "text": {"type": kind, "text": text}}


def _confirm(title: str) -> dict[str, Any]:
    return {
        "title": {"type": "plain_text", "text": title},
        "text": {"type": "mrkdwn", "text": "Sure?"},
        "confirm": {"type": "plain_text", "text": "Yes"},
        "deny": {"type": "plain_text", "text": "No"},
    }


# Every documented limit at its exact value: Slack accepts all of them in one message.
AT_THE_LIMITS = [
    _section("s" * 3000, block_id="b" * 255),
    _fields(10, 2000),
    _header("h" * 150),
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"} for _ in range(10)]},
    _actions(
        _button(text={"type": "plain_text", "text": "t" * 75}, value="v" * 2000, action_id="a" * 255),
        *(_button(action_id=f"more-{n}") for n in range(23)),
        _button(action_id="confirmed", confirm=_confirm("t" * 100)),
    ),
    *(_section(f"filler {n}") for n in range(45)),
]


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        pytest.param([SECTION] * 51, "no more than 50 items allowed [json-pointer:/blocks]", id="51-blocks"),
        pytest.param(
            [_section("s" * 3001)], "must be less than 3001 characters [json-pointer:/blocks/0/text/text]", id="section"
        ),
        pytest.param([_section("")], "must be more than 0 characters [json-pointer:/blocks/0/text/text]", id="empty"),
        pytest.param(
            [_fields(1, 2001)], "must be less than 2001 characters [json-pointer:/blocks/0/fields/0/text]", id="field"
        ),
        pytest.param([_fields(11, 1)], "no more than 10 items allowed [json-pointer:/blocks/0/fields]", id="11-fields"),
        pytest.param(
            [_header("h" * 151)], "must be less than 151 characters [json-pointer:/blocks/0/text/text]", id="header"
        ),
        pytest.param(
            [_header("h", kind="mrkdwn")],
            "must be one of plain_text [json-pointer:/blocks/0/text/type]",
            id="header-md",
        ),
        pytest.param(
            [_actions(_button(text={"type": "plain_text", "text": "t" * 76}))],
            "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]",
            id="button-text",
        ),
        pytest.param(
            [_actions(_button(value="v" * 2001))],
            "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]",
            id="button-value",
        ),
        pytest.param(
            [_actions(_button(action_id="a" * 256))],
            "must be less than 256 characters [json-pointer:/blocks/0/elements/0/action_id]",
            id="action-id",
        ),
        pytest.param(
            [_section("s", block_id="b" * 256)],
            "must be less than 256 characters [json-pointer:/blocks/0/block_id]",
            id="block-id",
        ),
        pytest.param(
            [_actions(*(_button(action_id=f"a{n}") for n in range(26)))],
            "no more than 25 items allowed [json-pointer:/blocks/0/elements]",
            id="26-elements",
        ),
        pytest.param(
            [_actions(_button()), _section("s", accessory=_button())],
            "action_id 'retry' is used more than once [json-pointer:/blocks/1/accessory/action_id]",
            id="same-action-id",
        ),
        pytest.param(
            [_section("a", block_id="b"), _section("b", block_id="b")],
            "block_id 'b' is used more than once [json-pointer:/blocks/1/block_id]",
            id="same-block-id",
        ),
        pytest.param(
            [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"} for _ in range(11)]}],
            "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
            id="11-context-elements",
        ),
        pytest.param(
            [_actions(_button(confirm=_confirm("t" * 101)))],
            "must be less than 101 characters [json-pointer:/blocks/0/elements/0/confirm/title/text]",
            id="confirm-title",
        ),
        pytest.param([{"type": "no_such_block"}], "unsupported block type 'no_such_block'", id="unknown-type"),
        pytest.param(
            [{"type": "section"}], "must provide either text or fields [json-pointer:/blocks/0]", id="no-text"
        ),
    ],
)
async def test_blocks_beyond_slack_limits_are_refused(
    slack: FakeSlack, web: AsyncWebClient, blocks: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    answer = caught.value.response
    assert (answer.status_code, answer["error"]) == (200, "invalid_blocks")
    assert any(message in error for error in answer["errors"]), answer["errors"]
    assert any(message in line for line in answer["response_metadata"]["messages"])
    assert slack.messages() == []
    assert [(r.method, r.error) for r in slack.refusals] == [("chat.postMessage", "invalid_blocks")]


async def test_a_message_at_every_limit_is_accepted(slack: FakeSlack, web: AsyncWebClient) -> None:
    assert len(AT_THE_LIMITS) == 50
    posted = await web.chat_postMessage(channel="C1", text="t" * 40_000, blocks=AT_THE_LIMITS)
    await web.chat_update(channel="C1", ts=posted["ts"], text="shorter", blocks=AT_THE_LIMITS[:3])
    await web.chat_postEphemeral(channel="C1", user="U1", text="only you", blocks=AT_THE_LIMITS)
    assert slack.refusals == []


async def test_every_message_method_checks_content(slack: FakeSlack, web: AsyncWebClient) -> None:
    posted = await web.chat_postMessage(channel="C1", text="v1", blocks=[SECTION])
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel="C1", text="x" * 40_001)
    assert caught.value.response.data == {"ok": False, "error": "msg_too_long"}
    with pytest.raises(SlackApiError) as caught:
        await web.chat_update(channel="C1", ts=posted["ts"], text="v2", blocks=[_section("s" * 3001)])
    assert caught.value.response["error"] == "invalid_blocks"
    message = slack.message("C1", posted["ts"])
    assert message is not None
    assert (message.text, message.edits) == ("v1", 0)  # a refused update changes nothing
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postEphemeral(channel="C1", user="U1", text="x", blocks=[SECTION] * 51)
    assert caught.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as caught:
        await web.api_call("chat.postMessage", json={"channel": "C1", "text": "x", "blocks": "[not json"})
    assert caught.value.response["error"] == "invalid_blocks_format"
    assert [(r.method, r.error) for r in slack.refusals] == [
        ("chat.postMessage", "msg_too_long"),
        ("chat.update", "invalid_blocks"),
        ("chat.postEphemeral", "invalid_blocks"),
        ("chat.postMessage", "invalid_blocks_format"),
    ]


async def test_views_are_checked_like_slack_checks_them(slack: FakeSlack, web: AsyncWebClient) -> None:
    home = {"type": "home", "blocks": [_section(f"line {n}") for n in range(100)]}
    assert (await web.views_publish(user_id="U1", view=home))["ok"]
    with pytest.raises(SlackApiError) as caught:
        await web.views_publish(user_id="U1", view={**home, "blocks": [*home["blocks"], SECTION]})
    assert caught.value.response["error"] == "invalid_arguments"
    assert caught.value.response["response_metadata"]["messages"] == [
        "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"
    ]
    assert slack.published_view("U1") == home  # the refused view was not published

    modal = {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "blocks": [SECTION]}
    for call in (
        web.views_open(trigger_id="t1", view=modal),
        web.views_push(trigger_id="t1", view=modal),
        web.views_update(view_id="V1", view={**modal, "blocks": [_section("s" * 3001)]}),
    ):
        with pytest.raises(SlackApiError) as caught:
            await call
        assert caught.value.response["error"] == "invalid_arguments"
    assert [r.method for r in slack.refusals] == ["views.publish", "views.open", "views.push", "views.update"]


async def test_fail_next_429_then_recovers(slack: FakeSlack, web: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel="C1", text="x")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response["error"] == "ratelimited"
    assert (await web.chat_postMessage(channel="C1", text="x"))["ok"]

    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    patient = AsyncWebClient(
        token="xoxb-test", base_url=slack.api_url, retry_handlers=[AsyncRateLimitErrorRetryHandler()]
    )
    assert (await patient.chat_postMessage(channel="C1", text="y"))["ok"]
    assert [c.http_status for c in slack.calls_to("chat.postMessage")] == [429, 200, 429, 200]


async def test_fail_next_5xx_and_errors_count_once_each(slack: FakeSlack, http: httpx.AsyncClient) -> None:
    slack.fail_next("auth.test", status=503)
    slack.fail_next("auth.test", 2, status=200, error="not_in_channel")
    headers = {"Authorization": "Bearer xoxb-test"}
    answers = [await http.post(f"{slack.api_url}auth.test", headers=headers) for _ in range(4)]
    assert answers[0].status_code == 503
    assert answers[0].text == "Internal Server Error"
    assert [a.json() for a in answers[1:3]] == [{"ok": False, "error": "not_in_channel"}] * 2
    assert answers[3].json()["ok"] is True


async def test_fail_next_in_one_channel(slack: FakeSlack, web: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", status=503, channel="CLOG")
    assert (await web.chat_postMessage(channel="C1", text="x"))["ok"]
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel="CLOG", text="x")
    assert caught.value.response.status_code == 503
    assert (await web.chat_postMessage(channel="CLOG", text="x"))["ok"]


async def test_channel_errors(slack: FakeSlack, web: AsyncWebClient) -> None:
    posted = await web.chat_postMessage(channel="C1", text="x")
    slack.not_in_channel("C1")
    slack.channel_not_found("C9")
    for call, error in [
        (web.chat_postMessage(channel="C1", text="x"), "not_in_channel"),
        (web.chat_update(channel="C1", ts=posted["ts"], text="y"), "not_in_channel"),
        (web.chat_postMessage(channel="C9", text="x"), "channel_not_found"),
    ]:
        with pytest.raises(SlackApiError) as caught:
            await call
        assert caught.value.response["error"] == error
    assert (await web.chat_postMessage(channel="C2", text="x"))["ok"]
    slack.clear_channel_errors()
    assert (await web.chat_postMessage(channel="C1", text="x"))["ok"]


async def test_delay(slack: FakeSlack, web: AsyncWebClient) -> None:
    slack.delay("chat.update", 0.3)
    started = time.monotonic()
    posted = await web.chat_postMessage(channel="C1", text="x")
    undelayed = time.monotonic() - started
    started = time.monotonic()
    await web.chat_update(channel="C1", ts=posted["ts"], text="y")
    delayed = time.monotonic() - started
    assert delayed >= 0.3
    assert undelayed < delayed


async def test_drop_connections(slack: FakeSlack, web: AsyncWebClient) -> None:
    slack.drop_connections("chat.postMessage")
    with pytest.raises(aiohttp.ClientConnectionError):
        await web.chat_postMessage(channel="C1", text="x")
    assert slack.calls[0].http_status is None
    # slack_sdk's default handlers retry a connection error once.
    slack.drop_connections("chat.postMessage")
    default = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    assert (await default.chat_postMessage(channel="C1", text="x"))["ok"]
    assert [c.http_status for c in slack.calls] == [None, None, 200]


async def test_hold_blocks_slack_calls_until_released(slack: FakeSlack, web: AsyncWebClient) -> None:
    gate = slack.hold()
    posting = asyncio.create_task(web.chat_postMessage(channel="C1", text="x"))
    await eventually(lambda: slack.in_flight == 1, message="the call arrives")
    assert not posting.done()
    assert slack.calls == []  # recorded once answered
    gate.release()
    assert (await posting)["ok"]
    assert slack.calls[0].headers["authorization"] == "Bearer xoxb-test"


async def test_enforce_post_rate(slack: FakeSlack, web: AsyncWebClient) -> None:
    slack.enforce_post_rate(per_second=1.0, burst=3)
    for _ in range(3):
        await web.chat_postMessage(channel="C1", text="x")
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel="C1", text="x")
    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    assert int(caught.value.response.headers["Retry-After"]) >= 1
    assert (await web.chat_postMessage(channel="C2", text="x"))["ok"]  # buckets are per channel
    assert slack.rate_limited_count == 1
    assert len(slack.root_messages("C1")) == 3


async def test_reset(slack: FakeSlack, web: AsyncWebClient) -> None:
    await web.chat_postMessage(channel="C1", text="x")
    slack.fail_next("auth.test", status=500)
    slack.not_in_channel("C1")
    slack.reset()
    assert slack.calls == []
    assert slack.messages() == []
    assert (await web.auth_test())["ok"]
    assert (await web.chat_postMessage(channel="C1", text="x"))["ok"]


async def test_recording_is_consistent_under_concurrency(slack: FakeSlack, web: AsyncWebClient) -> None:
    seen: list[int] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            seen.append(len(slack.calls))

    thread = threading.Thread(target=reader)
    thread.start()
    # One channel each: the recording under concurrency is under test, not the per-channel posting limit.
    answers = await asyncio.gather(*(web.chat_postMessage(channel=f"C{n}", text=str(n)) for n in range(50)))
    done.set()
    thread.join()
    assert len({a["ts"] for a in answers}) == 50
    assert len(slack.calls_to("chat.postMessage")) == 50
    assert seen == sorted(seen)


# -- FakePartoo ----------------------------------------------------------------------------------------------


async def test_partoo_default_auth_and_not_found(partoo: FakePartoo, http: httpx.AsyncClient) -> None:
    ok = await retry(http, partoo, 123)
    assert (ok.status_code, ok.json()) == (200, {"status": "success"})
    bad_key = await retry(http, partoo, 123, key="sandbox-key")
    assert (bad_key.status_code, bad_key.json()) == (
        401,
        {"errors": {"authentication": "User not authenticated"}},
    )
    no_key = await http.post(f"{partoo.api_url}/messages/123/retry")
    assert no_key.status_code == 401
    not_int = await retry(http, partoo, "abc")
    assert (not_int.status_code, not_int.json()) == (404, {"error": {"json": "Resource not found"}})
    assert [(c.message_id, c.api_key, c.status) for c in partoo.calls] == [
        ("123", KEY, 200),
        ("123", "sandbox-key", 401),
        ("123", None, 401),
        ("abc", KEY, 404),
    ]
    assert partoo.count(123) == 3
    assert partoo.received_ids() == ["123", "123", "123", "abc"]


async def test_partoo_rate_limit_window(http: httpx.AsyncClient) -> None:
    with FakePartoo(rate_limit_per_minute=2) as partoo:
        assert [(await retry(http, partoo, n)).status_code for n in (1, 2)] == [200, 200]
        limited = await retry(http, partoo, 3)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert partoo.rate_limited_count == 1
        assert partoo.count(3) == 1
        assert partoo.max_calls_in_any_window(60) == 3

    with FakePartoo(rate_limit_per_minute=1, rate_window_seconds=0.3) as partoo:
        assert (await retry(http, partoo, 1)).status_code == 200
        assert (await retry(http, partoo, 1)).status_code == 429

        async def accepted() -> bool:
            return (await retry(http, partoo, 1)).status_code == 200

        # 429s do not count toward the window, so a slot frees once the first call ages out.
        deadline = time.monotonic() + 3
        while not await accepted():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


async def test_partoo_programmed_answers(partoo: FakePartoo, http: httpx.AsyncClient) -> None:
    partoo.answer(1, 400)
    partoo.answer(2, 403, times=1)
    partoo.answer(3, 500, body={"error": "boom"}, headers={"X-Trace": "t"})
    statuses = [(await retry(http, partoo, n)).status_code for n in (1, 1, 2, 2)]
    assert statuses == [400, 400, 403, 200]
    assert (await retry(http, partoo, 1)).json() == {
        "errors": {"json": {"message_id": ["Message is not in a failed state"]}}
    }
    boom = await retry(http, partoo, 3)
    assert (boom.json(), boom.headers["X-Trace"]) == ({"error": "boom"}, "t")

    partoo.script(4, [Reply(503), Reply(429), Reply(404), Reply(403)])
    answers = [await retry(http, partoo, 4) for _ in range(5)]
    assert [a.status_code for a in answers] == [503, 429, 404, 403, 200]
    assert answers[0].json() == {"error": "Internal Server Error"}
    assert answers[1].headers["Retry-After"] == "1"
    assert answers[3].json() == {"error": {"authorization": "Operation not allowed"}}

    partoo.answer(ANY_MESSAGE, 502, times=1)
    assert (await retry(http, partoo, 99)).status_code == 502
    partoo.reset()
    assert partoo.calls == []
    assert (await retry(http, partoo, 1)).status_code == 200


async def test_partoo_raw_bodies_and_resets(partoo: FakePartoo, http: httpx.AsyncClient) -> None:
    partoo.script(
        1,
        [
            Reply(502, raw_body=b"<html>Bad Gateway</html>"),
            Reply(200, raw_body=b'{"status": ', headers={"Content-Type": "application/json"}),
            Reply(reset=True),
        ],
    )
    html = await retry(http, partoo, 1)
    assert (html.status_code, html.headers["Content-Type"].split(";")[0]) == (502, "text/html")
    broken = await retry(http, partoo, 1)
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    with pytest.raises(httpx.RemoteProtocolError):
        await retry(http, partoo, 1)
    assert [c.status for c in partoo.calls] == [502, 200, None]


async def test_partoo_latency_delay_and_hold(partoo: FakePartoo, http: httpx.AsyncClient) -> None:
    partoo.latency = 0.2
    partoo.script(1, [Reply(200, delay=0.2)])
    started = time.monotonic()
    await retry(http, partoo, 1)
    assert time.monotonic() - started >= 0.4
    partoo.latency = 0.0

    with partoo.hold() as gate:
        calls = [asyncio.create_task(retry(http, partoo, n)) for n in (2, 3)]
        await eventually(lambda: partoo.in_flight == 2, message="both calls arrive")
        assert partoo.count(2) == 1
        assert partoo.calls[-1].status is None
        assert not any(task.done() for task in calls)
        gate.release()
        assert [(await task).status_code for task in calls] == [200, 200]
    assert partoo.max_in_flight == 2
    assert partoo.calls[-1].status == 200


# -- signing -------------------------------------------------------------------------------------------------


def test_slack_signatures_match_slack_sdk() -> None:
    body = slash_command_body("retry 123")
    headers = slack_signature_headers("secret", body)
    assert SignatureVerifier("secret").is_valid_request(body, headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    stale = slack_signature_headers("secret", body, timestamp=int(time.time()) - 600)
    assert not SignatureVerifier("secret").is_valid_request(body, stale)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_request_bodies() -> None:
    command = {k: v[0] for k, v in parse_qs(slash_command_body("retry 1", user_id="U9").decode()).items()}
    assert (command["command"], command["text"], command["user_id"]) == ("/partoo-retry", "retry 1", "U9")
    assert command["response_url"] == "https://hooks.invalid/x"
    assert command["team_id"] == "T0001"

    body = block_actions_body(action_id="retry", value="123", channel_id="C7")
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["actions"][0]["action_id"] == "retry"
    assert payload["actions"][0]["value"] == "123"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1700000000.000100",
        "channel_id": "C7",
        "is_ephemeral": False,
    }
    assert payload["user"]["id"] == "U123"
    assert payload["team"]["id"] == "T0001"


def test_partoo_signer() -> None:
    signer = PartooSigner()
    body = json_body(message_updated_event(5))
    public = serialization.load_pem_public_key(signer.public_pem.encode())
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(signer.headers(body)["X-Partoo-Signature-v1"]), body)
    assert "".join(signer.public_pem.splitlines()[1:-1]) == signer.public_key_base64


def test_message_updated_event_shape() -> None:
    event = message_updated_event(9, status="Success", consumer_name="Zoé")
    assert event["type"] == "message_updated"
    payload = event["payload"]
    assert set(payload) == {"message", "conversation", "org_id"}
    assert set(payload["message"]) == {
        "id",
        "conversation_id",
        "date",
        "content_type",
        "sender_type",
        "sender_label",
        "status",
        "is_deleted",
        "content",
        "user_id",
        "custom_channel",
    }
    assert (payload["message"]["id"], payload["message"]["status"]) == (9, "Success")
    assert payload["conversation"]["consumer_name"] == "Zoé"
    assert payload["conversation"]["business"] == {"id": 42}


# -- waiting -------------------------------------------------------------------------------------------------


async def test_eventually() -> None:
    values = iter([0, None, "found"])
    assert await eventually(lambda: next(values)) == "found"
    with pytest.raises(AssertionError, match="never true"):
        await eventually(lambda: False, timeout=0.05, message="never true")


def test_wait_until_treats_assertions_as_not_yet() -> None:
    attempts: list[int] = []

    def predicate() -> bool:
        attempts.append(1)
        assert len(attempts) >= 3, "not yet"
        return True

    assert wait_until(predicate) is True

    def never() -> bool:
        raise AssertionError("boom")

    with pytest.raises(AssertionError, match="last assertion: boom"):
        wait_until(never, timeout=0.05)
