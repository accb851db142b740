"""Builders for the requests Slack and Partoo send the bot, signed the way they sign them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"


def slack_signature_headers(
    signing_secret: str,
    body: bytes,
    timestamp: int | None = None,
    *,
    content_type: str = FORM_CONTENT_TYPE,
) -> dict[str, str]:
    """Headers Slack sends: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    ts = int(time.time()) if timestamp is None else timestamp
    base = f"v0:{ts}:".encode() + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type,
    }


def slash_command_body(
    text: str,
    *,
    command: str = "/partoo-retry",
    user_id: str = "U123",
    user_name: str = "alice",
    channel_id: str = "C123",
    channel_name: str = "ops",
    team_id: str = "T0001",
    response_url: str = "https://hooks.invalid/x",
    trigger_id: str = "t1",
) -> bytes:
    """A slash command, form-encoded as Slack posts it."""
    fields = {
        "token": "verification-token",
        "team_id": team_id,
        "team_domain": "fake",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": "A0001",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urlencode(fields).encode()


def block_actions_body(
    *,
    action_id: str,
    value: str,
    user_id: str = "U123",
    channel_id: str = "C123",
    message_ts: str = "1700000000.000100",
    response_url: str = "https://hooks.invalid/x",
    block_id: str = "b",
    message: dict[str, Any] | None = None,
    team_id: str = "T0001",
) -> bytes:
    """A button click on a message, form-encoded as `payload=<json>` as Slack posts it."""
    if message is None:
        message = {
            "type": "message",
            "user": "UBOT",
            "bot_id": "BBOT",
            "ts": message_ts,
            "text": "",
            "blocks": [],
        }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "alice", "name": "alice", "team_id": team_id},
        "api_app_id": "A0001",
        "token": "verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": "t1",
        "team": {"id": team_id, "domain": "fake"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "ops"},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": "Retry", "emoji": True},
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def event_callback_body(event: dict[str, Any], *, team_id: str = "T0001", event_id: str = "Ev0001") -> bytes:
    """An Events API delivery (JSON) wrapping `event`; sign it with content_type=JSON_CONTENT_TYPE."""
    envelope = {
        "token": "verification-token",
        "team_id": team_id,
        "api_app_id": "A0001",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": "UBOT", "is_bot": True}],
    }
    return json.dumps(envelope).encode()


class PartooSigner:
    """A freshly generated Ed25519 key pair that signs webhook bodies the way Partoo does."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        public = self._key.public_key()
        self.public_pem: str = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        # The form Partoo publishes its keys in: the PEM body alone (base64 of the DER).
        self.public_key_base64: str = base64.b64encode(
            public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).decode()

    def sign(self, body: bytes) -> str:
        """Base64 of the raw Ed25519 signature of `body`."""
        return base64.b64encode(self._key.sign(body)).decode()

    def headers(self, body: bytes) -> dict[str, str]:
        return {"X-Partoo-Signature-v1": self.sign(body), "Content-Type": JSON_CONTENT_TYPE}


def message_updated_event(
    message_id: int = 123,
    *,
    status: str = "Failed",
    conversation_id: int = 456,
    sender_type: str = "User",
    content_type: str = "Text",
    content: str = "Hello",
    consumer_name: str = "John Doe",
    messaging_partner: str = "Whatsapp",
    business_id: int = 42,
    org_id: int = 7,
    sender_label: str = "Jane Doe",
    date: str = "2023-01-31 16:22:17.327878+00:00",
    is_deleted: bool = False,
) -> dict[str, Any]:
    """A `message_updated` webhook body shaped like the example in NOTES.md."""
    return {
        "type": "message_updated",
        "payload": {
            "message": {
                "id": message_id,
                "conversation_id": conversation_id,
                "date": date,
                "content_type": content_type,
                "sender_type": sender_type,
                "sender_label": sender_label,
                "status": status,
                "is_deleted": is_deleted,
                "content": content,
                "user_id": "user-1",
                "custom_channel": None,
            },
            "conversation": {
                "id": conversation_id,
                "consumer_img": "https://www.example.com/profile-picture.jpg",
                "consumer_name": consumer_name,
                "business": {"id": business_id},
                "messaging_partner": messaging_partner,
                "custom_channel": None,
            },
            "org_id": org_id,
        },
    }


def json_body(value: Any) -> bytes:
    """Encode a webhook or API body as the bytes that get signed and sent."""
    return json.dumps(value).encode()
