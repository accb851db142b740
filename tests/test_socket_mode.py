"""Socket Mode: commands and clicks arrive over a WebSocket, are acked on it, and survive reconnects.

A small Bolt app of the test's own (not the bot's listeners) runs on `start_socket_mode`, against FakeSlack
(which hands out the fake Socket Mode URL from `apps.connections.open`) and FakeSocketMode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.platform import correlation
from bot.platform.slack import build_web_client
from bot.platform.socket_mode import SocketModeConnection, SocketModeError, start_socket_mode
from tests.fakes import Ack, FakeSlack, FakeSocketMode, payload_of
from tests.harness import BOT_TOKEN
from tests.signing import block_actions_body, event_callback_body, slash_command_body
from tests.waiting import eventually

# Short, so that a socket that went silent is replaced quickly; clean closes reconnect at once anyway.
PING_INTERVAL = 1.0


@dataclass
class Heard:
    """What the test app's listeners saw: (kind, value, request id) in order."""

    calls: list[tuple[str, str, str | None]] = field(default_factory=list)

    def of(self, kind: str) -> list[str]:
        return [value for seen, value, _ in self.calls if seen == kind]


def small_app(web: AsyncWebClient, heard: Heard) -> AsyncApp:
    app = AsyncApp(client=web, process_before_response=False)

    @app.command("/partoo-retry")
    async def command(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"retrying {command['text']}")
        heard.calls.append(("command", command["text"], correlation.current()))

    @app.action("retry")
    async def click(ack: Any, action: dict[str, Any]) -> None:
        await ack()
        heard.calls.append(("click", action["value"], correlation.current()))

    @app.event("app_home_opened")
    async def home(event: dict[str, Any]) -> None:
        heard.calls.append(("event", event["user"], correlation.current()))

    return app


@pytest.fixture
def socket_mode(slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as fake:
        slack.socket_mode_url = fake.url
        yield fake


@pytest.fixture
def web(slack: FakeSlack) -> AsyncWebClient:
    """The bot's Web API client, pointed at FakeSlack as SLACK_API_URL would point it."""
    return build_web_client(BOT_TOKEN, slack.api_url)


@pytest.fixture
def heard() -> Heard:
    return Heard()


@pytest.fixture
async def connection(
    slack: FakeSlack, socket_mode: FakeSocketMode, web: AsyncWebClient, heard: Heard
) -> AsyncIterator[SocketModeConnection]:
    running = await start_socket_mode(
        small_app(web, heard), slack.app_token, web_client=web, ping_interval=PING_INTERVAL
    )
    try:
        await eventually(lambda: socket_mode.open_connections == 1, message="the client never connected")
        yield running
    finally:
        await running.close()


async def acked(socket_mode: FakeSocketMode, envelope_id: str) -> Ack:
    """The client's ack of `envelope_id`, waited for."""
    ack = await eventually(lambda: socket_mode.ack(envelope_id), message=f"envelope {envelope_id} was not acked")
    assert ack is not None
    return ack


def command_envelope(socket_mode: FakeSocketMode, text: str) -> str:
    return socket_mode.send_envelope("slash_commands", payload_of(slash_command_body(text)))


def click_envelope(socket_mode: FakeSocketMode, value: str) -> str:
    return socket_mode.send_envelope("interactive", payload_of(block_actions_body(action_id="retry", value=value)))


async def test_a_command_and_a_click_are_acked_and_handled(
    slack: FakeSlack, socket_mode: FakeSocketMode, connection: SocketModeConnection, heard: Heard
) -> None:
    # The URL came from apps.connections.open, asked with the app-level token, not the bot token.
    (opened,) = slack.calls_to("apps.connections.open")
    assert opened.headers["Authorization"] == f"Bearer {slack.app_token}"
    assert await connection.is_connected()

    command_id = command_envelope(socket_mode, "4567")
    ack = await acked(socket_mode, command_id)
    assert ack.payload == {"text": "retrying 4567"}
    await eventually(lambda: heard.of("command") == ["4567"])

    click_id = click_envelope(socket_mode, "4567")
    ack = await acked(socket_mode, click_id)
    assert not ack.payload
    await eventually(lambda: heard.of("click") == ["4567"])

    # Each envelope ran under a request id of its own, so its log lines can be told apart.
    ids = [request_id for _, _, request_id in heard.calls]
    assert all(ids)
    assert len(set(ids)) == 2


async def test_events_are_acked_and_delivered(
    socket_mode: FakeSocketMode, connection: SocketModeConnection, heard: Heard
) -> None:
    event = {"type": "app_home_opened", "user": "U123", "channel": "D1", "tab": "home"}
    envelope_id = socket_mode.send_envelope("events_api", payload_of(event_callback_body(event)))
    await acked(socket_mode, envelope_id)
    await eventually(lambda: heard.of("event") == ["U123"])


@pytest.mark.parametrize("how", ["close", "refresh"])
async def test_the_client_reconnects_and_keeps_handling_envelopes(
    how: str, slack: FakeSlack, socket_mode: FakeSocketMode, connection: SocketModeConnection, heard: Heard
) -> None:
    first = command_envelope(socket_mode, "1")
    await acked(socket_mode, first)

    socket_mode.disconnect(how)  # type: ignore[arg-type]

    await eventually(
        lambda: socket_mode.connections == 2 and socket_mode.open_connections == 1,
        message="the client did not reconnect",
    )
    # A fresh URL for the new connection, as Slack's are single-use.
    assert len(slack.calls_to("apps.connections.open")) == 2

    second = click_envelope(socket_mode, "2")
    ack = await acked(socket_mode, second)
    assert ack.connection == 2
    await eventually(lambda: heard.of("click") == ["2"])
    assert heard.of("command") == ["1"]


async def test_close_disconnects(socket_mode: FakeSocketMode, connection: SocketModeConnection) -> None:
    await connection.close()
    await eventually(lambda: socket_mode.open_connections == 0)
    assert not await connection.is_connected()
    await connection.close()  # twice is harmless
    assert socket_mode.connections == 1


@pytest.mark.parametrize(
    ("token_of", "error"),
    [
        pytest.param(lambda slack: "xapp-not-the-right-one", "invalid_auth", id="wrong-app-token"),
        pytest.param(lambda slack: slack.bot_token, "not_allowed_token_type", id="bot-token-instead"),
    ],
)
async def test_a_refused_app_token_fails_the_start_with_a_clear_message(
    slack: FakeSlack, socket_mode: FakeSocketMode, web: AsyncWebClient, heard: Heard, token_of: Any, error: str
) -> None:
    token = token_of(slack)
    with pytest.raises(SocketModeError) as raised:
        await start_socket_mode(small_app(web, heard), token, web_client=web, ping_interval=PING_INTERVAL)
    message = str(raised.value)
    assert error in message
    assert "SLACK_APP_TOKEN" in message
    assert token not in message
    assert socket_mode.connections == 0


async def test_an_unreachable_socket_fails_the_start_within_the_timeout(
    slack: FakeSlack, web: AsyncWebClient, heard: Heard
) -> None:
    # A URL nothing listens on: slack_sdk alone would retry it forever.
    with FakeSocketMode() as gone:
        url = gone.url
    slack.socket_mode_url = url
    with pytest.raises(SocketModeError, match="within 2 s"):
        await start_socket_mode(
            small_app(web, heard), slack.app_token, web_client=web, ping_interval=0.2, connect_timeout=2.0
        )
