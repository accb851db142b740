"""A fake of Slack's Socket Mode WebSocket on loopback: pushes envelopes, records acks, drops connections.

Wire it to FakeSlack so that `apps.connections.open` hands out its URL:

    with FakeSocketMode() as socket_mode:
        slack.socket_mode_url = socket_mode.url
        ...                                         # start the bot's Socket Mode client
        envelope_id = socket_mode.send_envelope("slash_commands", payload_of(slash_command_body("4567")))
        await eventually(lambda: socket_mode.ack(envelope_id))

Every method is safe to call from any thread and never waits for the client, so it works both in async
tests (where the client runs on the test's own event loop) and in tests of a separate bot process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.server import FakeServer

EnvelopeType = Literal["slash_commands", "interactive", "events_api"]

_APP_ID = "A0001"
# Slack sets this per envelope type: whether the ack's payload is shown to the user.
_ACCEPTS_RESPONSE_PAYLOAD: dict[str, bool] = {"slash_commands": True, "interactive": False, "events_api": False}
_SEND_TIMEOUT = 5.0


@dataclass(frozen=True)
class Ack:
    """What the client sent back for one envelope."""

    envelope_id: str
    payload: dict[str, Any] | None
    connection: int  # which connection (1 = the first) carried it
    at: float


def payload_of(body: bytes) -> dict[str, Any]:
    """The Socket Mode payload of an HTTP body as tests/signing.py builds it.

    Slack sends the same content both ways: form fields of a command as an object, the JSON of an
    interaction's `payload=` field as is, an event callback's JSON as is.
    """
    text = body.decode()
    if text.startswith("{"):
        parsed: dict[str, Any] = json.loads(text)
        return parsed
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if set(fields) == {"payload"}:
        interaction: dict[str, Any] = json.loads(fields["payload"])
        return interaction
    return fields


class FakeSocketMode(FakeServer):
    """Slack's side of Socket Mode: `url` is what `apps.connections.open` returns."""

    def __init__(self) -> None:
        super().__init__()
        # (connection number, socket), oldest first; only sockets still open.
        self._sockets: list[tuple[int, web.WebSocketResponse]] = []
        self._connections = 0
        self._acks: list[Ack] = []
        self._received: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    # -- configuration ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    # -- recordings ------------------------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """How many WebSocket connections were opened since start, closed ones included."""
        with self._lock:
            return self._connections

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._sockets)

    @property
    def acks(self) -> list[Ack]:
        with self._lock:
            return list(self._acks)

    def ack(self, envelope_id: str) -> Ack | None:
        """The client's ack of `envelope_id`, once it came."""
        with self._lock:
            return next((ack for ack in self._acks if ack.envelope_id == envelope_id), None)

    @property
    def received(self) -> list[dict[str, Any]]:
        """Every JSON message the client sent, acks included."""
        with self._lock:
            return list(self._received)

    # -- actions ---------------------------------------------------------------------------------------------

    def send_envelope(
        self,
        type: EnvelopeType,
        payload: Mapping[str, Any],
        *,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Push an envelope to the newest open connection (as Slack picks one) and return its envelope_id.

        Raises RuntimeError when no client is connected. Returns once the frame is written, not acked.
        """
        envelope_id = envelope_id or f"env-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": dict(payload),
            "accepts_response_payload": _ACCEPTS_RESPONSE_PAYLOAD[type],
        }
        if type == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        self._on_server_loop(self._send_to_newest(envelope)).result(_SEND_TIMEOUT)
        return envelope_id

    def disconnect(self, how: Literal["close", "refresh"] = "close") -> None:
        """Make every connected client reconnect.

        "close": close the sockets (code 1001, as when a Slack host goes away); "refresh": send
        `{"type": "disconnect", "reason": "refresh_requested"}` as Slack does every few hours, and let the
        client close the old socket itself. Returns at once: poll `connections` to see the reconnect.
        """
        if how == "refresh":
            self._on_server_loop(self._refresh_all()).result(_SEND_TIMEOUT)
        else:
            # Not waited for: closing waits for the client's close frame, and the client may run on the
            # very thread that called us.
            self._on_server_loop(self._close_all())

    # -- WebSocket -------------------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/link", self._handle_socket)
        # Without it, stop() waits for open sockets until aiohttp's shutdown timeout.
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse()  # answers pings by itself, as Slack does
        await socket.prepare(request)
        with self._lock:
            self._connections += 1
            number = self._connections
            self._sockets.append((number, socket))
            open_now = len(self._sockets)
        try:
            await socket.send_json(
                {
                    "type": "hello",
                    "num_connections": open_now,
                    "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": _APP_ID},
                }
            )
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self._record(number, message.data)
        finally:
            with self._lock:
                self._sockets = [(n, s) for n, s in self._sockets if s is not socket]
        return socket

    def _record(self, connection: int, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = {"unparsable": data}
        with self._lock:
            self._received.append(message)
            if isinstance(message, dict) and "envelope_id" in message:
                self._acks.append(Ack(message["envelope_id"], message.get("payload"), connection, time.monotonic()))

    def _on_server_loop(self, coroutine: Coroutine[Any, Any, None]) -> Any:
        loop = self._loop
        if loop is None or loop.is_closed():
            coroutine.close()
            raise RuntimeError("FakeSocketMode is not started")
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    def _open_sockets(self) -> list[tuple[int, web.WebSocketResponse]]:
        with self._lock:
            return [(n, s) for n, s in self._sockets if not s.closed]

    async def _send_to_newest(self, envelope: dict[str, Any]) -> None:
        sockets = self._open_sockets()
        if not sockets:
            raise RuntimeError("no Socket Mode client is connected")
        _, socket = sockets[-1]
        await socket.send_json(envelope)

    async def _refresh_all(self) -> None:
        for _, socket in self._open_sockets():
            await socket.send_json({"type": "disconnect", "reason": "refresh_requested"})

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self._close_all()

    async def _close_all(self) -> None:
        sockets = self._open_sockets()
        await asyncio.gather(
            *(socket.close(code=WSCloseCode.GOING_AWAY, message=b"going away") for _, socket in sockets),
            return_exceptions=True,
        )
