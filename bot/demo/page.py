"""The demo's web server: the page, the JSON it reads and posts, and the Slack and Partoo stand-ins beside it.

What a visitor does on the page becomes what Slack would send the bot (a signed slash command, a signed
click, a message shortcut and its modal (shortcuts.py), an App Home event), so the bot answers exactly as it
would in a workspace. The page follows changes through server-sent events and reads the whole state again after
each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from bot.demo import workspace
from bot.demo.changes import Changes
from bot.demo.controls import CONTROLS, Knobs
from bot.demo.modals import Modals
from bot.demo.partoo_sim import SimulatedPartoo
from bot.demo.shortcuts import SHORTCUTS, ShortcutRoutes
from bot.demo.signed import SignedSlack
from bot.demo.slack_standin import SlackStandIn
from bot.demo.workspace import BOT_NAME, BOT_USER_ID, CHANNELS, COMMAND, CUSTOMER, PEOPLE, Channel, Person

STATIC = Path(__file__).parent / "static"
# Server-sent events: during a flood, at most one change event per EVENTS_THROTTLE_SECONDS (the page reads
# the whole state after each); when quiet, a comment now and then so that no proxy closes the connection.
EVENTS_THROTTLE_SECONDS = 0.25
EVENTS_HEARTBEAT_SECONDS = 15.0
MAX_TEXT = 4000

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_page_app(
    standin: SlackStandIn,
    knobs: Knobs,
    slack: SignedSlack,
    changes: Changes,
    *,
    modals: Modals,
    hosts: set[str],
) -> web.Application:
    """Everything the demo serves on its one port; requests must name one of `hosts` (127.0.0.1:port)."""
    page = _Page(standin, knobs, slack, changes, modals)
    app = web.Application(middlewares=[_local_only(hosts)])
    app.add_routes(
        [
            web.get("/", page.index),
            web.get("/demo/state", page.state),
            web.get("/demo/events", page.events),
            web.post("/demo/message", page.message),
            web.post("/demo/click", page.click),
            web.post("/demo/home", page.home),
            web.post("/demo/partoo", page.control),
            *ShortcutRoutes(standin, slack, modals).routes(),
            web.static("/static", STATIC),
            *standin.routes(),
            *knobs.partoo.routes(),
        ]
    )
    return app


def _local_only(hosts: set[str]) -> Middleware:
    """Refuse requests for another host name (DNS rebinding) and page actions that are not JSON (CSRF).

    A cross-site form can post text/plain or form data without asking; JSON needs a CORS preflight, which
    this server never grants.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.host not in hosts:
            return web.Response(status=421, text="the demo answers on 127.0.0.1 only")
        page_action = request.path.startswith("/demo/") and request.method == "POST"
        if page_action and request.content_type != "application/json":
            return web.Response(status=415, text="JSON only")
        return await handler(request)

    return middleware


class _Page:
    def __init__(
        self, standin: SlackStandIn, knobs: Knobs, slack: SignedSlack, changes: Changes, modals: Modals
    ) -> None:
        self.modals = modals
        self.standin = standin
        self.knobs = knobs
        self.partoo: SimulatedPartoo = knobs.partoo
        self.slack = slack
        self.changes = changes

    async def index(self, request: web.Request) -> web.StreamResponse:
        self.standin.forget_ephemeral()
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def state(self, request: web.Request) -> web.Response:
        """Everything the page shows, as `user` sees it."""
        person = workspace.person(request.query.get("user", "")) or PEOPLE[0]
        return web.json_response(
            {
                "version": self.changes.version,
                "bot": {"id": BOT_USER_ID, "name": BOT_NAME},
                "command": COMMAND,
                "people": [{"id": p.id, "name": p.name, "title": p.title, "may_retry": p.may_retry} for p in PEOPLE],
                # Others who write in the channels; nobody acts as them.
                "guests": [{"id": CUSTOMER.id, "name": CUSTOMER.name, "title": CUSTOMER.title}],
                "shortcuts": SHORTCUTS,
                "modal": self.modals.shown(person.id),
                "channels": [
                    {
                        "id": c.id,
                        "name": c.name,
                        "purpose": c.purpose,
                        "messages": self.standin.snapshot(person.id, c.id),
                    }
                    for c in CHANNELS
                ],
                "home": self.standin.view(person.id),
                "partoo": self.partoo.status(),
                "controls": [{"id": c.id, "group": c.group, "label": c.label, "help": c.help} for c in CONTROLS],
            },
            headers={"Cache-Control": "no-store"},
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `data: <version>` after changes, throttled during floods."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        seen = -1
        with contextlib.suppress(ConnectionResetError):
            while not self.changes.closed:
                version = await self.changes.wait(seen, EVENTS_HEARTBEAT_SECONDS)
                if version == seen:
                    await response.write(b": still here\n\n")
                    continue
                seen = version
                await response.write(f"data: {version}\n\n".encode())
                await asyncio.sleep(EVENTS_THROTTLE_SECONDS)
        return response

    async def message(self, request: web.Request) -> web.Response:
        """The composer: a slash command goes to the bot, signed; other text is just posted."""
        body = await _body(request)
        person, channel = _who_where(body)
        text = str(body.get("text") or "").strip()[:MAX_TEXT]
        if person is None or channel is None or not text:
            return _bad("user, channel and text are required")
        if not text.startswith("/"):
            self.standin.post(channel.id, person.id, text)
            return _ok()
        command, _, arguments = text.partition(" ")
        # Slack shows the person what they ran; nobody else sees a slash command.
        self.standin.ephemeral(channel.id, person.id, text, author=person.id)
        if command != COMMAND:
            self.standin.ephemeral(channel.id, person.id, f"{command} is not a valid command. Try {COMMAND} help.")
            return _ok()
        response_url = self.standin.response_url(person.id, channel.id)
        answer = await self.slack.slash_command(person, channel, command, arguments.strip(), response_url)
        self.standin.record_answer(person.id, channel.id, command, answer)
        return _ok()

    async def click(self, request: web.Request) -> web.Response:
        """A button click or a menu choice, sent as Slack sends it, with the message as it stands now.

        What is sent is read from the stored message (the element's value, or the option chosen among its
        own), so a click can only be on what the bot posted, as in Slack. Buttons of an ephemeral message work
        for the person who sees it; every click carries a trigger_id that may open a modal (modals.py).
        """
        body = await _body(request)
        person, channel = _who_where(body)
        wanted = body.get("action")
        message = self.standin.message(channel.id, str(body.get("ts"))) if channel is not None else None
        if person is None or channel is None or not isinstance(wanted, dict):
            return _bad("user, channel, ts and action are required")
        if message is None or message.visible_to not in (None, person.id):
            return _bad("no such message")
        clicked = clicked_action(message.blocks or [], wanted)
        if clicked is None:
            return _bad("no such button or option in this message")
        response_url = self.standin.response_url(person.id, channel.id, message.ts)
        answer = await self.slack.block_actions(
            person,
            channel,
            message.as_payload(),
            clicked,
            response_url,
            trigger_id=self.modals.trigger(person.id),
            ephemeral=message.visible_to is not None,
        )
        if answer is None or answer.status_code != 200:
            self.standin.ephemeral(channel.id, person.id, f":warning: {BOT_NAME} did not respond to the click.")
        return _ok()

    async def home(self, request: web.Request) -> web.Response:
        """Opening the App Home tab: Slack tells the bot, which publishes the view."""
        person = workspace.person(str((await _body(request)).get("user")))
        if person is None:
            return _bad("user is required")
        answer = await self.slack.app_home_opened(person)
        return _ok() if answer is not None and answer.status_code == 200 else _bad("the bot did not answer")

    async def control(self, request: web.Request) -> web.Response:
        wanted = str((await _body(request)).get("control"))
        control = next((c for c in CONTROLS if c.id == wanted), None)
        if control is None:
            return _bad("no such control")
        done = control.act(self.knobs)
        if inspect.isawaitable(done):
            await done  # the bot's own work (posting the report): answered once it is done, or failed
        return _ok()


def clicked_action(blocks: list[dict[str, Any]], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The `actions` entry Slack sends for a click on the element `wanted` names (its action_id, and the value
    of the option chosen in a menu) among `blocks`, or None when the message has no such element or option."""
    action_id = str(wanted.get("action_id") or "")
    for block in blocks:
        elements = block.get("elements") if block.get("type") == "actions" else [block.get("accessory")]
        for element in elements if isinstance(elements, list) else []:
            if not isinstance(element, dict) or element.get("action_id") != action_id:
                continue
            action: dict[str, Any] = {
                "type": element.get("type"),
                "action_id": action_id,
                "block_id": str(block.get("block_id") or ""),
            }
            if element.get("type") == "button":
                return action | {"text": element.get("text")} | _only(element, "value")
            if element.get("type") == "overflow":
                chosen = next(
                    (o for o in element.get("options") or [] if o.get("value") == wanted.get("selected_option")),
                    None,
                )
                return action | {"selected_option": chosen} if chosen is not None else None
    return None


def _only(element: dict[str, Any], key: str) -> dict[str, Any]:
    """Slack leaves out a field the element does not have (a button without a value has none in the payload)."""
    return {key: element[key]} if key in element else {}


async def _body(request: web.Request) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        body = await request.json()
        if isinstance(body, dict):
            return body
    return {}


def _who_where(body: dict[str, Any]) -> tuple[Person | None, Channel | None]:
    return workspace.person(str(body.get("user"))), workspace.channel(str(body.get("channel")))


def _ok() -> web.Response:
    return web.json_response({"ok": True})


def _bad(reason: str) -> web.Response:
    return web.json_response({"ok": False, "error": reason}, status=400)
