"""A stand-in for Slack: the Web API methods the bot calls, its response URLs, and the workspace they change.

Messages are kept the way Slack keeps them: a reply to a reply is filed under the thread's root,
`chat.update` replaces a message in place, an ephemeral message is seen by one person only, and a response
URL takes five posts at most. Every change bumps `Changes`, which the page follows.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from bot.demo.changes import Changes
from bot.demo.workspace import BOT_ID, BOT_NAME, BOT_USER_ID, TEAM_ID, channel

# Web API params that arrive as JSON text in forms and query strings.
_JSON_PARAMS = ("blocks", "attachments", "view")
RESPONSE_URL_POSTS = 5
RESPONSE_URL_SECONDS = 30 * 60
# The page shows the latest messages of a channel; older ones only make its updates heavier.
SHOWN_PER_CHANNEL = 150


@dataclass
class Message:
    """One message as it stands now in a channel (or only in one person's view, when ephemeral)."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    visible_to: str | None = None
    edited: bool = False

    def as_payload(self) -> dict[str, Any]:
        """The `message` object Slack puts in a click's payload."""
        payload: dict[str, Any] = {"type": "message", "user": self.user, "ts": self.ts, "text": self.text}
        if self.user == BOT_USER_ID:
            payload |= {"subtype": "bot_message", "bot_id": BOT_ID, "team": TEAM_ID}
        if self.blocks is not None:
            payload["blocks"] = self.blocks
        if self.thread_ts is not None:
            payload["thread_ts"] = self.thread_ts
        return payload

    def for_page(self, replies: list[Message]) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "user": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "edited": self.edited,
            "ephemeral": self.visible_to is not None,
            "replies": [reply.for_page([]) for reply in replies],
        }


@dataclass
class _ResponseUrl:
    user: str
    channel: str
    message_ts: str | None  # the message whose button was clicked; None for a command
    created: float = field(default_factory=time.monotonic)
    posts: int = 0


def _error(code: str) -> dict[str, Any]:
    return {"ok": False, "error": code}


class SlackStandIn:
    """Slack's Web API for one bot token, at `{base_url}/slack/api/`, and the messages it holds."""

    def __init__(self, *, bot_token: str, base_url: str, changes: Changes) -> None:
        self.bot_token = bot_token
        self.base_url = base_url
        self.changes = changes
        self._messages: dict[tuple[str, str], Message] = {}  # in posting order
        self._views: dict[str, dict[str, Any]] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._last_micros = 0
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "views.publish": self._views_publish,
            "conversations.info": self._conversations_info,
            "usergroups.users.list": self._usergroup_users,
        }

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/slack/api/"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/slack/api/{method}", self._api),
            web.post("/slack/response/{token}", self._response),
        ]

    def add_method(self, name: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Serve one more Web API method (checked for the bot's token like the others)."""
        self._methods[name] = handler

    # -- what people do in the workspace -------------------------------------------------------------------

    def post(self, channel_id: str, user: str, text: str, blocks: list[dict[str, Any]] | None = None) -> Message:
        """A message someone (or the bot) writes in a channel."""
        return self._add(Message(channel_id, self._next_ts(), user, text, blocks))

    def ephemeral(
        self,
        channel_id: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        author: str = BOT_USER_ID,
    ) -> Message:
        """A message (from the bot, unless `author` says otherwise) that only `user` sees."""
        return self._add(Message(channel_id, self._next_ts(), author, text, blocks, visible_to=user))

    def response_url(self, user: str, channel_id: str, message_ts: str | None = None) -> str:
        token = secrets.token_urlsafe(12)
        self._response_urls[token] = _ResponseUrl(user, channel_id, message_ts)
        return f"{self.base_url}/slack/response/{token}"

    def record_answer(self, user: str, channel_id: str, command: str, answer: httpx.Response | None) -> None:
        """Show what the bot answered a command with, as Slack does: its ephemeral text, or Slack's error."""
        if answer is None:
            # Slack gives an app 3 seconds to answer a command.
            self.ephemeral(channel_id, user, f'{command} failed with the error "operation_timeout"')
            return
        if answer.status_code != 200:
            self.ephemeral(channel_id, user, f'{command} failed with the error "dispatch_failed"')
            return
        with contextlib.suppress(ValueError):
            body = answer.json()
            if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
                self._respond(user, channel_id, None, body)

    def forget_ephemeral(self) -> None:
        """Slack keeps an ephemeral message only until the page is reloaded; the demo's page is one visitor's."""
        for key in [key for key, message in self._messages.items() if message.visible_to is not None]:
            del self._messages[key]
        self.changes.bump()

    def message(self, channel_id: str, ts: str) -> Message | None:
        return self._messages.get((channel_id, ts))

    def messages(self, channel_id: str) -> list[Message]:
        return [m for m in self._messages.values() if m.channel == channel_id]

    def view(self, user: str) -> dict[str, Any] | None:
        """The App Home view last published for `user`."""
        return self._views.get(user)

    def snapshot(self, user: str, channel_id: str) -> list[dict[str, Any]]:
        """The latest root messages of a channel as `user` sees them, each with its thread's replies."""
        seen = [m for m in self.messages(channel_id) if m.visible_to in (None, user)]
        replies: dict[str, list[Message]] = {}
        for message in seen:
            if message.thread_ts is not None:
                replies.setdefault(message.thread_ts, []).append(message)
        roots = [m for m in seen if m.thread_ts is None][-SHOWN_PER_CHANNEL:]
        return [root.for_page(replies.get(root.ts, [])) for root in roots]

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        params = await _params(request)
        method = request.match_info["method"]
        handler = self._methods.get(method)
        if handler is None:
            return web.json_response(_error("unknown_method"))
        if _token(request, params) != self.bot_token:
            return web.json_response(_error("invalid_auth"))
        return web.json_response(handler(params))

    async def _response(self, request: web.Request) -> web.Response:
        target = self._response_urls.get(request.match_info["token"])
        if target is None or time.monotonic() - target.created > RESPONSE_URL_SECONDS:
            return web.Response(status=404, text="expired_url")
        if target.posts >= RESPONSE_URL_POSTS:
            return web.Response(status=404, text="used_url")
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        target.posts += 1
        self._respond(target.user, target.channel, target.message_ts, body)
        return web.Response(text="ok")

    def _respond(self, user: str, channel_id: str, message_ts: str | None, body: dict[str, Any]) -> None:
        """An answer through a response URL (or a command's HTTP answer), applied the way Slack applies it."""
        text, blocks = str(body.get("text") or ""), _blocks(body.get("blocks"))
        original = self._messages.get((channel_id, message_ts)) if message_ts else None
        if original is not None and body.get("delete_original") is True:
            del self._messages[(channel_id, original.ts)]
            self.changes.bump()
        elif original is not None and body.get("replace_original") is True:
            original.text, original.blocks, original.edited = text, blocks, True
            self.changes.bump()
        elif body.get("response_type") == "in_channel":
            self.post(channel_id, BOT_USER_ID, text, blocks)
        else:
            self.ephemeral(channel_id, user, text, blocks)

    # -- Web API methods -------------------------------------------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "user": BOT_NAME}

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = str(params.get("channel") or "")
        if channel(channel_id) is None:
            return _error("channel_not_found")
        text, blocks = str(params.get("text") or ""), _blocks(params.get("blocks"))
        if not text and not blocks:
            return _error("no_text")
        thread_ts = params.get("thread_ts") or None
        if thread_ts is not None:
            parent = self._messages.get((channel_id, thread_ts))
            if parent is None:
                return _error("thread_not_found")
            # Slack files a reply to a reply under the thread's root.
            thread_ts = parent.thread_ts or parent.ts
        message = self._add(Message(channel_id, self._next_ts(), BOT_USER_ID, text, blocks, thread_ts))
        return {"ok": True, "channel": channel_id, "ts": message.ts, "message": message.as_payload()}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._messages.get((str(params.get("channel")), str(params.get("ts"))))
        if message is None or message.visible_to is not None:
            return _error("message_not_found")
        if message.user != BOT_USER_ID:
            return _error("cant_update_message")
        # Like Slack, a field left out keeps its value.
        if "text" in params:
            message.text = str(params["text"] or "")
        if "blocks" in params:
            message.blocks = _blocks(params["blocks"])
        message.edited = True
        self.changes.bump()
        return {"ok": True, "channel": message.channel, "ts": message.ts, "message": message.as_payload()}

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id, user = str(params.get("channel") or ""), str(params.get("user") or "")
        if channel(channel_id) is None:
            return _error("channel_not_found")
        message = self.ephemeral(channel_id, user, str(params.get("text") or ""), _blocks(params.get("blocks")))
        return {"ok": True, "message_ts": message.ts}

    def _permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id, ts = str(params.get("channel") or ""), str(params.get("message_ts") or "")
        if self._messages.get((channel_id, ts)) is None:
            return _error("message_not_found")
        # The page reads this fragment and scrolls to the message.
        return {"ok": True, "channel": channel_id, "permalink": f"{self.base_url}/#{channel_id}/{ts}"}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user, view = params.get("user_id"), params.get("view")
        if not isinstance(user, str) or not isinstance(view, dict):
            return _error("invalid_arguments")
        self._views[user] = view
        self.changes.bump()
        return {"ok": True, "view": {"id": f"V{user}", **view}}

    def _usergroup_users(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "users": []}  # the demo's access list names people, not groups

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        found = channel(str(params.get("channel") or ""))
        if found is None:
            return _error("channel_not_found")
        return {"ok": True, "channel": {"id": found.id, "name": found.name, "is_member": True}}

    # -- bookkeeping -----------------------------------------------------------------------------------------

    def _add(self, message: Message) -> Message:
        self._messages[(message.channel, message.ts)] = message
        self.changes.bump()
        return message

    def _next_ts(self) -> str:
        # Slack's ts is the posting time in microseconds, unique within a channel; here unique everywhere.
        self._last_micros = max(time.time_ns() // 1000, self._last_micros + 1)
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"


def _blocks(value: object) -> list[dict[str, Any]] | None:
    if isinstance(value, list) and value:
        return [block for block in value if isinstance(block, dict)]
    return None


def _token(request: web.Request, params: dict[str, Any]) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ").strip()
    token = params.get("token")
    return token if isinstance(token, str) else None


async def _params(request: web.Request) -> dict[str, Any]:
    """Query string, form and JSON body merged, the way Slack reads a Web API call."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        with contextlib.suppress(ValueError):
            body = json.loads(await request.read() or b"{}")
            if isinstance(body, dict):
                params.update(body)
    elif request.can_read_body:
        form = await request.post()
        params.update({key: value for key, value in form.items() if isinstance(value, str)})
    for name in _JSON_PARAMS:
        if isinstance(params.get(name), str):
            with contextlib.suppress(ValueError):
                params[name] = json.loads(params[name])
    return params
