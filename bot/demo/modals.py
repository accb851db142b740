"""Slack's modals, as far as the bot opens them (the message shortcut's, the silence's): `views.open` with a fresh
trigger_id, the modal each person sees, and the bot's answer to a submission (close it, show it updated, or show
errors on its fields)."""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any

import httpx

from bot.demo.changes import Changes

# Slack refuses a trigger_id used more than once or later than 3 seconds after the click.
TRIGGER_SECONDS = 3.0
# What Slack shows in a modal when the app did not answer its submission.
NO_ANSWER = "We had some trouble connecting. Try again?"


class Modals:
    """The open modal of each person, at most one (the shortcut never stacks views)."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self._triggers: dict[str, tuple[str, float]] = {}
        self._open: dict[str, dict[str, Any]] = {}

    def trigger(self, user: str) -> str:
        """A trigger_id for something `user` just did, as Slack puts in a shortcut's payload."""
        token = f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(8)}"
        now = time.monotonic()
        # Every click gets one, and most are never used: those past their 3 seconds are forgotten here.
        self._triggers = {key: made for key, made in self._triggers.items() if now - made[1] <= TRIGGER_SECONDS}
        self._triggers[token] = (user, now)
        return token

    def shown(self, user: str) -> dict[str, Any] | None:
        return self._open.get(user)

    def close(self, user: str) -> None:
        if self._open.pop(user, None) is not None:
            self.changes.bump()

    def views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        """The Web API method: opens `view` for the person whose action made the trigger_id."""
        found = self._triggers.pop(str(params.get("trigger_id") or ""), None)
        view = params.get("view")
        if found is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        user, made = found
        if time.monotonic() - made > TRIGGER_SECONDS:
            return {"ok": False, "error": "expired_trigger_id"}
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        opened = {**view, "id": f"V{secrets.token_hex(5).upper()}"}
        self._open[user] = opened
        self.changes.bump()
        return {"ok": True, "view": opened}

    def answered(self, user: str, answer: httpx.Response | None) -> None:
        """Apply the bot's answer to `user`'s submission the way Slack does."""
        current = self._open.get(user)
        if current is None:
            return
        body: Any = {}
        if answer is not None and answer.status_code == 200 and answer.content:
            with contextlib.suppress(ValueError):
                body = answer.json()
        if answer is None or answer.status_code != 200 or not isinstance(body, dict):
            self._open[user] = {**current, "errors": {"": NO_ANSWER}}
        elif body.get("response_action") in ("update", "push") and isinstance(body.get("view"), dict):
            self._open[user] = {**body["view"], "id": current["id"]}
        elif body.get("response_action") == "errors" and isinstance(body.get("errors"), dict):
            self._open[user] = {**current, "errors": body["errors"]}
        else:
            del self._open[user]  # an empty 200 (or "clear"): the modal closes
        self.changes.bump()
