"""Binds a request id for each HTTP request (see bot.platform.correlation), and returns it as `X-Request-ID`.

Platforms' routers (Heroku's, most load balancers) already tag each request with `X-Request-ID`; reusing
it lets an operator follow one request from the router's logs into the bot's. A missing or odd-looking
value (it comes from outside and ends up in every log line) is replaced by a fresh id.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.platform import correlation

HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class RequestIdMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware), so the handler and the tasks it starts share the bound id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(HEADER, "")
        with correlation.bound(incoming if _ACCEPTED.match(incoming) else None) as request_id:

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    MutableHeaders(scope=message)[HEADER] = request_id
                await send(message)

            await self.app(scope, receive, send_with_id)
