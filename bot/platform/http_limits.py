"""Bounds on what any client can make the bot read: body size and the time to send it.

Slack's and Partoo's requests are small and arrive at once. Reading each body fully (within bounds) before
the route sees it keeps an oversized or trickled body from holding memory or a connection, on every route,
before any signature is checked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
BODY_READ_SECONDS = 10.0


class BodyLimits:
    """ASGI middleware: 413 past `max_bytes`, 408 when the body takes longer than `read_seconds`.

    The route never sees a refused request, so `on_too_large(path)` lets the app count those it would have.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = MAX_BODY_BYTES,
        read_seconds: float = BODY_READ_SECONDS,
        on_too_large: Callable[[str], None] = lambda path: None,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.read_seconds = read_seconds
        self.on_too_large = on_too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            self.on_too_large(scope["path"])
            await _refuse(send, 413, "body too large")
            return
        try:
            async with asyncio.timeout(self.read_seconds):
                body = await self._read(receive)
        except TimeoutError:
            await _refuse(send, 408, "body not received in time")
            return
        except _TooLargeError:
            self.on_too_large(scope["path"])
            await _refuse(send, 413, "body too large")
            return
        if body is None:
            return  # the client went away

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body, only a disconnect can come

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = json.dumps({"status": reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    pass
