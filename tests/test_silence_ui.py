"""Silences from Slack (issue 22 item 1), through the running app: the alert's overflow menu opens a modal
(views.open), its signed `view_submission` starts the silence, the alert says so; `/partoo-retry silences`
lists the active ones and End now ends one, whose summary follows."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select

from bot.alerts.messages import SILENCE_ACTION_ID
from bot.alerts.silence_messages import (
    DURATION_ACTION_ID,
    DURATION_BLOCK_ID,
    END_SILENCE_ACTION_PREFIX,
    NOTE_ACTION_ID,
    NOTE_BLOCK_ID,
    SILENCE_MODAL_CALLBACK_ID,
    UNTIL_ACTION_ID,
    UNTIL_BLOCK_ID,
    UNTIL_CHOSEN,
)
from bot.domain.silences import Scope, Silence
from bot.failures.silences import SilenceStore
from bot.platform.models import Alert
from tests.fakes import FakePartoo, FakeSlack, SlackMessage
from tests.fakes.partoo import CLOSED
from tests.harness import (
    ALERT_CHANNEL,
    SIGNING_SECRET,
    USER,
    RunningBot,
    assert_whole_entities,
    bot_environment,
    message_text,
    running_bot,
    section_texts,
)
from tests.signing import PartooSigner, message_updated_event, slack_signature_headers
from tests.waiting import eventually, eventually_async

HOSTILE_NOTE = "<!channel> *page* & <https://evil.example|click> `unlinked`"


# -- what Slack sends -----------------------------------------------------------------------------------------


def _signed(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, slack_signature_headers(SIGNING_SECRET, body)


def _menu(alert: SlackMessage) -> dict[str, Any]:
    """The alert's overflow menu (the title section's accessory)."""
    for block in alert.blocks or []:
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == "overflow":
            return accessory
    raise AssertionError(f"no overflow menu on {alert.blocks}")


def _option(alert: SlackMessage, scope: Scope) -> dict[str, Any]:
    for option in _menu(alert)["options"]:
        if option["value"].startswith(f"{scope.value} "):
            return dict(option)
    raise AssertionError(f"no {scope} option in {_menu(alert)}")


async def choose(
    bot: RunningBot, alert: SlackMessage, scope: Scope, *, user_id: str = USER, response_url: str | None = None
) -> httpx.Response:
    """Choose "Silence this <scope>…" in the alert's menu, as Slack posts the overflow's block_actions."""
    option = _option(alert, scope)
    body, headers = _signed(
        {
            "type": "block_actions",
            "user": {"id": user_id, "username": "alice", "name": "alice", "team_id": "T0001"},
            "api_app_id": "A0001",
            "token": "verification-token",
            "container": {
                "type": "message",
                "message_ts": alert.ts,
                "channel_id": ALERT_CHANNEL,
                "is_ephemeral": False,
            },
            "trigger_id": f"trigger-{time.monotonic_ns()}",
            "team": {"id": "T0001", "domain": "fake"},
            "channel": {"id": ALERT_CHANNEL, "name": "alerts"},
            "message": {"type": "message", "ts": alert.ts, "text": alert.text, "blocks": alert.blocks},
            "state": {"values": {}},
            "response_url": response_url or bot.slack.response_url("menu"),
            "actions": [
                {
                    "type": "overflow",
                    "action_id": SILENCE_ACTION_ID,
                    "block_id": "title",
                    "selected_option": option,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
    )
    response = await bot.http.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def open_modal(bot: RunningBot, alert: SlackMessage, scope: Scope, **fields: Any) -> dict[str, Any]:
    """Choose a silence in the menu; the modal the bot opened (with that click's trigger_id)."""
    opened = len(bot.slack.calls_to("views.open"))
    await choose(bot, alert, scope, **fields)
    calls = await eventually(lambda: bot.slack.calls_to("views.open")[opened:], timeout=10)
    view: dict[str, Any] = calls[0].params["view"]
    assert view["callback_id"] == SILENCE_MODAL_CALLBACK_ID
    return view


async def submit(
    bot: RunningBot,
    view: dict[str, Any],
    *,
    duration: str = "1h",
    until: float | None = None,
    note: str | None = None,
    user_id: str = USER,
) -> httpx.Response:
    """Submit the silence modal as Slack posts a view_submission."""
    presets = {
        o["value"]: o for b in view["blocks"] if b.get("block_id") == DURATION_BLOCK_ID for o in b["element"]["options"]
    }
    values: dict[str, Any] = {
        DURATION_BLOCK_ID: {DURATION_ACTION_ID: {"type": "radio_buttons", "selected_option": presets[duration]}},
        UNTIL_BLOCK_ID: {UNTIL_ACTION_ID: {"type": "datetimepicker", "selected_date_time": until}},
        NOTE_BLOCK_ID: {NOTE_ACTION_ID: {"type": "plain_text_input", "value": note}},
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
    response = await bot.http.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


# -- the bot's side -------------------------------------------------------------------------------------------


def _store(bot: RunningBot) -> SilenceStore:
    store = bot.bot.alerter.silences
    assert isinstance(store, SilenceStore)
    return store


async def _alert(bot: RunningBot, signer: PartooSigner, message_id: int, **fields: Any) -> SlackMessage:
    """Deliver a failure; its alert once posted (after its conversation check) and recorded."""
    assert (await bot.webhook(message_updated_event(message_id, **fields), signer)).status_code == 200

    def posted() -> SlackMessage | None:
        for message in bot.slack.root_messages(ALERT_CHANNEL):
            if f"Partoo message {message_id} " in (message.text or ""):
                return message
        return None

    alert = await eventually(posted, timeout=20)
    assert alert is not None
    await bot.alert_recorded(message_id, alert.ts)
    return alert


def _current(slack: FakeSlack, alert: SlackMessage) -> SlackMessage:
    current = slack.message(ALERT_CHANNEL, alert.ts)
    assert current is not None
    return current


async def _silenced_alert(slack: FakeSlack, alert: SlackMessage) -> str:
    """The alert's text once it says it is silenced."""
    shown = await eventually(
        lambda: (text := message_text(_current(slack, alert))) and "silenced by" in text and text, timeout=20
    )
    return str(shown)


async def _held(bot: RunningBot, message_id: int, silence_id: int) -> None:
    async def held() -> bool:
        async with bot.bot.engine.connect() as connection:
            row = (
                await connection.execute(select(Alert.silence_id, Alert.ts).where(Alert.message_id == message_id))
            ).one_or_none()
        return row is not None and row.silence_id == silence_id and row.ts is None

    await eventually_async(held, timeout=20)


async def _only_silence(bot: RunningBot) -> Silence:
    active = await eventually_async(_store(bot).active, timeout=10)
    assert len(active) == 1, active
    return active[0]


# -- silencing from an alert ----------------------------------------------------------------------------------


async def test_the_menu_offers_only_what_applies(bot: RunningBot, signer: PartooSigner) -> None:
    alert = await _alert(bot, signer, 4567)
    # Checked (the fake's conversation is open): business, partner and cause.
    assert [o["value"] for o in _menu(alert)["options"]] == ["business 4567", "partner 4567", "cause 4567"]
    assert [o["text"]["text"] for o in _menu(alert)["options"]] == [
        "Silence this business…",
        "Silence this partner…",
        "Silence this cause…",
    ]


async def test_silencing_a_business_from_its_alert(bot: RunningBot, slack: FakeSlack, signer: PartooSigner) -> None:
    alert = await _alert(bot, signer, 4567, business_id=42)
    view = await open_modal(bot, alert, Scope.BUSINESS)
    assert "Silence" in json.dumps(view["blocks"])

    before = time.time()
    await submit(bot, view, duration="4h", note="Facebook page unlinked")
    silence = await _only_silence(bot)
    assert (silence.scope, silence.value, silence.created_by, silence.note) == (
        Scope.BUSINESS,
        "42",
        USER,
        "Facebook page unlinked",
    )
    assert before + 4 * 3600 - 5 < silence.until < time.time() + 4 * 3600 + 5

    # The alert it was started from says so: who, until when, why.
    shown = await _silenced_alert(slack, alert)
    assert f"silenced by <@{USER}> until <!date^{int(silence.until)}" in shown
    assert "(Facebook page unlinked)" in shown

    # The business's next failure is held back; another business's is posted.
    await bot.webhook(message_updated_event(4568, business_id=42), signer)
    await _alert(bot, signer, 4569, business_id=77)
    await _held(bot, 4568, silence.id)
    assert not any("4568" in (m.text or "") for m in slack.root_messages(ALERT_CHANNEL))


async def test_silencing_a_partner_until_a_chosen_time(bot: RunningBot, slack: FakeSlack, signer: PartooSigner) -> None:
    alert = await _alert(bot, signer, 4567, messaging_partner="Facebook")
    view = await open_modal(bot, alert, Scope.PARTNER)
    until = int(time.time()) + 2 * 86400

    await submit(bot, view, duration=UNTIL_CHOSEN, until=until)
    silence = await _only_silence(bot)
    assert (silence.scope, silence.value, silence.until, silence.note) == (Scope.PARTNER, "facebook", until, None)
    assert "Facebook silenced by" in await _silenced_alert(slack, alert)

    await bot.webhook(message_updated_event(4568, messaging_partner="FACEBOOK", business_id=9), signer)
    await _held(bot, 4568, silence.id)


async def test_silencing_a_cause_holds_failures_with_that_verdict(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    partoo.conversation(991, CLOSED)
    partoo.conversation(992, CLOSED)
    alert = await _alert(bot, signer, 4567, conversation_id=991)
    view = await open_modal(bot, alert, Scope.CAUSE)
    assert "conversation closed" in json.dumps(view["blocks"])

    await submit(bot, view, duration="1d")
    silence = await _only_silence(bot)
    assert (silence.scope, silence.value) == (Scope.CAUSE, "closed")
    assert "conversation closed silenced by" in await _silenced_alert(slack, alert)

    # Another closed conversation is held once checked; an open one is posted.
    await bot.webhook(message_updated_event(4568, conversation_id=992, business_id=5), signer)
    await _alert(bot, signer, 4569, conversation_id=993, business_id=6)
    await _held(bot, 4568, silence.id)


async def test_a_chosen_time_is_required_in_the_future_and_within_a_month(
    bot: RunningBot, signer: PartooSigner
) -> None:
    alert = await _alert(bot, signer, 4567)
    view = await open_modal(bot, alert, Scope.BUSINESS)
    for until in (None, time.time() - 60, time.time() + 40 * 86400):
        answer = (await submit(bot, view, duration=UNTIL_CHOSEN, until=until)).json()
        assert answer["response_action"] == "errors"
        assert UNTIL_BLOCK_ID in answer["errors"]
    assert await _store(bot).active() == []


async def test_a_forged_form_or_choice_silences_nothing(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    alert = await _alert(bot, signer, 4567)
    view = await open_modal(bot, alert, Scope.BUSINESS)
    for metadata in ("", "{}", '{"s":"cause","v":"anything","m":4567,"c":"C1"}', '{"s":"x","v":"1","m":1,"c":"C"}'):
        answer = (await submit(bot, {**view, "private_metadata": metadata})).json()
        assert answer["response_action"] == "update"
        assert "not one the bot opened" in json.dumps(answer["view"])

    # A menu choice on a message that is not this alert opens nothing and says why.
    moved = SlackMessage(channel=ALERT_CHANNEL, ts="1.000001", text=alert.text, blocks=alert.blocks)
    await choose(bot, moved, Scope.BUSINESS, response_url=slack.response_url("moved"))
    answers = await eventually(lambda: slack.responses("moved"), timeout=10)
    assert "does not belong to an alert" in json.dumps(answers[0])
    assert len(slack.calls_to("views.open")) == 1
    assert await _store(bot).active() == []


# -- the access policy ----------------------------------------------------------------------------------------


async def test_the_access_policy_applies_to_opening_and_submitting(
    slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner
) -> None:
    environment = bot_environment(slack, partoo, database_url, signer, RETRY_ALLOWED_USERS="U777")
    async with running_bot(slack, environment) as bot:
        alert = await _alert(bot, signer, 4567)

        # Outside RETRY_ALLOWED_USERS: no modal, a refusal only the clicker sees.
        await choose(bot, alert, Scope.BUSINESS, response_url=slack.response_url("refused"))
        refusal = await eventually(lambda: slack.responses("refused"), timeout=10)
        assert "<@U777>" in json.dumps(refusal[0])
        assert slack.calls_to("views.open") == []

        # The allowed user opens it; someone else submitting that form is refused, and nothing starts.
        view = await open_modal(bot, alert, Scope.BUSINESS, user_id="U777")
        answer = (await submit(bot, view, user_id=USER)).json()
        assert answer["response_action"] == "update"
        assert "<@U777>" in json.dumps(answer["view"])
        assert await _store(bot).active() == []

        await submit(bot, view, user_id="U777")
        assert (await _only_silence(bot)).created_by == "U777"

        # End now is behind the same policy.
        listed = await _list(bot, "list-refused")
        await _end_now(bot, listed, user_id=USER, response_url=slack.response_url("end-refused"))
        refused = await eventually(lambda: slack.responses("end-refused"), timeout=10)
        assert "<@U777>" in json.dumps(refused[0])
        assert len(await _store(bot).active()) == 1


# -- /partoo-retry silences, End now --------------------------------------------------------------------------


async def _list(bot: RunningBot, name: str, *, user_id: str = USER) -> dict[str, Any]:
    response = await bot.command("silences", user_id=user_id, response_url=bot.slack.response_url(name))
    assert response.status_code == 200
    answers = await eventually(lambda: bot.slack.responses(name), timeout=10)
    answer: dict[str, Any] = answers[0]
    assert answer["response_type"] == "ephemeral"
    return answer


def _end_buttons(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block["accessory"]
        for block in answer["blocks"]
        if isinstance(block.get("accessory"), dict)
        and block["accessory"]["action_id"].startswith(END_SILENCE_ACTION_PREFIX)
    ]


async def _end_now(
    bot: RunningBot, answer: dict[str, Any], *, index: int = 0, user_id: str = USER, response_url: str | None = None
) -> None:
    button = _end_buttons(answer)[index]
    response = await bot.click(
        action_id=button["action_id"],
        value=button["value"],
        user_id=user_id,
        channel_id="C123",
        response_url=response_url or bot.slack.response_url("end"),
    )
    assert response.status_code == 200


async def test_silences_lists_the_active_ones_and_end_now_sums_one_up(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    empty = await _list(bot, "empty")
    assert "No silence is active" in json.dumps(empty)
    assert _end_buttons(empty) == []

    alert = await _alert(bot, signer, 4567, business_id=42)
    await submit(bot, await open_modal(bot, alert, Scope.BUSINESS), note=HOSTILE_NOTE)
    silence = await _only_silence(bot)
    await _store(bot).start(Scope.PARTNER, "google", time.time() + 3600, "U999")
    await bot.webhook(message_updated_event(4568, business_id=42), signer)
    await bot.webhook(message_updated_event(4569, business_id=42), signer)
    await _held(bot, 4568, silence.id)
    await _held(bot, 4569, silence.id)

    listed = await _list(bot, "listed")
    texts = section_texts(listed["blocks"])
    assert "2 active silences" in json.dumps(listed)
    business_line = next(text for text in texts if "silenced by <@U123>" in text)
    assert "until <!date^" in business_line
    assert "Held back so far: 2 failures" in business_line
    # The note is shown as typed, never as a mention, a link or formatting.
    assert "&lt;!channel&gt;" in business_line and "<!channel>" not in business_line
    assert "&lt;https://evil.example|click&gt;" in business_line
    for text in texts:
        assert_whole_entities(text)
    assert any("Google silenced by <@U999>" in text for text in texts)
    assert [b["value"] for b in _end_buttons(listed)] == [str(silence.id), str(silence.id + 1)]

    await _end_now(bot, listed, response_url=slack.response_url("ended"))
    answer = (await eventually(lambda: slack.responses("ended"), timeout=10))[0]
    assert answer["replace_original"] is True
    assert "is over" in json.dumps(answer)
    assert [b["value"] for b in _end_buttons(answer)] == [str(silence.id + 1)]

    # Its summary is posted once; the alert it started from no longer says it is silenced.
    summary = await eventually(
        lambda: [m for m in slack.root_messages(ALERT_CHANNEL) if "was silenced" in (m.text or "")], timeout=20
    )
    assert "2 failures, 2 now retryable" in message_text(summary[0])
    await eventually(lambda: "silenced by" not in message_text(_current(slack, alert)), timeout=20)
    assert [s.value for s in await _store(bot).active()] == ["google"]

    # Ending it again: already over, nothing else is summed up.
    await _end_now(bot, listed, response_url=slack.response_url("again"))
    again = (await eventually(lambda: slack.responses("again"), timeout=10))[0]
    assert "already ended" in json.dumps(again)


async def test_the_hostile_note_is_escaped_on_the_alert(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    alert = await _alert(bot, signer, 4567)
    await submit(bot, await open_modal(bot, alert, Scope.PARTNER), note=HOSTILE_NOTE + "\n" + "x" * 500)
    await _silenced_alert(slack, alert)
    texts = section_texts(_current(slack, alert).blocks or [])
    line = next(text for text in texts if "silenced by" in text)
    assert "<!channel>" not in line and "&lt;!channel&gt;" in line
    assert "\n" not in line.split("silenced by", 1)[1]
    for text in texts:
        assert_whole_entities(text)


async def test_silences_is_documented_and_takes_nothing_after_it(bot: RunningBot) -> None:
    help_answer = (await bot.command("help")).json()
    assert "/partoo-retry silences" in json.dumps(help_answer)
    refused = (await bot.command("silences now")).json()
    assert "takes nothing after it" in json.dumps(refused)
