"""The promise, per message, through the real app: a stateful property test of everything people and Partoo do.

Hypothesis drives the real ASGI app (tests.harness.running_bot) with signed requests, against fake Slack and
fake Partoo on loopback, on SQLite and PostgreSQL: Failed reports (new bodies and identical redeliveries) and
Success reports for messages in every phase; Retry and Retry anyway clicks on the alert whether or not its
button is still shown (stale buttons), double clicks; `/partoo-retry <id>`, `<id> anyway` and its
confirmation; the message shortcut's submission (with or without "anyway"); a digest's Retry all; Partoo
answering accepted, refused or 503 as drawn; and the bot restarting on the same database. The bot's
background work (worker, alerter, notifier) runs on its own between and during the steps; a `settle` rule
waits until it is done, so that both the settled phases and those in between are reached.

The model is what the test did and saw, never the bot's state: the webhooks it sent (with when each began
and got its 200) and the calls fake Partoo recorded (with when each arrived and how it was answered). It
checks, after every step:

- **Never twice.** For one message, a Partoo retry call after one that may have sent it (answered 2xx, or
  never answered) only if a Failed report for that message arrived after the earlier call was made. (A call
  Partoo answered 4xx or 5xx sent nothing: a retry after it is no second send.)
- **Accepted means wait.** A Retry click, command or submission for a message whose latest retry Partoo
  accepted, with no report since, sends nothing until a Failed report arrives.

A report counts as "after the call" if it got its 200 after the call arrived at Partoo: when a call and a
report overlap, the bot is given the benefit of the doubt.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts.messages import RETRY_ACTION_ID, RETRY_ALL_ACTION_ID
from bot.failures.verdict_messages import RETRY_ANYWAY_ACTION_ID
from bot.platform.database import create_engine, migrate
from bot.platform.models import Base
from bot.retries.refusal_messages import CONFIRM_ANYWAY_ACTION_ID
from tests.fakes import FakePartoo, FakeSlack
from tests.fakes.partoo import PartooCall
from tests.fakes.slack import EXPIRED_URL
from tests.harness import CHANNEL, RunningBot, bot_environment, running_bot
from tests.signing import PartooSigner, message_updated_event
from tests.test_shortcut import colleague_message, submit, use_shortcut
from tests.waiting import eventually_async

T = TypeVar("T")

MESSAGES = (101, 102, 103, 104)
USERS = ("U123", "U999")
# Two bodies per message: a redelivery repeats one byte for byte, a new failure may carry the other.
CONTENTS = ("Hello", "Hello again")
# 30 examples of 30 steps on each database keep the suite within minutes; LIFECYCLE_EXAMPLES=200 for a deeper run.
EXAMPLES = int(os.environ.get("LIFECYCLE_EXAMPLES", "30"))
STEPS = int(os.environ.get("LIFECYCLE_STEPS", "30"))
SHRINK = os.environ.get("LIFECYCLE_SHRINK", "") == "1"
SETTLE_SECONDS = 20.0


@dataclass(frozen=True)
class Report:
    """A webhook the test sent: which message, which status, when it began and when Partoo got its 200."""

    message_id: int
    status: str
    began: float
    answered: float


@dataclass
class Model:
    reports: list[Report] = field(default_factory=list)
    # message → when a click, command or submission was sent while its latest retry was accepted, unreported.
    awaiting_since: dict[int, list[float]] = field(default_factory=dict)


def _may_have_sent(call: PartooCall) -> bool:
    return call.status is None or 200 <= call.status < 300


class Promise(RuleBasedStateMachine):
    """One example: an empty database, a fresh bot, four messages, two people."""

    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    slack: FakeSlack
    partoo: FakePartoo
    signer: PartooSigner
    environment: dict[str, str]

    def __init__(self) -> None:
        super().__init__()
        self.run(_empty(self.engine))
        self.partoo.reset()
        self.slack.reset()
        self.model = Model()
        self.shortcuts = 0
        self.asks = 0
        self._stop: asyncio.Event | None = None
        self._holder: asyncio.Task[None] | None = None
        self.bot = self._start()

    def run(self, coroutine: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coroutine)

    # -- the bot, started and stopped by one task (its lifespan enters and exits in the same task) -----

    def _start(self) -> RunningBot:
        started: asyncio.Future[RunningBot] = self.loop.create_future()
        stop = asyncio.Event()

        async def hold() -> None:
            try:
                async with running_bot(self.slack, self.environment) as bot:
                    started.set_result(bot)
                    await stop.wait()
            except BaseException as error:
                if not started.done():
                    started.set_exception(error)
                raise

        self._stop, self._holder = stop, self.loop.create_task(hold())
        return self.run(started)

    def _stop_bot(self) -> None:
        assert self._stop is not None and self._holder is not None
        self._stop.set()
        self.run(self._holder)

    # -- Partoo ---------------------------------------------------------------------------------------

    @rule(message_id=st.sampled_from(MESSAGES), content=st.sampled_from(CONTENTS))
    def failed(self, message_id: int, content: str) -> None:
        self._report(message_id, "Failed", content)

    @rule(message_id=st.sampled_from(MESSAGES))
    def delivered(self, message_id: int) -> None:
        self._report(message_id, "Success", CONTENTS[0])

    def _report(self, message_id: int, status: str, content: str) -> None:
        event = message_updated_event(message_id, status=status, content=content, conversation_id=message_id)
        began = time.monotonic()
        response = self.run(self.bot.webhook(event, self.signer))
        assert response.status_code == 200, response.text
        self.model.reports.append(Report(message_id, status, began, time.monotonic()))

    @rule(message_id=st.sampled_from(MESSAGES), status=st.sampled_from([200, 200, 400, 503]))
    def partoo_will_answer(self, message_id: int, status: int) -> None:
        self.partoo.answer(message_id, status)

    # -- people ---------------------------------------------------------------------------------------

    @rule(
        message_id=st.sampled_from(MESSAGES),
        action_id=st.sampled_from([RETRY_ACTION_ID, RETRY_ACTION_ID, RETRY_ANYWAY_ACTION_ID]),
        users=st.sampled_from([USERS[:1], USERS[1:], USERS, (USERS[0], USERS[0])]),
    )
    def click(self, message_id: int, action_id: str, users: tuple[str, ...]) -> None:
        """A click (or two at once) on the alert's button, shown or not any more: admission decides."""
        alert = self.run(self.bot.bot.alerts.alert_for(message_id))
        if alert is None or alert.ts is None:
            return
        self._asking(message_id)
        clicks = [
            self.bot.click(
                action_id=action_id,
                value=str(message_id),
                user_id=user,
                channel_id=alert.channel_id,
                message_ts=alert.ts,
                response_url=self._response_url(),
            )
            for user in users
        ]
        for answer in self.run(_gather(clicks)):
            assert answer.status_code == 200, answer.text

    @rule(user=st.sampled_from(USERS))
    def retry_all(self, user: str) -> None:
        digest = self.run(self._a_posted_digest())
        if digest is None:
            return
        for message_id in MESSAGES:
            self._asking(message_id)
        answer = self.run(
            self.bot.click(
                action_id=RETRY_ALL_ACTION_ID,
                value=str(digest.id),
                user_id=user,
                channel_id=digest.channel_id,
                message_ts=digest.ts,
                response_url=self._response_url(),
            )
        )
        assert answer.status_code == 200, answer.text

    async def _a_posted_digest(self) -> Any:
        for alert in (await self.bot.bot.alerts.alerts_for(MESSAGES)).values():
            if alert.digest_id is not None:
                digest = await self.bot.bot.alerts.digest(alert.digest_id)
                if digest is not None and digest.ts is not None:
                    return digest
        return None

    @rule(message_id=st.sampled_from(MESSAGES), user=st.sampled_from(USERS), anyway=st.booleans())
    def command(self, message_id: int, user: str, anyway: bool) -> None:
        self._asking(message_id)
        asked = f"{message_id} anyway" if anyway else str(message_id)
        answer = self.run(self.bot.command(asked, user_id=user, response_url=self._response_url()))
        assert answer.status_code == 200, answer.text
        if not anyway:
            return
        # `anyway` asks to confirm first: the confirmation is the click that queues.
        body = answer.json()
        (confirm,) = [b for block in body["blocks"] if block["type"] == "actions" for b in block["elements"]]
        assert confirm["action_id"] == CONFIRM_ANYWAY_ACTION_ID
        self._asking(message_id)
        clicked = self.run(
            self.bot.click(
                action_id=CONFIRM_ANYWAY_ACTION_ID,
                value=confirm["value"],
                user_id=user,
                channel_id=CHANNEL,
                message_ts="1700000000.000900",
                response_url=self._response_url(),
            )
        )
        assert clicked.status_code == 200, clicked.text

    @rule(message_id=st.sampled_from(MESSAGES), user=st.sampled_from(USERS), anyway=st.booleans())
    def shortcut(self, message_id: int, user: str, anyway: bool) -> None:
        self.shortcuts += 1
        message = colleague_message(f"message {message_id} bounced", ts=f"1732790000.{self.shortcuts:06d}")
        view = self.run(use_shortcut(self.bot, message, user_id=user, response_url=self._response_url()))
        if "callback_id" not in view:
            # The modal reads the retry log within Slack's 3 s trigger; on a starved machine SQLite's one
            # connection can be busy that long, and the bot then says so instead of a form: nothing to submit,
            # nothing asked (the invariants still check that nothing was sent).
            assert "The retry log is unavailable right now" in json.dumps(view), view
            return
        self._asking(message_id)
        answer = self.run(submit(self.bot, view, [str(message_id)], user_id=user, anyway=anyway))
        assert answer.status_code == 200, answer.text

    def _response_url(self) -> str:
        # One per ask, as Slack gives: fake Slack refuses a sixth use of one, as Slack does.
        self.asks += 1
        return self.slack.response_url(f"ask-{self.asks}")

    def _asking(self, message_id: int) -> None:
        """Note the ask if the message's latest retry was accepted and nothing was reported since."""
        calls = self._calls(message_id)
        if not calls or calls[-1].status != 200:
            return
        if any(report.message_id == message_id and report.answered > calls[-1].at for report in self.model.reports):
            return
        self.model.awaiting_since.setdefault(message_id, []).append(time.monotonic())

    # -- the bot's life ---------------------------------------------------------------------------------

    @rule()
    def settle(self) -> None:
        """Wait until the bot has done everything it was asked: events applied, retries sent and answered."""
        self.run(eventually_async(self._settled, timeout=SETTLE_SECONDS, message="the bot never settled"))

    async def _settled(self) -> bool:
        if any(call.status is None for call in self.partoo.calls):
            return False
        async with self.engine.connect() as connection:
            busy = await connection.scalar(
                text(
                    "SELECT (SELECT count(*) FROM retry_requests WHERE state <> 'done')"
                    " + (SELECT count(*) FROM webhook_events WHERE processed_at IS NULL)"
                )
            )
        return bool(busy == 0)

    @rule()
    def restart(self) -> None:
        """The bot stops (whatever it was doing) and a new one starts on the same database."""
        self._stop_bot()
        self.bot = self._start()

    # -- the promise ------------------------------------------------------------------------------------

    def _calls(self, message_id: int) -> list[PartooCall]:
        return sorted((c for c in self.partoo.calls if c.message_id == str(message_id)), key=lambda c: c.at)

    def _failed_between(self, message_id: int, after: float, before: float) -> bool:
        return any(
            report.message_id == message_id
            and report.status == "Failed"
            and report.answered > after
            and report.began < before
            for report in self.model.reports
        )

    @invariant()
    def never_a_second_call_without_a_failure_after_the_first(self) -> None:
        for message_id in MESSAGES:
            calls = self._calls(message_id)
            for earlier, later in itertools.pairwise(calls):
                if _may_have_sent(earlier) and not self._failed_between(message_id, earlier.at, later.at):
                    raise AssertionError(
                        f"message {message_id}: a retry call at {later.at:.3f} after one at {earlier.at:.3f} "
                        f"(answered {earlier.status}) with no Failed report in between; "
                        f"calls {_timeline(calls)}, reports {self._reports_of(message_id)}"
                    )

    @invariant()
    def an_ask_while_partoo_accepted_sends_nothing(self) -> None:
        for message_id, asks in self.model.awaiting_since.items():
            for asked in asks:
                after = [call for call in self._calls(message_id) if call.at > asked]
                if after and not self._failed_between(message_id, asked, after[0].at):
                    raise AssertionError(
                        f"message {message_id}: asked at {asked:.3f} while Partoo's accepted retry awaited its "
                        f"report, and a call followed at {after[0].at:.3f}; reports {self._reports_of(message_id)}"
                    )

    def _reports_of(self, message_id: int) -> list[tuple[str, float, float]]:
        return [
            (r.status, round(r.began, 3), round(r.answered, 3))
            for r in self.model.reports
            if r.message_id == message_id
        ]

    def teardown(self) -> None:
        try:
            self.settle()
            self.never_a_second_call_without_a_failure_after_the_first()
            self.an_ask_while_partoo_accepted_sends_nothing()
        finally:
            self._stop_bot()
        # Checked here because the next example resets fake Slack (the fixture checks only the last one).
        refused = [refusal for refusal in self.slack.refusals if refusal.error != EXPIRED_URL]
        assert refused == [], f"Slack would have refused: {refused}"


def _timeline(calls: list[PartooCall]) -> list[tuple[float, int | None]]:
    return [(round(call.at, 3), call.status) for call in calls]


async def _gather(coroutines: list[Coroutine[Any, Any, T]]) -> list[T]:
    return list(await asyncio.gather(*coroutines))


# What one example leaves behind; the pace rows (seeded by the migrations) and the rest stay.
EXAMPLE_TABLES = ("retry_attempts", "retry_requests", "retry_batches", "alerts", "alert_digests", "webhook_events")


async def _empty(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in EXAMPLE_TABLES:
            await connection.execute(Base.metadata.tables[table].delete())


@pytest.mark.long(120)
@pytest.mark.parametrize("backend", ["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.postgres)])
def test_the_promise_holds_through_the_app_under_any_interleaving(
    backend: str, request: pytest.FixtureRequest, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    url: str = request.getfixturevalue(backend)
    loop = asyncio.new_event_loop()
    engine = create_engine(url)
    try:
        loop.run_until_complete(migrate(engine))
        Promise.loop, Promise.engine = loop, engine
        Promise.slack, Promise.partoo, Promise.signer = slack, partoo, signer
        Promise.environment = bot_environment(slack, partoo, url, signer)
        run_state_machine_as_test(
            Promise,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                # A failing interleaving is printed as found: shrinking a run of real requests takes minutes.
                phases=[Phase.explicit, Phase.generate] if not SHRINK else list(Phase),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()
