"""Socket Mode: Slack traffic over a WebSocket the bot opens itself, for bots without a public URL.

Bolt's AsyncSocketModeHandler runs the same AsyncApp (the same listeners) as HTTP mode, on slack_sdk's
aiohttp Socket Mode client. That client asks `apps.connections.open` for a WebSocket URL through the Web
API client it is given; handing it the bot's own client (pointed at SLACK_API_URL) lets tests serve that
call from a fake. It reconnects by itself when Slack closes the socket, sends a `disconnect` message, or
stops answering pings.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.platform import correlation

log = logging.getLogger(__name__)

# Seconds between pings; a socket silent for four of them is replaced (slack_sdk's rule).
DEFAULT_PING_INTERVAL = 10.0
# slack_sdk retries a failing WebSocket connect forever; a start that hangs is worse than one that fails.
CONNECT_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0


class SocketModeError(Exception):
    """The Socket Mode connection could not be opened; the message says why, without the token."""


class _CorrelatedHandler(AsyncSocketModeHandler):
    """Binds a fresh request id per envelope, as HTTP mode does per request.

    Bolt starts the rest of a listener (after `ack()`) as a task inside this call, so it inherits the id.
    """

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        with correlation.bound():
            log.debug("Socket Mode %s envelope %s", req.type, req.envelope_id)
            await super().handle(client, req)


class SocketModeConnection:
    """A running Socket Mode client; `close()` disconnects it and stops its tasks."""

    def __init__(self, handler: AsyncSocketModeHandler) -> None:
        self.handler = handler

    @property
    def client(self) -> SocketModeClient:
        return self.handler.client

    async def is_connected(self) -> bool:
        """Whether a live socket is open now (false while it reconnects): for readiness checks."""
        return await self.client.is_connected()

    async def close(self) -> None:
        """Stop receiving envelopes and release the socket, its tasks and its HTTP session; safe twice."""
        client = self.client
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await client.close()  # type: ignore[no-untyped-call]  # slack_sdk leaves it unannotated
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            # The peer may be gone already; what matters is that nothing of ours keeps running.
            log.info("Socket Mode socket did not close cleanly: %s", type(error).__name__)
            client.closed = True
            await client.aiohttp_client_session.close()
        tasks = [
            task for task in (client.message_processor, client.current_session_monitor, client.message_receiver) if task
        ]
        for task in tasks:
            task.cancel()
        # Awaiting the cancelled tasks lets them finish now, not warn later as "destroyed but pending".
        await asyncio.gather(*tasks, return_exceptions=True)


async def start_socket_mode(
    bolt: AsyncApp,
    app_token: str,
    *,
    web_client: AsyncWebClient,
    ping_interval: float = DEFAULT_PING_INTERVAL,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> SocketModeConnection:
    """Open a Socket Mode connection that feeds envelopes to `bolt`; raise SocketModeError if it cannot."""
    handler = _CorrelatedHandler(
        bolt,
        app_token,
        logger=logging.getLogger("bot.slack.socket_mode"),
        web_client=web_client,
        ping_interval=ping_interval,
    )
    connection = SocketModeConnection(handler)
    client = handler.client
    try:
        async with asyncio.timeout(connect_timeout):
            # Asked here rather than inside connect(), which would retry a refused token forever.
            client.wss_uri = await client.issue_new_wss_url()
            await handler.connect_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
    except SlackApiError as error:
        await connection.close()
        code = error.response.get("error") or f"HTTP {error.response.status_code}"
        raise SocketModeError(
            f"Slack refused to open a Socket Mode connection ({code}): check SLACK_APP_TOKEN, an app-level "
            "token (xapp-…) with the connections:write scope, and that Socket Mode is enabled for the app."
        ) from None
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        await connection.close()
        raise SocketModeError(
            f"could not open a Socket Mode connection to Slack within {connect_timeout:g} s: {type(error).__name__}"
        ) from error
    log.info("Socket Mode connected")
    return connection
