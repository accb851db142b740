"""The demo's stand-ins on their own: Slack as slack_sdk sees it, Partoo as documented, the page's guard."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.changes import Changes
from bot.demo.controls import SETUP_ISSUES, SILENCED_BUSINESS, Knobs
from bot.demo.modals import NO_ANSWER, TRIGGER_SECONDS, Modals
from bot.demo.page import build_page_app, clicked_action
from bot.demo.partoo_sim import Conversation, NextRetries, SimulatedPartoo
from bot.demo.signed import SignedSlack, signature_headers
from bot.demo.slack_standin import SlackStandIn
from tests.processes import free_port
from tests.waiting import eventually

TOKEN = "xoxb-demo-test"
KEY = "demo-partoo-key"


@dataclass
class World:
    base_url: str
    standin: SlackStandIn
    partoo: SimulatedPartoo
    webhooks: list[dict[str, object]]
    signatures_valid: list[bool]
    slack_payloads: list[dict[str, Any]]
    report: RecordedReport


class RecordedReport:
    """The bot's "post the weekly report now", as the controls see it: here it only counts the asks."""

    def __init__(self) -> None:
        self.posted = 0

    async def post_now(self) -> str | None:
        self.posted += 1
        return None


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """The page's server on a known port, its Partoo and its Slack sending to a recorder standing in for the bot."""
    webhook_key = Ed25519PrivateKey.generate()
    webhooks: list[dict[str, object]] = []
    valid: list[bool] = []
    slack_payloads: list[dict[str, Any]] = []

    async def slack_event(request: web.Request) -> web.Response:
        form = await request.post()
        slack_payloads.append(json.loads(str(form["payload"])))
        return web.Response()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            webhook_key.public_key().verify(base64.b64decode(request.headers["X-Partoo-Signature-v1"]), body)
            valid.append(True)
        except Exception:
            valid.append(False)
        webhooks.append(json.loads(body))
        return web.json_response({"status": "stored"})

    bot = web.Application()
    bot.router.add_post("/partoo/webhook", receive)
    bot.router.add_post("/slack/events", slack_event)
    async with TestServer(bot, host="127.0.0.1") as bot_server:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        changes = Changes()
        standin = SlackStandIn(bot_token=TOKEN, base_url=base_url, changes=changes)
        partoo = SimulatedPartoo(
            api_key=KEY,
            webhook_key=webhook_key,
            base_url=base_url,
            bot_url=str(bot_server.make_url("")).rstrip("/"),
            changes=changes,
            report_delay=0.0,
        )
        slack = SignedSlack(str(bot_server.make_url("")), "unused")
        report = RecordedReport()
        knobs = Knobs(partoo, report=report)
        app = build_page_app(standin, knobs, slack, changes, modals=Modals(changes), hosts={f"127.0.0.1:{port}"})
        async with TestServer(app, host="127.0.0.1", port=port):
            yield World(base_url, standin, partoo, webhooks, valid, slack_payloads, report)
        await partoo.stop()
        await slack.aclose()


def test_requests_to_the_bot_are_signed_as_slack_signs_them() -> None:
    body = b"command=%2Fpartoo-retry&text=42"
    headers = signature_headers("the-secret", body)
    verifier = SignatureVerifier("the-secret")
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert not SignatureVerifier("another-secret").is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )


async def test_slack_standin_keeps_messages_as_slack_does(world: World) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=world.standin.api_url)
    root = await client.chat_postMessage(channel="CALERTS", text="root", blocks=[{"type": "divider"}])
    reply = await client.chat_postMessage(channel="CALERTS", text="first reply", thread_ts=root["ts"])
    # A reply to a reply is filed under the thread's root.
    await client.chat_postMessage(channel="CALERTS", text="second reply", thread_ts=reply["ts"])
    await client.chat_update(channel="CALERTS", ts=root["ts"], text="root, updated")
    world.standin.ephemeral("CALERTS", "UCAROL", "only for Carol")

    [shown] = world.standin.snapshot("UALICE", "CALERTS")
    assert shown["text"] == "root, updated"
    assert shown["edited"] is True
    assert shown["blocks"] == [{"type": "divider"}]  # left out of the update, so kept
    assert [r["text"] for r in shown["replies"]] == ["first reply", "second reply"]
    assert [m["text"] for m in world.standin.snapshot("UCAROL", "CALERTS")] == ["root, updated", "only for Carol"]

    permalink = await client.chat_getPermalink(channel="CALERTS", message_ts=root["ts"])
    assert permalink["permalink"] == f"{world.base_url}/#CALERTS/{root['ts']}"

    with pytest.raises(SlackApiError) as refused:
        await AsyncWebClient(token="xoxb-real", base_url=world.standin.api_url).chat_postMessage(
            channel="CALERTS", text="x"
        )
    assert refused.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as unknown:
        await client.chat_postMessage(channel="CNOWHERE", text="x")
    assert unknown.value.response["error"] == "channel_not_found"


async def test_response_urls_answer_like_slack_and_take_five_posts(world: World) -> None:
    clicked = world.standin.post("COPS", "UBOT", "with a button")
    url = world.standin.response_url("UBOB", "COPS", clicked.ts)
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, json={"text": "just for Bob"})).status_code == 200
        assert (await http.post(url, json={"text": "replaced", "replace_original": True})).status_code == 200
        assert (await http.post(url, json={"text": "for all", "response_type": "in_channel"})).status_code == 200
        for _ in range(2):
            assert (await http.post(url, json={"text": "more"})).status_code == 200
        spent = await http.post(url, json={"text": "sixth"})
    assert (spent.status_code, spent.text) == (404, "used_url")
    assert [m["text"] for m in world.standin.snapshot("UALICE", "COPS")] == ["replaced", "for all"]
    assert [m["text"] for m in world.standin.snapshot("UBOB", "COPS")] == [
        "replaced",
        "just for Bob",
        "for all",
        "more",
        "more",
    ]


async def test_simulated_partoo_answers_as_partoo_documents(world: World) -> None:
    api = httpx.AsyncClient(base_url=world.partoo.api_url, headers={"x-APIKey": KEY})
    async with api:
        assert (await api.post("/messages/1/retry", headers={"x-APIKey": "wrong"})).status_code == 401
        assert (await api.post("/messages/1/retry")).status_code == 404

        failed = world.partoo.fail_one()
        await eventually(lambda: len(world.webhooks) == 1, timeout=10)
        assert world.webhooks[0]["payload"]["message"]["status"] == "Failed"  # type: ignore[index]

        accepted = await api.post(f"/messages/{failed.id}/retry")
        assert (accepted.status_code, accepted.json()) == (200, {"status": "success"})
        # Not in the Failed state any more: refused, as Partoo refuses it.
        assert (await api.post(f"/messages/{failed.id}/retry")).status_code == 400
        await eventually(lambda: len(world.webhooks) == 2, timeout=10)
        assert world.webhooks[1]["payload"]["message"]["status"] == "Success"  # type: ignore[index]
        assert world.signatures_valid == [True, True]

        world.partoo.set_next_retries(NextRetries.FAIL_AGAIN)
        again = world.partoo.fail_one()
        await eventually(lambda: len(world.webhooks) == 3, timeout=10)
        assert (await api.post(f"/messages/{again.id}/retry")).status_code == 200
        await eventually(lambda: len(world.webhooks) == 4, timeout=10)
        assert world.webhooks[3]["payload"]["message"]["status"] == "Failed"  # type: ignore[index]

        conversation = await api.get(f"/conversations/{again.conversation_id}")
        assert (conversation.json()["status"], conversation.json()["issues"]) == ("Open", [])
        in_closed = world.partoo.fail_one(Conversation("Closed", ["facebook_no_page_linked"]))
        closed = (await api.get(f"/conversations/{in_closed.conversation_id}")).json()
        assert (closed["status"], closed["is_expired"]) == ("Closed", True)
        assert closed["issues"] == ["facebook_no_page_linked"]
        assert (await api.get("/conversations/1")).status_code == 404

        world.partoo.rate_limit(30)
        limited = await api.post(f"/messages/{again.id}/retry")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 5


async def test_scenarios_closed_and_setup_problem_answer_the_bots_check_and_retries_fail_again(world: World) -> None:
    api = httpx.AsyncClient(base_url=world.partoo.api_url, headers={"x-APIKey": KEY})
    async with api, httpx.AsyncClient(base_url=world.base_url) as page:
        assert (await page.post("/demo/partoo", json={"control": "closed"})).status_code == 200
        assert (await page.post("/demo/partoo", json={"control": "setup_problem"})).status_code == 200
        await eventually(lambda: len(world.webhooks) == 2, timeout=10)
        closed, broken = world.partoo.messages.values()
        assert (closed.partner, broken.partner) == ("Whatsapp", "Facebook")

        answer = (await api.get(f"/conversations/{closed.conversation_id}")).json()
        assert (answer["status"], answer["is_expired"], answer["issues"]) == ("Closed", True, [])
        answer = (await api.get(f"/conversations/{broken.conversation_id}")).json()
        assert (answer["status"], answer["issues"]) == ("Open", ["facebook_no_page_linked", SETUP_ISSUES[1]])
        # Setup issues are the channel's: another conversation of that business's Facebook has them too.
        neighbour = world.partoo.fail_one(partner="Facebook")
        for _ in range(200):  # six businesses: one of these is on the broken channel, all but surely
            if neighbour.business_id == broken.business_id:
                break
            neighbour = world.partoo.fail_one(partner="Facebook")
        answer = (await api.get(f"/conversations/{neighbour.conversation_id}")).json()
        assert answer["issues"] == list(SETUP_ISSUES)
        assert world.partoo.status()["conversation_checks"] == 3
        assert world.partoo.status()["retry_calls"] == 0

        # Partoo accepts a retry nobody can receive ("Retry anyway"); it fails again though retries deliver.
        assert world.partoo.next_retries is NextRetries.DELIVERED
        assert (await api.post(f"/messages/{closed.id}/retry")).status_code == 200

        def reports_of_closed() -> list[object]:
            messages = [webhook["payload"]["message"] for webhook in world.webhooks]  # type: ignore[index]
            return [message["status"] for message in messages if message["id"] == closed.id]

        await eventually(lambda: len(reports_of_closed()) == 2, timeout=10)
        assert reports_of_closed() == ["Failed", "Failed"]


async def test_page_answers_only_its_own_host_and_json_actions(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.base_url) as http:
        assert (await http.get("/")).status_code == 200
        rebound = await http.get("/", headers={"Host": "attacker.example:80"})
        assert rebound.status_code == 421
        form = await http.post("/demo/partoo", data={"control": "fail"})
        assert form.status_code == 415
        assert (await http.post("/demo/partoo", json={"control": "nonsense"})).status_code == 400
        assert (await http.post("/demo/partoo", json={"control": "fail"})).status_code == 200
    await eventually(lambda: len(world.webhooks) == 1, timeout=10)


async def test_the_controls_fail_one_business_and_ask_the_bot_for_its_report(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.base_url) as http:
        for _ in range(3):
            assert (await http.post("/demo/partoo", json={"control": "business"})).status_code == 200
        # Answered once the bot's operation is done, not before.
        assert (await http.post("/demo/partoo", json={"control": "report"})).status_code == 200
        assert world.report.posted == 1
    assert {message.business_id for message in world.partoo.messages.values()} == {SILENCED_BUSINESS}
    await eventually(lambda: len(world.webhooks) == 3, timeout=10)


ALERT_BLOCKS: list[dict[str, Any]] = [
    {
        "type": "section",
        "block_id": "head",
        "text": {"type": "mrkdwn", "text": "failed"},
        "accessory": {
            "type": "overflow",
            "action_id": "partoo_retry.silence",
            "options": [{"text": {"type": "plain_text", "text": "Silence this business…"}, "value": "business 7"}],
        },
    },
    {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": "retry", "value": "7", "text": {"type": "plain_text", "text": "Retry"}},
            {"type": "button", "action_id": "no_value", "text": {"type": "plain_text", "text": "Cancel"}},
        ],
    },
]


def test_a_click_sends_what_the_message_holds_never_what_the_page_says() -> None:
    # The page names the element; its value and text come from the message as the bot posted it.
    assert clicked_action(ALERT_BLOCKS, {"action_id": "retry", "value": "9999"}) == {
        "type": "button",
        "action_id": "retry",
        "block_id": "",
        "value": "7",
        "text": {"type": "plain_text", "text": "Retry"},
    }
    assert "value" not in (clicked_action(ALERT_BLOCKS, {"action_id": "no_value"}) or {})
    chosen = clicked_action(ALERT_BLOCKS, {"action_id": "partoo_retry.silence", "selected_option": "business 7"})
    assert chosen == {
        "type": "overflow",
        "action_id": "partoo_retry.silence",
        "block_id": "head",
        "selected_option": ALERT_BLOCKS[0]["accessory"]["options"][0],
    }
    # An option the menu does not offer, or an element the message does not have: no click.
    assert clicked_action(ALERT_BLOCKS, {"action_id": "partoo_retry.silence", "selected_option": "business 8"}) is None
    assert clicked_action(ALERT_BLOCKS, {"action_id": "delete_everything"}) is None


async def test_a_button_of_an_ephemeral_message_works_for_whoever_sees_it_as_in_slack(world: World) -> None:
    plan = world.standin.ephemeral("COPS", "UALICE", "a plan", ALERT_BLOCKS[1:])
    click = {"channel": "COPS", "ts": plan.ts, "action": {"action_id": "retry"}}
    async with httpx.AsyncClient(base_url=world.base_url) as http:
        assert (await http.post("/demo/click", json={**click, "user": "UBOB"})).status_code == 400
        assert (await http.post("/demo/click", json={**click, "user": "UALICE"})).status_code == 200
    [payload] = world.slack_payloads
    # Slack marks the container ephemeral and sends no `message`; the trigger_id may open a modal.
    assert payload["container"] == {
        "type": "message",
        "message_ts": plan.ts,
        "channel_id": "COPS",
        "is_ephemeral": True,
    }
    assert "message" not in payload
    assert payload["actions"][0]["value"] == "7"
    assert payload["trigger_id"]


def test_the_demo_offers_the_shortcut_the_bot_and_the_manifest_name() -> None:
    from bot.demo import workspace
    from bot.retries.shortcut_messages import SHORTCUT_CALLBACK_ID

    assert workspace.SHORTCUT_CALLBACK_ID == SHORTCUT_CALLBACK_ID
    manifest = (Path(__file__).resolve().parent.parent / "app_manifest.yaml").read_text()
    assert f"name: {workspace.SHORTCUT_NAME}" in manifest
    assert str(workspace.CUSTOMER_MESSAGE_ID) in workspace.CUSTOMER_MESSAGE


def test_a_trigger_id_opens_one_modal_for_its_person_once_and_only_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    modals = Modals(Changes())
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Retry"}, "blocks": []}
    trigger = modals.trigger("UALICE")

    opened = modals.views_open({"trigger_id": trigger, "view": view})
    assert opened["ok"] is True
    assert modals.shown("UALICE") == opened["view"]
    assert modals.shown("UBOB") is None
    assert modals.views_open({"trigger_id": trigger, "view": view}) == {"ok": False, "error": "invalid_trigger_id"}

    late = modals.trigger("UBOB")
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + TRIGGER_SECONDS + 1)
    assert modals.views_open({"trigger_id": late, "view": view}) == {"ok": False, "error": "expired_trigger_id"}


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        (httpx.Response(200), None),
        (httpx.Response(200, json={"response_action": "errors", "errors": {"ids": "Select one"}}), "Select one"),
        (httpx.Response(200, json={"response_action": "update", "view": {"type": "modal", "blocks": []}}), "update"),
        (None, NO_ANSWER),
        (httpx.Response(500), NO_ANSWER),
    ],
)
def test_the_bots_answer_to_a_submission_closes_updates_or_marks_the_modal(
    answer: httpx.Response | None, shown: str | None
) -> None:
    modals = Modals(Changes())
    modals.views_open({"trigger_id": modals.trigger("UALICE"), "view": {"type": "modal", "title": {}, "blocks": [1]}})
    modals.answered("UALICE", answer)
    after = modals.shown("UALICE")
    if shown is None:
        assert after is None
    elif shown == "update":
        assert after is not None and after["blocks"] == [] and after["id"].startswith("V")
    else:
        assert after is not None and shown in after["errors"].values()
