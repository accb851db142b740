"""The page's side of the message shortcut: a message's "More actions" menu and the modal the bot opens.

Choosing the shortcut sends the bot a signed `message_action`, with a trigger_id that lets it call `views.open`
(bot/demo/modals.py); submitting the modal sends a signed `view_submission`, and the bot's answer closes,
updates or marks the modal, as in Slack.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.demo import workspace
from bot.demo.modals import Modals
from bot.demo.signed import SignedSlack
from bot.demo.slack_standin import SlackStandIn
from bot.demo.workspace import BOT_NAME, SHORTCUT_CALLBACK_ID, SHORTCUT_NAME

SHORTCUTS = [{"callback_id": SHORTCUT_CALLBACK_ID, "name": SHORTCUT_NAME}]


class ShortcutRoutes:
    def __init__(self, standin: SlackStandIn, slack: SignedSlack, modals: Modals) -> None:
        self.standin = standin
        self.slack = slack
        self.modals = modals

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/demo/shortcut", self.shortcut), web.post("/demo/modal", self.modal)]

    async def shortcut(self, request: web.Request) -> web.Response:
        """A shortcut chosen in a message's menu, sent as Slack sends it, with the message as it stands now."""
        body = await _body(request)
        person, channel = workspace.person(str(body.get("user"))), workspace.channel(str(body.get("channel")))
        if person is None or channel is None or body.get("callback_id") != SHORTCUT_CALLBACK_ID:
            return _answer(400, "user, channel, ts and a known callback_id are required")
        message = self.standin.message(channel.id, str(body.get("ts")))
        if message is None or message.visible_to is not None:
            return _answer(400, "no such message")  # Slack offers no shortcut on an ephemeral message
        trigger = self.modals.trigger(person.id)
        url = self.standin.response_url(person.id, channel.id)
        answer = await self.slack.message_action(
            person, channel, message.as_payload(), SHORTCUT_CALLBACK_ID, trigger, url
        )
        if answer is None or answer.status_code != 200:
            self.standin.ephemeral(channel.id, person.id, f":warning: {BOT_NAME} did not respond to the shortcut.")
        return _answer(200)

    async def modal(self, request: web.Request) -> web.Response:
        """The modal's buttons: `close`, or `submit` with the values chosen, shaped as Slack's view state."""
        body = await _body(request)
        person = workspace.person(str(body.get("user")))
        view = self.modals.shown(person.id) if person is not None else None
        if person is None or view is None:
            return _answer(400, "no modal is open for this user")
        if body.get("action") != "submit":
            self.modals.close(person.id)
            return _answer(200)
        values = body.get("values") if isinstance(body.get("values"), dict) else {}
        submitted = {key: value for key, value in view.items() if key != "errors"} | {"state": {"values": values}}
        answer = await self.slack.view_submission(person, submitted, self.modals.trigger(person.id))
        self.modals.answered(person.id, answer)
        return _answer(200)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _answer(status: int, error: str | None = None) -> web.Response:
    return web.json_response({"ok": error is None} | ({"error": error} if error else {}), status=status)
