"""A fake of Partoo's retry and conversation endpoints on loopback, with programmable answers and a rate limit.

Conversations answer Open (WhatsApp, business 42) unless a test scripts another state with `conversation()`:
a `Conversation` (closed, expired, issues, unknown issue values) or a `Reply` (slow, 5xx, 404, …).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer

ANY_MESSAGE = "*"
# The webhook a fresh FakePartoo says is configured (GET /v2/webhooks), as a working deployment would have.
DEFAULT_WEBHOOK_URL = "https://partoo-retry.example.com/partoo/webhook"

_MESSAGE_ID = re.compile(r"\d+")
_SUCCESS: dict[str, Any] = {"status": "success"}
_UNAUTHENTICATED: dict[str, Any] = {"errors": {"authentication": "User not authenticated"}}
_NOT_FOUND: dict[str, Any] = {"error": {"json": "Resource not found"}}
# Bodies Partoo answers with, per status, when a test does not give one.
_DEFAULT_BODIES: dict[int, dict[str, Any]] = {
    200: _SUCCESS,
    400: {"errors": {"json": {"message_id": ["Message is not in a failed state"]}}},
    401: _UNAUTHENTICATED,
    403: {"error": {"authorization": "Operation not allowed"}},
    404: _NOT_FOUND,
    429: {"error": "Too Many Requests"},
}


@dataclass(frozen=True)
class Reply:
    """One programmed answer; `raw_body` is sent as is, `reset` closes the connection without answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] | None = None
    delay: float = 0.0
    raw_body: bytes | None = None
    reset: bool = False


@dataclass(frozen=True)
class Conversation:
    """The state `GET /conversations/{id}` reports."""

    status: str = "Open"
    is_expired: bool = False
    issues: tuple[str, ...] = ()
    messaging_partner: str = "Whatsapp"
    business_id: str | int = "42"
    # Partoo's `business.name` and `city`; None leaves the field out, as an answer without them would.
    business_name: str | None = "Shop"
    business_city: str | None = "Paris"

    def body(self, conversation_id: int) -> dict[str, Any]:
        return {
            "id": conversation_id,
            "consumer_img": None,
            "consumer_name": "John Doe",
            "consumer_phone_number": "+33612345678",
            "last_message": None,
            "is_read": True,
            "status": self.status,
            "created_at": "2023-01-31 16:22:17.327878+00:00",
            "has_one_user_message": True,
            "business": self._business(),
            "messaging_partner": self.messaging_partner,
            "issues": list(self.issues),
            "first_message_date": "2023-01-31 16:22:17.327878+00:00",
            "is_expired": self.is_expired,
            "is_solved": False,
            "assigned_user_id": None,
            "custom_channel": None,
        }

    def _business(self) -> dict[str, Any]:
        business: dict[str, Any] = {"id": self.business_id, "zipcode": "75001", "country": "FR"}
        if self.business_name is not None:
            business["name"] = self.business_name
        if self.business_city is not None:
            business["city"] = self.business_city
        return business


OPEN = Conversation()
CLOSED = Conversation(status="Closed")
EXPIRED = Conversation(status="Closed", is_expired=True)
NO_PAGE_LINKED = Conversation(messaging_partner="Facebook", issues=("facebook_no_page_linked",))


def most_in_any_window(times: Iterable[float], seconds: float = 60.0) -> int:
    """The most of `times` within any `seconds`-long window: what Partoo's per-minute limit counts."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass(frozen=True)
class PartooCall:
    """A call to the retry endpoint; `status` is None while in flight or if the connection was dropped."""

    message_id: str
    api_key: str | None
    at: float
    status: int | None = None


@dataclass
class _Answer:
    reply: Reply
    times: int | None


class FakePartoo(FakeServer):
    """Partoo's `POST /v2/messages/{message_id}/retry`, as NOTES.md describes it."""

    def __init__(
        self,
        api_key: str = "partoo-test-key",
        *,
        rate_limit_per_minute: int | None = None,
        latency: float = 0.0,
        rate_window_seconds: float = 60.0,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.rate_limit_per_minute = rate_limit_per_minute
        # A shorter window lets tests exercise the limit without waiting a minute.
        self.rate_window_seconds = rate_window_seconds
        self.latency = latency
        self._clear()

    def _clear(self) -> None:
        with self._lock:
            self._calls: list[PartooCall] = []
            # Tests poll counts every few milliseconds while hundreds of calls arrive: kept, not recounted.
            self._counts: Counter[str] = Counter()
            self._window: deque[float] = deque()
            self._rate_limited = 0
            self._scripts: dict[str, deque[Reply]] = {}
            self._answers: dict[str, _Answer] = {}
            self._conversations: dict[int, Conversation | Reply] = {}
            self._conversation_calls: list[PartooCall] = []
            self._webhooks: list[dict[str, Any]] = [_webhook(1, "message_updated", DEFAULT_WEBHOOK_URL)]
            self._webhooks_status: int = 200
            self.webhook_reads: list[int] = []  # the page asked for, per GET /v2/webhooks
        self.forget_max_in_flight()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v2"

    def reset(self) -> None:
        """Forget recorded calls, the rate window and programmed answers."""
        self._clear()

    def answer(
        self,
        message_id: int | str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        """Answer calls for `message_id` (or ANY_MESSAGE) with `status`: always, or the next `times` calls."""
        with self._lock:
            self._answers[str(message_id)] = _Answer(Reply(status, body, headers), times)

    def script(self, message_id: int | str, replies: Iterable[Reply]) -> None:
        """Answer the next calls for `message_id` (or ANY_MESSAGE) with `replies` in order, then as before."""
        with self._lock:
            self._scripts[str(message_id)] = deque(replies)

    def conversation(self, conversation_id: int, state: Conversation | Reply) -> None:
        """What `GET /conversations/{conversation_id}` answers from now on (a Reply for slow, 5xx, 404…)."""
        with self._lock:
            self._conversations[conversation_id] = state

    @property
    def conversation_calls(self) -> list[PartooCall]:
        """Calls to the conversation endpoint (`message_id` holds the conversation id)."""
        with self._lock:
            return list(self._conversation_calls)

    def configure_webhooks(self, configs: Iterable[tuple[str, str]], *, status: int = 200) -> None:
        """What GET /v2/webhooks lists: (event_type, url) pairs; or the error status it answers with."""
        with self._lock:
            self._webhooks = [_webhook(n, event, url) for n, (event, url) in enumerate(configs, start=1)]
            self._webhooks_status = status

    # -- recordings ------------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[PartooCall]:
        with self._lock:
            return list(self._calls)

    def count(self, message_id: int | str) -> int:
        """How many calls arrived for `message_id`, whatever their answer."""
        key = str(message_id)
        with self._lock:
            return self._counts[key]

    def received_ids(self) -> list[str]:
        """Message ids in arrival order, repeated when called again."""
        with self._lock:
            return [call.message_id for call in self._calls]

    @property
    def rate_limited_count(self) -> int:
        with self._lock:
            return self._rate_limited

    def max_calls_in_any_window(self, seconds: float = 60.0, *, with_checks: bool = False) -> int:
        """The most calls received within any `seconds`-long window (retries, and checks if asked)."""
        calls = self.calls + (self.conversation_calls if with_checks else [])
        return most_in_any_window([call.at for call in calls], seconds)

    # -- HTTP ------------------------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/messages/{message_id}/retry", self._handle_retry)
        app.router.add_get("/v2/conversations/{conversation_id}", self._handle_conversation)
        app.router.add_get("/v2/webhooks", self._handle_webhooks)
        return app

    async def _handle_conversation(self, request: web.Request) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        api_key = request.headers.get("x-APIKey")
        with self._lock:
            index = len(self._conversation_calls)
            self._conversation_calls.append(PartooCall(conversation_id, api_key, time.monotonic()))
            reply = self._decide_conversation(conversation_id, api_key)
        await self.pause(self.latency)
        await self.pause(reply.delay)
        with self._lock:
            if index < len(self._conversation_calls):
                status = None if reply.reset else reply.status
                self._conversation_calls[index] = replace(self._conversation_calls[index], status=status)
        if reply.reset:
            return self.drop(request)
        return _response(reply)

    def _decide_conversation(self, conversation_id: str, api_key: str | None) -> Reply:
        if api_key != self.api_key:
            return Reply(401)
        retry_after = self._take_rate_slot()  # checks count against the same limit as retries
        if retry_after is not None:
            self._rate_limited += 1
            return Reply(429, headers={"Retry-After": str(retry_after)})
        if not _MESSAGE_ID.fullmatch(conversation_id):
            return Reply(404)
        state = self._conversations.get(int(conversation_id), OPEN)
        if isinstance(state, Reply):
            return state
        return Reply(200, body=state.body(int(conversation_id)))

    async def _handle_webhooks(self, request: web.Request) -> web.StreamResponse:
        """`GET /v2/webhooks`: the configurations, two per page, as Partoo paginates them."""
        page = int(request.query.get("page", "1"))
        with self._lock:
            self.webhook_reads.append(page)
            if request.headers.get("x-APIKey") != self.api_key:
                return _response(Reply(401))
            if self._webhooks_status != 200:
                return _response(Reply(self._webhooks_status))
            items = list(self._webhooks)
        per_page = 2
        max_page = max(1, math.ceil(len(items) / per_page))
        body = {
            "page": page,
            "max_page": max_page,
            "count": len(items),
            "items": items[(page - 1) * per_page : page * per_page],
        }
        return _response(Reply(200, body))

    async def _handle_retry(self, request: web.Request) -> web.StreamResponse:
        message_id = request.match_info["message_id"]
        api_key = request.headers.get("x-APIKey")
        with self._lock:
            index = len(self._calls)
            arrived = time.monotonic()
            self._calls.append(PartooCall(message_id, api_key, arrived))
            self._counts[message_id] += 1
            # Counted on arrival, as conversation checks are: the limit stands in front of the work. Counting
            # retries only once answered (2 s later in the benchmarks) let paced checks and retries overlap in
            # one window and get a 429 that Partoo, counting both alike, would not give.
            limited = self._limited(api_key, arrived)
        # Recorded first, then held: a test can see the call arrive, then kill the bot mid-call.
        await self.pass_gates()
        await self.pause(self.latency)
        reply = limited or self._decide(message_id, api_key, arrived)
        await self.pause(reply.delay)
        with self._lock:
            if index < len(self._calls):  # reset() may have run meanwhile
                status = None if reply.reset else reply.status
                self._calls[index] = replace(self._calls[index], status=status)
        if reply.reset:
            return self.drop(request)
        return _response(reply)

    def _limited(self, api_key: str | None, arrived: float) -> Reply | None:
        """A 429 when the window is full (called with the lock held); a call that fails auth is not counted."""
        if api_key != self.api_key:
            return None
        retry_after = self._take_rate_slot(arrived)
        if retry_after is None:
            return None
        self._rate_limited += 1
        return Reply(429, headers={"Retry-After": str(retry_after)})

    def _decide(self, message_id: str, api_key: str | None, arrived: float) -> Reply:
        with self._lock:
            if api_key != self.api_key:
                return Reply(401)
            if not _MESSAGE_ID.fullmatch(message_id):
                return Reply(404)
            reply = self._programmed(message_id)
            if reply.status == 429 and self.rate_limit_per_minute is not None:
                # A 429 never counts toward the window, even a programmed one.
                with contextlib.suppress(ValueError):
                    self._window.remove(arrived)
            return reply

    def _programmed(self, message_id: str) -> Reply:
        for key in (message_id, ANY_MESSAGE):
            script = self._scripts.get(key)
            if script:
                return script.popleft()
        for key in (message_id, ANY_MESSAGE):
            answer = self._answers.get(key)
            if answer is not None:
                if answer.times is not None:
                    answer.times -= 1
                    if answer.times <= 0:
                        del self._answers[key]
                return answer.reply
        return Reply(200)

    def _take_rate_slot(self, now: float | None = None) -> int | None:
        """Count the call in the sliding window; return Retry-After seconds when the window is full."""
        if self.rate_limit_per_minute is None:
            return None
        now = time.monotonic() if now is None else now
        while self._window and self._window[0] <= now - self.rate_window_seconds:
            self._window.popleft()
        if len(self._window) >= self.rate_limit_per_minute:
            wait = self._window[0] + self.rate_window_seconds - now
            return max(1, math.ceil(wait))
        self._window.append(now)
        return None


def _webhook(identifier: int, event_type: str, url: str) -> dict[str, Any]:
    return {
        "id": identifier,
        "url": url,
        "event_type": event_type,
        "created_at": "2026-01-05T10:00:00+00:00",
        "updated_at": "2026-01-05T10:00:00+00:00",
        "org_id": 7,
    }


def _response(reply: Reply) -> web.Response:
    headers = dict(reply.headers or {})
    if reply.status == 429:
        headers.setdefault("Retry-After", "1")
    if reply.raw_body is not None:
        # Raw bodies stand for proxies' HTML error pages unless the test says otherwise.
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "text/html; charset=utf-8"
        return web.Response(status=reply.status, body=reply.raw_body, headers=headers)
    body = reply.body
    if body is None:
        body = _DEFAULT_BODIES.get(reply.status)
        if body is None:
            body = {"error": "Internal Server Error"} if reply.status >= 500 else {}
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return web.Response(status=reply.status, text=json.dumps(body), headers=headers)
