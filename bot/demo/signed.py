"""What Slack sends the bot, built and signed the way Slack does, through the bot's real `/slack/events` route.

Each request carries Slack's headers: `X-Slack-Request-Timestamp` and `X-Slack-Signature`, `v0=` followed by
the hex HMAC-SHA256 of `v0:{timestamp}:{body}` under the signing secret (a random one per demo run).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.demo.workspace import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, Channel, Person

FORM = "application/x-www-form-urlencoded"
# Slack shows "operation_timeout" when an app takes longer than this to answer.
SLACK_DEADLINE_SECONDS = 3.0


def signature_headers(signing_secret: str, body: bytes, content_type: str = FORM) -> dict[str, str]:
    timestamp = str(int(time.time()))
    digest = hmac.new(signing_secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type,
    }


class SignedSlack:
    """Sends slash commands, button clicks, message shortcuts, modal submissions and App Home events to the bot."""

    def __init__(self, bot_url: str, signing_secret: str) -> None:
        self._secret = signing_secret
        # No proxy from the environment: the bot is on loopback.
        self._http = httpx.AsyncClient(base_url=bot_url, timeout=SLACK_DEADLINE_SECONDS, trust_env=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def slash_command(
        self, person: Person, channel: Channel, command: str, text: str, response_url: str
    ) -> httpx.Response | None:
        """A slash command; None when the bot did not answer within Slack's deadline."""
        fields = {
            "token": "demo-verification-token",
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel.id,
            "channel_name": channel.name,
            "user_id": person.id,
            "user_name": person.handle,
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": _trigger_id(),
        }
        return await self._send(urlencode(fields).encode(), FORM)

    async def block_actions(
        self,
        person: Person,
        channel: Channel,
        message: dict[str, Any],
        action: dict[str, Any],
        response_url: str,
        *,
        trigger_id: str,
        ephemeral: bool = False,
    ) -> httpx.Response | None:
        """A click on a button or a menu choice in `message` (the message as Slack holds it when the click arrives).

        `action` is the element's part of the payload (its type, action_id, block_id, and value or
        selected_option). On an ephemeral message Slack says so in the container and sends no `message`.
        """
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": person.id, "username": person.handle, "name": person.handle, "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": "demo-verification-token",
            "container": {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel.id,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": trigger_id,
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel.id, "name": channel.name},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
        }
        if not ephemeral:
            payload["message"] = message
        return await self._send(urlencode({"payload": json.dumps(payload)}).encode(), FORM)

    async def message_action(
        self, person: Person, channel: Channel, message: dict[str, Any], callback_id: str, trigger_id: str, url: str
    ) -> httpx.Response | None:
        """A message shortcut chosen in `message`'s "More actions" menu."""
        payload: dict[str, Any] = {
            "type": "message_action",
            "token": "demo-verification-token",
            "action_ts": f"{time.time():.6f}",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "user": {"id": person.id, "username": person.handle, "name": person.handle, "team_id": TEAM_ID},
            "channel": {"id": channel.id, "name": channel.name},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": trigger_id,
            "response_url": url,
            "message_ts": message["ts"],
            "message": message,
        }
        return await self._send(urlencode({"payload": json.dumps(payload)}).encode(), FORM)

    async def view_submission(self, person: Person, view: dict[str, Any], trigger_id: str) -> httpx.Response | None:
        """A modal's submit button: the view as opened, with what the person chose in `view["state"]`."""
        payload: dict[str, Any] = {
            "type": "view_submission",
            "token": "demo-verification-token",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "user": {"id": person.id, "username": person.handle, "name": person.handle, "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "trigger_id": trigger_id,
            "view": {**view, "team_id": TEAM_ID, "app_id": APP_ID, "hash": secrets.token_hex(8)},
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return await self._send(urlencode({"payload": json.dumps(payload)}).encode(), FORM)

    async def app_home_opened(self, person: Person) -> httpx.Response | None:
        """The event Slack sends when someone opens the app's Home tab."""
        envelope = {
            "token": "demo-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": {
                "type": "app_home_opened",
                "user": person.id,
                "channel": f"D{person.id}",
                "tab": "home",
                "event_ts": f"{time.time():.6f}",
            },
            "type": "event_callback",
            "event_id": f"Ev{secrets.token_hex(6).upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
        }
        return await self._send(json.dumps(envelope).encode(), "application/json")

    async def _send(self, body: bytes, content_type: str) -> httpx.Response | None:
        headers = signature_headers(self._secret, body, content_type)
        try:
            return await self._http.post("/slack/events", content=body, headers=headers)
        except httpx.TimeoutException:
            return None
        except httpx.TransportError:
            # Slack's word for an app it could not reach.
            return httpx.Response(502)


def _trigger_id() -> str:
    return f"{int(time.time())}.{secrets.randbelow(10**12)}"
