"""A fake Slack Web API on loopback that records every call and keeps the messages the bot posts.

It is as strict as Slack about its posting limit: about one chat.postMessage a second per channel with bursts of 3,
answered 429 `ratelimited` with `Retry-After` past it (a token bucket per channel; `rate_limited_count` counts them).
And it is as strict as Slack about content: every `blocks`, `text` and `view` is checked against Slack's rules
(`tests/fakes/block_kit.py`) and refused the way Slack refuses it. Each refusal is also kept in `refusals`, so that a
test fails on content Slack would refuse even when the bot shrugs the error off.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.fakes.block_kit import Refusal, message_refusal, view_refusal
from tests.fakes.server import FakeServer, Gate

# Slack's documented chat.postMessage limit, enforced from the start: about one a second per channel, short bursts.
POST_RATE_PER_SECOND = 1.0
POST_BURST = 3

# Params that arrive as JSON strings in forms; the fake records them as Python values, like JSON bodies.
_JSON_PARAMS = ("blocks", "attachments", "user_auth_blocks", "view", "metadata")

_TEAM_ID = "T0001"
_BOT_USER_ID = "UBOT"
_BOT_ID = "BBOT"
_FIRST_TS_MICROS = 1_700_000_000_000_000

# Slack's documented lifetime of a response_url: five posts, within 30 minutes of the interaction.
RESPONSE_URL_MAX_POSTS = 5
RESPONSE_URL_LIFETIME_SECONDS = 30 * 60
# What Slack answers (HTTP 404, plain text) once a response_url is spent.
USED_URL = "used_url"
EXPIRED_URL = "expired_url"


@dataclass(frozen=True)
class SlackCall:
    """One HTTP call to the Web API, with the parsed params and what the fake answered."""

    method: str
    params: dict[str, Any]
    headers: Mapping[str, str]  # case-insensitive, as HTTP headers are
    at: float
    response: dict[str, Any] = field(default_factory=dict)
    http_status: int | None = None  # None: the connection was dropped without an answer


@dataclass(frozen=True)
class SlackMessage:
    """A message as it currently stands in the fake workspace."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    edits: int = 0

    def as_payload(self) -> dict[str, Any]:
        """The `message` object Slack returns for this message."""
        payload: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "user": _BOT_USER_ID,
            "bot_id": _BOT_ID,
            "team": _TEAM_ID,
            "ts": self.ts,
            "text": self.text or "",
        }
        if self.blocks is not None:
            payload["blocks"] = self.blocks
        if self.thread_ts is not None:
            payload["thread_ts"] = self.thread_ts
        return payload


@dataclass(frozen=True)
class SlackRefusal:
    """Content Slack would have refused: where it was sent, and why (Slack's code and messages)."""

    method: str  # a Web API method, or "response_url:<name>"
    error: str
    errors: tuple[str, ...]
    params: dict[str, Any]


@dataclass
class _Failure:
    times: int
    status: int
    retry_after: int
    error: str | None
    body: dict[str, Any] | str | None
    channel: str | None = None  # None: any call to the method


_Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _error(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}


class FakeSlack(FakeServer):
    """Slack's Web API as slack_sdk sees it: `AsyncWebClient(token=..., base_url=fake.api_url)`."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        *,
        app_token: str = "xapp-test",
        usergroups: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.app_token = app_token
        self.usergroups: dict[str, list[str]] = {k: list(v) for k, v in (usergroups or {}).items()}
        self.socket_mode_url: str | None = None
        self._ts_counter = 0
        # Added to the real clock, so a test can jump ahead (a response_url's 30 minutes) without sleeping.
        self._clock_offset = 0.0
        self._methods: dict[str, _Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._get_permalink,
            "usergroups.users.list": self._usergroup_users,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "conversations.info": self._conversations_info,
            "apps.connections.open": self._connections_open,
        }
        self._clear()

    def _clear(self) -> None:
        with self._lock:
            self._calls: list[SlackCall] = []
            self._messages: dict[tuple[str, str], SlackMessage] = {}
            self._order: list[tuple[str, str]] = []
            self._responses: list[tuple[str, dict[str, Any]]] = []
            self._response_posts: dict[str, int] = defaultdict(int)
            self._response_issued: dict[str, float] = {}
            self._refusals: list[SlackRefusal] = []
            self._views: dict[str, dict[str, Any]] = {}
            self._failures: dict[str, list[_Failure]] = defaultdict(list)
            self._drops: dict[str, int] = defaultdict(int)
            self._delays: dict[str, float] = {}
            self._response_gates: list[Gate] = []
            self._post_holds: dict[str, Gate] = {}
            self._held_posts = 0
            self._abandoned_posts = 0
            self._channel_errors: dict[str, str] = {}
            self._post_rate: tuple[float, float] = (POST_RATE_PER_SECOND, float(POST_BURST))
            self._buckets: dict[str, tuple[float, float]] = {}
            self._rate_limited = 0
        self.forget_max_in_flight()

    # -- configuration -------------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self, name: str = "r1") -> str:
        """A response_url whose posts are recorded under `name`; its 30 minutes start now (or at its first post)."""
        with self._lock:
            self._response_issued.setdefault(name, self.now())
        return f"{self.base_url}/response/{name}"

    def now(self) -> float:
        """The fake's clock: monotonic time plus whatever `advance` added."""
        with self._lock:
            return time.monotonic() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (response_url expiry, the post-rate buckets)."""
        with self._lock:
            self._clock_offset += seconds

    def reset(self) -> None:
        """Forget recorded calls, messages, responses and every injected failure."""
        self._clear()

    def fail_next(
        self,
        method: str,
        times: int = 1,
        *,
        status: int = 429,
        retry_after: int = 1,
        error: str | None = None,
        body: dict[str, Any] | str | None = None,
        channel: str | None = None,
    ) -> None:
        """Answer the next `times` calls to `method` (to `channel`, if given) with `status`.

        429 answers `ratelimited` with Retry-After; 5xx answers plain text.
        """
        with self._lock:
            self._failures[method].append(_Failure(times, status, retry_after, error, body, channel))

    def add_message(self, channel: str, ts: str, text: str, *, thread_ts: str | None = None) -> None:
        """A message posted before this fake started (by an older bot): updating it then works, as on Slack."""
        with self._lock:
            self._messages[(channel, ts)] = SlackMessage(channel, ts, text, None, thread_ts)
            self._order.append((channel, ts))

    def not_in_channel(self, channel_id: str) -> None:
        """Make chat.postMessage/chat.update to this channel fail with not_in_channel."""
        with self._lock:
            self._channel_errors[channel_id] = "not_in_channel"

    def channel_not_found(self, channel_id: str) -> None:
        """Make chat.postMessage/chat.update to this channel fail with channel_not_found."""
        with self._lock:
            self._channel_errors[channel_id] = "channel_not_found"

    def clear_channel_errors(self) -> None:
        with self._lock:
            self._channel_errors.clear()

    def delay(self, method: str, seconds: float) -> None:
        """Delay every answer of `method` by `seconds` (0 removes the delay)."""
        with self._lock:
            self._delays[method] = seconds

    def hold_responses(self) -> Gate:
        """Hold every post to a response_url until the returned gate is released (Web API calls go through)."""
        gate = Gate()
        with self._lock:
            self._response_gates.append(gate)
        return gate

    def hold_posts(self, channel_id: str) -> Gate:
        """Hold chat.postMessage to this channel, not yet accepted, until the returned gate is released.

        A held post whose client goes away meanwhile (the bot stopped or was killed) is dropped unrecorded,
        as Slack drops a request it never finished taking: it was never accepted.
        """
        gate = Gate()
        with self._lock:
            self._post_holds[channel_id] = gate
        return gate

    @property
    def held_posts(self) -> int:
        """Posts held by `hold_posts` right now."""
        with self._lock:
            return self._held_posts

    @property
    def abandoned_posts(self) -> int:
        """Held posts dropped because their client went away."""
        with self._lock:
            return self._abandoned_posts

    def stop(self) -> None:
        with self._lock:
            holds = list(self._post_holds.values())
        for gate in holds:
            gate.release()
        super().stop()

    async def _hold_post(self, request: web.Request, channel: object) -> bool:
        """Wait while this channel's posts are held; False when the client went away meanwhile."""
        with self._lock:
            gate = self._post_holds.get(channel) if isinstance(channel, str) else None
            if gate is None or gate.released:
                return True
            self._held_posts += 1
        try:
            while not gate.released:
                if request.transport is None or request.transport.is_closing():
                    with self._lock:
                        self._abandoned_posts += 1
                    return False
                await self.pause(0.02)  # the disconnection is noticed by looking, as Slack's server would
            return True
        finally:
            with self._lock:
                self._held_posts -= 1

    def drop_connections(self, method: str, times: int = 1) -> None:
        """Close the connection without answering for the next `times` calls to `method`."""
        with self._lock:
            self._drops[method] += times

    def enforce_post_rate(self, per_second: float = POST_RATE_PER_SECOND, burst: int = POST_BURST) -> None:
        """Rate-limit chat.postMessage per channel with a token bucket, as Slack roughly does (the default)."""
        with self._lock:
            self._post_rate = (per_second, float(burst))
            self._buckets.clear()

    # -- recordings ------------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[SlackCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [call for call in self._calls if call.method == method]

    @property
    def refusals(self) -> list[SlackRefusal]:
        """Every message, view or response_url post refused for its content or a spent response_url, in order."""
        with self._lock:
            return list(self._refusals)

    @property
    def rate_limited_count(self) -> int:
        """How many chat.postMessage calls the per-channel posting limit refused (429)."""
        with self._lock:
            return self._rate_limited

    def message(self, channel: str, ts: str) -> SlackMessage | None:
        """The message as it stands after updates, or None if the fake never posted it."""
        with self._lock:
            return self._messages.get((channel, ts))

    def messages(self, channel: str | None = None) -> list[SlackMessage]:
        """Every posted message (optionally of one channel), in posting order."""
        with self._lock:
            found = [self._messages[key] for key in self._order]
        return [m for m in found if channel is None or m.channel == channel]

    def thread(self, channel: str, ts: str) -> list[SlackMessage]:
        """Replies posted in the thread of `ts`, in order."""
        return [m for m in self.messages(channel) if m.thread_ts == ts]

    def root_messages(self, channel: str) -> list[SlackMessage]:
        return [m for m in self.messages(channel) if m.thread_ts is None]

    def responses(self, name: str | None = None) -> list[dict[str, Any]]:
        """Bodies accepted on response URLs (all names, or one), in order."""
        with self._lock:
            return [body for n, body in self._responses if name is None or n == name]

    def published_view(self, user_id: str) -> dict[str, Any] | None:
        """The last Home tab view published for `user_id`."""
        with self._lock:
            return self._views.get(user_id)

    # -- HTTP ------------------------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{name}", self._handle_response_url)
        return app

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await _parse_params(request)
        headers = CIMultiDictProxy(CIMultiDict(request.headers))
        at = time.monotonic()
        # Calls are recorded once answered, so a held or delayed call shows up in `calls` only afterwards.
        await self.pass_gates()
        if method == "chat.postMessage" and not await self._hold_post(request, params.get("channel")):
            return web.Response(status=499, text="client went away")
        with self._lock:
            delay = self._delays.get(method, 0.0)
        await self.pause(delay)

        with self._lock:
            if self._drops[method] > 0:
                self._drops[method] -= 1
                self._calls.append(SlackCall(method, params, headers, at))
                return self.drop(request)
            failure = self._next_failure(method, params.get("channel"))
            if failure is not None:
                status, body, extra_headers = _failure_answer(failure)
            else:
                status, body, extra_headers = self._answer(method, params, _token(request, params))
            self._calls.append(SlackCall(method, params, headers, at, body if isinstance(body, dict) else {}, status))
        if isinstance(body, dict):
            return web.json_response(body, status=status, headers=extra_headers)
        return web.Response(text=body, status=status, headers=extra_headers)

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        with self._lock:
            gates = [gate for gate in self._response_gates if not gate.released]
        for gate in gates:
            await gate.wait()
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        with self._lock:
            issued = self._response_issued.setdefault(name, self.now())
            spent = None
            if self.now() - issued > RESPONSE_URL_LIFETIME_SECONDS:
                spent = EXPIRED_URL
            elif self._response_posts[name] >= RESPONSE_URL_MAX_POSTS:
                spent = USED_URL
            if spent is not None:
                self._refuse(f"response_url:{name}", Refusal(spent), body if isinstance(body, dict) else {})
                return web.Response(status=404, text=spent)
            if not isinstance(body, dict):
                refusal: Refusal | None = Refusal("invalid_payload")
            elif not any(body.get(key) for key in ("text", "blocks", "attachments", "delete_original")):
                refusal = Refusal("no_text")
            else:
                refusal = message_refusal(body)
            if refusal is not None:
                # Slack answers a response_url in plain text: the error code, with HTTP 400.
                self._refuse(f"response_url:{name}", refusal, body if isinstance(body, dict) else {})
                return web.Response(status=400, text=refusal.error)
            self._response_posts[name] += 1
            self._responses.append((name, body))
        return web.Response(text="ok")

    def _refuse(self, method: str, refusal: Refusal, params: dict[str, Any]) -> dict[str, Any]:
        self._refusals.append(SlackRefusal(method, refusal.error, refusal.errors, params))
        return refusal.api_answer()

    def _next_failure(self, method: str, channel: object) -> _Failure | None:
        queue = self._failures.get(method) or []
        failure = next((f for f in queue if f.channel is None or f.channel == channel), None)
        if failure is None:
            return None
        failure.times -= 1
        if failure.times <= 0:
            queue.remove(failure)
        return failure

    def _answer(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        handler = self._methods.get(method)
        if handler is None:
            return 200, _error("unknown_method"), {}
        # Socket Mode takes the app-level token; every other method the bot token.
        expected, other = self.bot_token, self.app_token
        if method == "apps.connections.open":
            expected, other = other, expected
        if token != expected:
            return 200, _error("not_allowed_token_type" if token == other else "invalid_auth"), {}
        if method == "chat.postMessage":
            retry_after = self._take_post_token(str(params.get("channel") or ""))
            if retry_after is not None:
                self._rate_limited += 1
                return 429, _error("ratelimited"), {"Retry-After": str(retry_after)}
        return 200, handler(params), {}

    def _next_ts(self) -> str:
        self._ts_counter += 1
        micros = _FIRST_TS_MICROS + self._ts_counter * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _take_post_token(self, channel: str) -> int | None:
        """Take a token from the channel's bucket; return Retry-After seconds when it is empty."""
        rate, burst = self._post_rate
        now = self.now()
        tokens, last = self._buckets.get(channel, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[channel] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / rate))
        self._buckets[channel] = (tokens - 1, now)
        return None

    # -- methods (called with the lock held) -------------------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "partoo-retry",
            "team_id": _TEAM_ID,
            "user_id": _BOT_USER_ID,
            "bot_id": _BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return _error("channel_not_found")
        if channel in self._channel_errors:
            return _error(self._channel_errors[channel])
        text, blocks = params.get("text"), params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            return _error("no_text")
        refusal = message_refusal(params)
        if refusal is not None:
            return self._refuse("chat.postMessage", refusal, params)
        thread_ts = params.get("thread_ts") or None
        parent = self._messages.get((channel, thread_ts)) if thread_ts else None
        if parent is not None and parent.thread_ts is not None:
            # Slack files a reply to a reply under the thread's root.
            thread_ts = parent.thread_ts
        message = SlackMessage(channel, self._next_ts(), text, blocks, thread_ts)
        self._messages[(channel, message.ts)] = message
        self._order.append((channel, message.ts))
        return {"ok": True, "channel": channel, "ts": message.ts, "message": message.as_payload()}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        if channel in self._channel_errors:
            return _error(self._channel_errors[channel])
        current = self._messages.get((channel or "", ts or ""))
        if current is None:
            return _error("message_not_found")
        refusal = message_refusal(params)
        if refusal is not None:
            return self._refuse("chat.update", refusal, params)
        # Like Slack, omitted fields keep their value; `blocks=[]` removes the blocks.
        updated = replace(
            current,
            text=params.get("text", current.text),
            blocks=params.get("blocks", current.blocks),
            edits=current.edits + 1,
        )
        self._messages[(updated.channel, updated.ts)] = updated
        return {
            "ok": True,
            "channel": updated.channel,
            "ts": updated.ts,
            "text": updated.text or "",
            "message": updated.as_payload(),
        }

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return _error("channel_not_found")
        if not params.get("user"):
            return _error("user_not_in_channel")
        refusal = message_refusal(params)
        if refusal is not None:
            return self._refuse("chat.postEphemeral", refusal, params)
        return {"ok": True, "message_ts": self._next_ts()}

    def _get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("message_ts")
        if not channel or not ts:
            return _error("invalid_arguments")
        permalink = f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel, "permalink": permalink}

    def _usergroup_users(self, params: dict[str, Any]) -> dict[str, Any]:
        users = self.usergroups.get(params.get("usergroup") or "")
        if users is None:
            return _error("no_such_subteam")
        return {"ok": True, "users": list(users)}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id, view = params.get("user_id"), params.get("view")
        if not user_id or not isinstance(view, dict):
            return _error("invalid_arguments")
        refusal = view_refusal(view)
        if refusal is not None:
            return self._refuse("views.publish", refusal, params)
        self._views[user_id] = view
        return {"ok": True, "view": {"id": "VHOME", **view}}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._modal("views.open", params, "trigger_id")

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._modal("views.update", params, "view_id", "external_id")

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._modal("views.push", params, "trigger_id")

    def _modal(self, method: str, params: dict[str, Any], *ids: str) -> dict[str, Any]:
        if not any(params.get(name) for name in ids) or not isinstance(params.get("view"), dict):
            return _error("invalid_arguments")
        refusal = view_refusal(params["view"])
        if refusal is not None:
            return self._refuse(method, refusal, params)
        return {"ok": True, "view": {"id": "VMODAL", **params["view"]}}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel or self._channel_errors.get(channel) == "channel_not_found":
            return _error("channel_not_found")
        is_member = channel not in self._channel_errors
        return {"ok": True, "channel": {"id": channel, "is_member": is_member}}

    def _connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.socket_mode_url is None:
            return _error("not_allowed")
        return {"ok": True, "url": self.socket_mode_url}


def _failure_answer(failure: _Failure) -> tuple[int, dict[str, Any] | str, dict[str, str]]:
    headers: dict[str, str] = {}
    if failure.status == 429:
        headers["Retry-After"] = str(failure.retry_after)
    if failure.body is not None:
        return failure.status, failure.body, headers
    if failure.status >= 500:
        return failure.status, "Internal Server Error", headers
    if failure.status == 429:
        return failure.status, _error(failure.error or "ratelimited"), headers
    return failure.status, _error(failure.error or "fatal_error"), headers


def _token(request: web.Request, params: dict[str, Any]) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ").strip()
    token = params.get("token")
    return token if isinstance(token, str) else None


async def _parse_params(request: web.Request) -> dict[str, Any]:
    """Merge query string, form and JSON body the way Slack reads them."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        raw = await request.read()
        if raw:
            body = json.loads(raw)
            if isinstance(body, dict):
                params.update(body)
    elif request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for name in _JSON_PARAMS:
        value = params.get(name)
        if isinstance(value, str):
            # Unparsable text stays as is so a test sees what the bot sent (Slack: invalid_blocks).
            with contextlib.suppress(ValueError):
                params[name] = json.loads(value)
    return params
