"""A plan's batch has one progress message in the channel: who asked, the filter in words, N/M done, accepted,
refused, delivered so far, and how many changed since the plan (issue 21, item 2), through the real app."""

from __future__ import annotations

from typing import Any

from bot.assembly import Tuning
from bot.retries.messages import STOP_ACTION_ID
from bot.retries.plan_messages import PLAN_RETRY_ACTION_ID
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import CHANNEL, FAST, USER, buttons, running_bot, section_texts
from tests.signing import PartooSigner, message_updated_event
from tests.test_bulk_plans import (
    OPEN_NAMED,
    OPEN_TOO,
    OPEN_UNNAMED,
    RETRIED,
    _answered,
    _button,
    _click,
    _failures,
    _plan,
)
from tests.waiting import eventually, eventually_async

FILTER = "in the last 1 hour, partner whatsapp"
# The other retries are asked for in another channel, so that CHANNEL's messages are the plan's (its root message
# waits for CHANNEL's posting pace in any case: tests/test_bulk_root.py).
ELSEWHERE = "C0ELSEWHERE"


def message_text(message: Any) -> str:
    """The fallback text and every section and context text of a recorded message, as Slack shows them."""
    return " ".join([message.text or "", *section_texts(message.blocks or [])])


async def test_a_plans_progress_message_says_its_filter_its_tallies_and_what_changed_since_the_plan(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, environment: dict[str, str]
) -> None:
    # One worker: the plan's two messages go to Partoo one after the other, each held until the test lets it go.
    tuning = Tuning(**{**FAST.__dict__, "worker_concurrency": 1})
    async with running_bot(slack, environment, tuning) as bot:
        await _failures(bot, partoo, signer)
        # Already retried (Partoo accepted it, no report yet): waiting, not in the plan's Retry.
        await bot.command(str(RETRIED), channel_id=ELSEWHERE)
        await _answered(bot, RETRIED)
        plan = await _plan(bot, slack, "failed since 1h partner whatsapp", "plan")
        retry = _button(plan, PLAN_RETRY_ACTION_ID)
        assert retry["text"]["text"] == "Retry 3 that can succeed"
        # Between the plan and the click, someone else retries one of its messages: it changed since the plan.
        await bot.command(str(OPEN_TOO), user_id="U777", channel_id=ELSEWHERE)
        await _answered(bot, OPEN_TOO)

        first_gate = partoo.hold()
        await _click(bot, slack, PLAN_RETRY_ACTION_ID, retry["value"], "retry")

        def progress_root() -> list[Any]:
            return [m for m in slack.root_messages(CHANNEL) if FILTER in message_text(m)]

        root = (await eventually(progress_root, timeout=10))[0]
        ts = root.ts
        shown = message_text(root)
        assert f"<@{USER}> asked to retry the failed Partoo messages *{FILTER}* (2, from a plan)" in shown, shown
        assert "0/2 done · 0 accepted · 0 refused · 0 delivered so far" in shown, shown
        assert "1 changed since the plan" in shown, shown
        assert any(button["action_id"] == STOP_ACTION_ID for button in buttons(root))

        # The first call is held: Partoo accepts it; the second is held behind a new gate, and will be refused.
        held = await eventually(lambda: [call.message_id for call in partoo.calls if call.status is None], timeout=10)
        # Held at the gate, not only recorded: a gate made before it got there would hold it too.
        await eventually(lambda: first_gate.waiting == 1, timeout=10)
        first = int(held[0])
        second = ({OPEN_NAMED, OPEN_UNNAMED} - {first}).pop()
        partoo.answer(first, 200)
        partoo.answer(second, 400, body={"errors": {"json": "not in a failed state"}})
        second_gate = partoo.hold()
        first_gate.release()

        def message_now() -> str:
            message = slack.message(CHANNEL, ts)
            return message_text(message) if message else ""

        await eventually(lambda: "1/2 done · 1 accepted · 0 refused · 0 delivered so far" in message_now(), timeout=20)
        assert "1 changed since the plan" in message_now()

        # Partoo reports the accepted one delivered before the second answer: the summary counts it.
        assert (await bot.webhook(message_updated_event(first, status="Success"), signer)).status_code == 200

        async def delivered() -> bool:
            history = await bot.bot.retry_log.history(first)
            return bool(history) and history[-1][0].delivery == "delivered"

        await eventually_async(delivered, timeout=20)
        second_gate.release()

        await eventually(lambda: "2/2 done" in message_now(), timeout=20)
        summary = message_now()
        assert f"*{FILTER}*" in summary and "1 accepted" in summary and "1 refused" in summary, summary
        assert "1 delivered so far" in summary and "1 changed since the plan" in summary, summary
        assert not any(button["action_id"] == STOP_ACTION_ID for button in buttons(slack.message(CHANNEL, ts)))
        # The refusal keeps Partoo's words in the thread.
        thread = await eventually(lambda: slack.thread(CHANNEL, ts), timeout=20)
        assert any("not in a failed state" in message_text(reply) for reply in thread)
