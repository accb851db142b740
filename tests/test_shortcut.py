"""The "Retry Partoo messages" message shortcut, through the running app: signed `message_action` and
`view_submission` payloads in, a modal (views.open) and answers in the message's thread out."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.retries.shortcut_messages import (
    ANYWAY_ACTION_ID,
    ANYWAY_BLOCK_ID,
    BLOCK_ID_PREFIX,
    CHECKBOXES_ACTION_ID,
    MODAL_CALLBACK_ID,
    SHORTCUT_CALLBACK_ID,
)
from tests.fakes import FakePartoo, FakeSlack
from tests.fakes.partoo import CLOSED
from tests.harness import (
    ALERT_CHANNEL,
    CHANNEL,
    SIGNING_SECRET,
    USER,
    RunningBot,
    bot_environment,
    message_text,
    running_bot,
)
from tests.signing import PartooSigner, message_updated_event, slack_signature_headers
from tests.waiting import eventually, eventually_async

COLLEAGUE_TS = "1732790000.000200"
PHONE = "+33 6 12 34 56 78"


# -- payloads, as Slack posts them ----------------------------------------------------------------------


def _signed(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, slack_signature_headers(SIGNING_SECRET, body)


def shortcut_payload(
    bot: RunningBot, message: dict[str, Any], trigger_id: str, *, user_id: str = USER, channel_id: str = CHANNEL
) -> dict[str, Any]:
    """A message shortcut used on `message`, as Slack sends it (`type: message_action`)."""
    return {
        "type": "message_action",
        "callback_id": SHORTCUT_CALLBACK_ID,
        "trigger_id": trigger_id,
        "response_url": bot.slack.response_url("shortcut"),
        "team": {"id": "T0001", "domain": "fake"},
        "user": {"id": user_id, "name": "alice", "team_id": "T0001"},
        "channel": {"id": channel_id, "name": "ops"},
        "message": message,
        "message_ts": message["ts"],
        "action_ts": f"{time.time():.6f}",
        "token": "verification-token",
        "api_app_id": "A0001",
        "is_enterprise_install": False,
    }


async def use_shortcut(
    bot: RunningBot,
    message: dict[str, Any],
    *,
    user_id: str = USER,
    channel_id: str = CHANNEL,
    response_url: str | None = None,
) -> dict[str, Any]:
    """Use the shortcut on `message`; return the view the bot opened."""
    opened = len(bot.slack.calls_to("views.open"))
    trigger_id = f"trigger-{time.monotonic_ns()}"
    payload = shortcut_payload(bot, message, trigger_id, user_id=user_id, channel_id=channel_id)
    if response_url is not None:
        payload["response_url"] = response_url
    body, headers = _signed(payload)
    response = await bot.http.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert not response.content  # a plain ack: the modal opens through views.open
    calls = await eventually(lambda: bot.slack.calls_to("views.open")[opened:])
    assert calls[0].params["trigger_id"] == trigger_id
    view: dict[str, Any] = calls[0].params["view"]
    return view


async def submit(
    bot: RunningBot,
    view: dict[str, Any],
    selected: list[str] | None = None,
    *,
    user_id: str = USER,
    anyway: bool = False,
) -> httpx.Response:
    """Submit the modal with `selected` ids ticked (default: what the bot pre-selected), and "anyway" if asked."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] == "input" and block["block_id"] == ANYWAY_BLOCK_ID:
            ticked_anyway = [option for option in block["element"]["options"] if anyway]
            values[ANYWAY_BLOCK_ID] = {ANYWAY_ACTION_ID: {"type": "checkboxes", "selected_options": ticked_anyway}}
            continue
        if block["type"] != "input":
            continue
        element = block["element"]
        offered = element["options"]
        if selected is None:
            ticked = element.get("initial_options", [])
        else:
            ticked = [option for option in offered if option["value"] in selected]
        values[block["block_id"]] = {
            CHECKBOXES_ACTION_ID: {"type": "checkboxes", "selected_options": ticked},
        }
    body, headers = _signed(
        {
            "type": "view_submission",
            "team": {"id": "T0001", "domain": "fake"},
            "user": {"id": user_id, "name": "alice", "team_id": "T0001"},
            "api_app_id": "A0001",
            "token": "verification-token",
            "trigger_id": "trigger-submit",
            "view": {
                "id": "VMODAL",
                "team_id": "T0001",
                "type": "modal",
                "callback_id": view["callback_id"],
                "private_metadata": view["private_metadata"],
                "blocks": view["blocks"],
                "state": {"values": values},
                "hash": "1",
                "app_id": "A0001",
            },
            "response_urls": [],
            "is_enterprise_install": False,
        }
    )
    return await bot.http.post("/slack/events", content=body, headers=headers)


def colleague_message(text: str, ts: str = COLLEAGUE_TS, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "user": "U999", "ts": ts, "text": text, "team": "T0001", **extra}


def _id_groups(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [block for block in view["blocks"] if block["type"] == "input" and block["block_id"] != ANYWAY_BLOCK_ID]


def options(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [option for block in _id_groups(view) for option in block["element"]["options"]]


def preselected(view: dict[str, Any]) -> list[str]:
    return [option["value"] for block in _id_groups(view) for option in block["element"].get("initial_options", [])]


def acked_view(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["response_action"] == "update", body
    return body


# -- the modal --------------------------------------------------------------------------------------------


async def test_the_modal_lists_the_ids_with_their_state_and_never_personal_data(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567, messaging_partner="Whatsapp"), signer)
    await eventually(lambda: slack.root_messages(ALERT_CHANNEL))
    text = f"message 4567 failed and #4568 too, on 2026-11-28 at 14:02; the customer is on {PHONE}"

    view = await use_shortcut(bot, colleague_message(text))

    assert view["callback_id"] == MODAL_CALLBACK_ID
    assert [option["value"] for option in options(view)] == ["4567", "4568"]
    assert preselected(view) == ["4567", "4568"]
    first, second = (option["text"]["text"] + " " + option["description"]["text"] for option in options(view))
    assert "failed" in first and "Whatsapp" in first
    assert "no failure reported" in second
    shown = json.dumps(view)
    for personal in ("612345678", "12 34 56 78", "2026", "14:02 on"):
        assert personal not in shown
    assert json.loads(view["private_metadata"])["t"] == COLLEAGUE_TS


async def test_a_message_without_ids_gets_a_modal_that_says_so(bot: RunningBot) -> None:
    view = await use_shortcut(bot, colleague_message(f"can someone call {PHONE} about order 123456?"))

    assert "submit" not in view
    assert "No Partoo message id found" in json.dumps(view)


async def test_more_than_ten_ids_are_split_into_groups_and_the_list_is_bounded(bot: RunningBot) -> None:
    ids = [100_000 + n for n in range(40)]
    view = await use_shortcut(bot, colleague_message("messages " + ", ".join(map(str, ids))))

    groups = _id_groups(view)
    assert [len(block["element"]["options"]) for block in groups] == [10, 10, 5]
    assert [option["value"] for option in options(view)] == [str(n) for n in ids[:25]]
    assert "first 25 of 40" in json.dumps(view)


# -- submitting -------------------------------------------------------------------------------------------


async def test_submitting_retries_the_selected_ids_once_and_answers_in_the_message_thread(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    view = await use_shortcut(bot, colleague_message("messages 4567, 4568 and 4569 bounced"))

    response = await submit(bot, view, ["4567", "4569"])

    assert response.status_code == 200 and not response.content  # the modal closes
    await eventually(lambda: partoo.count(4567) == 1 and partoo.count(4569) == 1, timeout=10)
    root = await eventually(lambda: slack.thread(CHANNEL, COLLEAGUE_TS))
    await eventually(lambda: "2/2 done" in message_text(slack.message(CHANNEL, root[0].ts)), timeout=10)
    assert partoo.count(4568) == 0
    assert f"<@{USER}> asked to retry 2 Partoo messages" in message_text(root[0])
    assert slack.root_messages(CHANNEL) == []  # everything went into the thread


async def test_a_message_inside_a_thread_gets_its_answers_in_that_thread(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    reply = colleague_message("msg 4567 still not delivered", ts="1732790000.000300", thread_ts=COLLEAGUE_TS)
    view = await use_shortcut(bot, reply)

    await submit(bot, view)

    await eventually(lambda: len(slack.messages(CHANNEL)) == 2, timeout=10)
    assert partoo.count(4567) == 1
    assert {message.thread_ts for message in slack.messages(CHANNEL)} == {COLLEAGUE_TS}
    assert "Partoo accepted the retry" in " ".join(message_text(m) for m in slack.messages(CHANNEL))


async def test_on_the_bots_own_alert_it_retries_that_alert_and_answers_in_its_thread(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567, business_id=42, conversation_id=991), signer)
    (alert,) = await eventually(lambda: slack.root_messages(ALERT_CHANNEL))
    await bot.alert_recorded(4567, alert.ts)

    view = await use_shortcut(bot, alert.as_payload(), channel_id=ALERT_CHANNEL)

    assert [option["value"] for option in options(view)] == ["4567"]  # not 42 or 991 from the alert's text
    await submit(bot, view)
    replies = await eventually(lambda: slack.thread(ALERT_CHANNEL, alert.ts), timeout=10)
    assert f"Retried by <@{USER}>" in message_text(replies[0])
    assert partoo.count(4567) == 1
    assert len(slack.root_messages(ALERT_CHANNEL)) == 1


async def test_an_alerted_id_asked_from_a_colleagues_message_is_answered_there_and_shown_on_the_alert(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567), signer)
    (alert,) = await eventually(lambda: slack.root_messages(ALERT_CHANNEL))
    await bot.alert_recorded(4567, alert.ts)
    view = await use_shortcut(bot, colleague_message("message 4567 failed again?"))

    await submit(bot, view)

    await eventually(lambda: len(slack.thread(CHANNEL, COLLEAGUE_TS)) == 2, timeout=10)
    replies = slack.thread(CHANNEL, COLLEAGUE_TS)
    assert "Partoo accepted the retry" in message_text(replies[1])
    assert slack.thread(ALERT_CHANNEL, alert.ts) == []
    await eventually(lambda: f"<@{USER}>" in message_text(slack.message(ALERT_CHANNEL, alert.ts)))
    assert partoo.count(4567) == 1


async def test_on_a_digest_it_lists_the_failures_the_digest_groups(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    await bot.bot.alerter.stop()  # let the failures pile up, as in a flood
    for message_id in (5001, 5002, 5003):
        await bot.webhook(message_updated_event(message_id, conversation_id=123456), signer)
    await bot.bot.alerter.tick()
    (digest,) = await eventually(lambda: slack.root_messages(ALERT_CHANNEL))

    async def recorded() -> bool:
        alert = await bot.bot.alerts.alert_for(5001)
        stored = await bot.bot.alerts.digest(alert.digest_id) if alert and alert.digest_id else None
        return stored is not None and stored.ts == digest.ts

    await eventually_async(recorded)

    view = await use_shortcut(bot, digest.as_payload(), channel_id=ALERT_CHANNEL)

    assert [option["value"] for option in options(view)] == ["5001", "5002", "5003"]


async def test_a_reply_in_an_alerts_thread_without_ids_is_about_that_alert(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    await bot.webhook(message_updated_event(4567), signer)
    (alert,) = await eventually(lambda: slack.root_messages(ALERT_CHANNEL))
    await bot.alert_recorded(4567, alert.ts)
    reply = colleague_message("can someone retry this one?", ts="1732790000.000900", thread_ts=alert.ts)

    view = await use_shortcut(bot, reply, channel_id=ALERT_CHANNEL)

    assert [option["value"] for option in options(view)] == ["4567"]
    assert json.loads(view["private_metadata"])["t"] == alert.ts


async def test_ids_already_being_retried_are_not_selected_and_not_asked_again(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    partoo.latency = 3.0  # keeps the command's retry running while the shortcut is used
    await bot.command("4567")  # queued before Slack gets its answer

    view = await use_shortcut(bot, colleague_message("message 4567 and message 4568"))
    assert preselected(view) == ["4568"]
    assert "being retried" in options(view)[0]["text"]["text"]

    answer = acked_view(await submit(bot, view, ["4567", "4568"]))

    text = json.dumps(answer["view"])
    assert "already being retried" in text and "4568" in text
    await eventually(lambda: partoo.count(4568) == 1, timeout=10)
    assert len(await bot.bot.retry_log.history(4567)) == 1


async def test_anyway_ticked_skips_only_the_conversation_check(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str], signer: PartooSigner
) -> None:
    async with running_bot(slack, environment) as bot:
        partoo.conversation(991, CLOSED)
        assert (await bot.webhook(message_updated_event(4567, conversation_id=991), signer)).status_code == 200
        assert (await bot.webhook(message_updated_event(4568, conversation_id=992), signer)).status_code == 200
        partoo.conversation(992, CLOSED)
        await eventually(lambda: len(slack.root_messages(ALERT_CHANNEL)) == 2, timeout=10)

        # Not ticked: the worker's check finds the conversation closed and sends nothing.
        view = await use_shortcut(bot, colleague_message("message 4568"))
        await submit(bot, view, ["4568"])
        await eventually(lambda: any("Not sent" in message_text(m) for m in slack.thread(CHANNEL, COLLEAGUE_TS)))
        assert partoo.count(4568) == 0

        # Ticked: sent although the check says it cannot work.
        view = await use_shortcut(bot, colleague_message("message 4567", ts="1732790000.000400"))
        assert (await submit(bot, view, ["4567"], anyway=True)).status_code == 200
        await eventually(lambda: partoo.count(4567) == 1, timeout=10)

        # And the same admission: asked anyway again while Partoo's report is awaited, nothing is sent.
        view = await use_shortcut(bot, colleague_message("message 4567", ts="1732790000.000500"))
        answer = acked_view(await submit(bot, view, ["4567"], anyway=True, user_id="U999"))
        assert "accepted" in json.dumps(answer["view"])
        assert partoo.count(4567) == 1
        assert len(await bot.bot.retry_log.history(4567)) == 1


async def test_submitting_nothing_is_an_error_on_the_form(bot: RunningBot, partoo: FakePartoo) -> None:
    view = await use_shortcut(bot, colleague_message("message 4567"))

    response = await submit(bot, view, [])

    assert response.json() == {
        "response_action": "errors",
        "errors": {f"{BLOCK_ID_PREFIX}0": "Select at least one message to retry, or cancel."},
    }
    assert partoo.calls == []


async def test_where_the_bot_cannot_post_the_outcome_goes_through_the_response_url(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    slack.not_in_channel(CHANNEL)
    view = await use_shortcut(bot, colleague_message("message 4567"), response_url=slack.response_url("private"))

    await submit(bot, view)

    answers = await eventually(lambda: slack.responses("private"), timeout=10)
    assert "4567" in json.dumps(answers[0])
    assert partoo.count(4567) == 1


# -- the access policy ------------------------------------------------------------------------------------


async def test_the_access_policy_applies_to_the_shortcut_and_its_submission(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner
) -> None:
    environment = bot_environment(slack, partoo, database_url, signer, RETRY_ALLOWED_USERS="U777")
    async with running_bot(slack, environment) as bot:
        refused = await use_shortcut(bot, colleague_message("message 4567"))
        allowed = await use_shortcut(bot, colleague_message("message 4567"), user_id="U777")
        assert "submit" not in refused
        assert "<@U777>" in json.dumps(refused)

        # A submission is checked again: someone else submitting the allowed user's form is refused.
        answer = acked_view(await submit(bot, allowed, user_id=USER))

        assert "<@U777>" in json.dumps(answer["view"])
        assert partoo.calls == []
        assert (await submit(bot, allowed, user_id="U777")).status_code == 200
        await eventually(lambda: partoo.count(4567) == 1, timeout=10)


async def test_slack_gets_its_answer_at_once_even_when_opening_the_modal_is_slow(
    bot: RunningBot, slack: FakeSlack
) -> None:
    slack.delay("views.open", 2.0)
    body, headers = _signed(shortcut_payload(bot, colleague_message("message 4567"), "trigger-slow"))

    started = time.monotonic()
    response = await bot.http.post("/slack/events", content=body, headers=headers)
    answered_in = time.monotonic() - started

    assert response.status_code == 200
    assert answered_in < 1.0, f"Slack waited {answered_in:.1f} s for its answer"
    calls = await eventually(lambda: slack.calls_to("views.open"), timeout=10)
    assert calls[0].params["view"]["callback_id"] == MODAL_CALLBACK_ID


async def test_a_forged_shortcut_is_refused(bot: RunningBot, slack: FakeSlack) -> None:
    body, headers = _signed({"type": "message_action", "callback_id": SHORTCUT_CALLBACK_ID})
    headers["X-Slack-Signature"] = "v0=" + "0" * 64

    response = await bot.http.post("/slack/events", content=body, headers=headers)

    assert response.status_code == 401
    assert slack.calls_to("views.open") == []
