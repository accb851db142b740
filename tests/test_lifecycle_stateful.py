"""A stateful property test of the real stores: random interleavings of everything that happens to failures.

Hypothesis drives the real AlertStore and RetryQueue (and the real alerter and notifier rounds, with a
fake Slack poster) on SQLite and PostgreSQL: Failed and Success webhooks (identical redeliveries included),
Retry clicks, commands, "Retry all", workers claiming, calling Partoo and answering late, leases
expiring and being taken over, and Slack failing in each of its three ways. The workers take the steps
bot.retries.worker takes, one store call per rule, so that a call can outlive its lease.

After every step:
- no request gets a Partoo call after one that may have reached Partoo (at most one per request);
- a finished request has exactly one outcome, and keeps it;
- every stored failure shows on its alert, and one reported after a retry shows as "failed again"
  with its Retry button (within the limit);
- no alert, result or log line is lost (or posted twice);
- the retry count an alert shows equals the retries asked for since it exists.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts.alerter import Alerter
from bot.alerts.messages import alert_message
from bot.alerts.store import AlertStore
from bot.domain import lifecycle
from bot.domain.outcomes import OutcomeKind, PartooAnswer
from bot.domain.retry_requests import NewBatch, RequestView
from bot.failures.webhook_events import parse_event
from bot.platform.database import create_engine, migrate
from bot.platform.models import Request, RequestState
from bot.platform.slack import CannotPostHere, SlackAuthError, SlackPermanent, SlackPostError, SlackUnavailable
from bot.retries.notifier import Notifier
from bot.retries.retry_log import RetryLog
from bot.retries.service import RetryService
from bot.retries.store import RetryQueue
from bot.retries.worker import TAKEN_OVER_DETAIL
from bot.slack.clicks import AlertClicks, Click
from tests.signing import message_updated_event

T = TypeVar("T")

MESSAGES = (101, 102, 103)
USERS = ("U1", "U2")
WORKERS = ("w1", "w2")
LEASE = 30.0
ALERT_CHANNEL = "CALERTS"
COMMAND_CHANNEL = "COPS"
LOG_CHANNEL = "CLOG"
TRANSIENT = (OutcomeKind.RATE_LIMITED, OutcomeKind.UNAVAILABLE)
# Calls to Partoo for one request before a transient answer is taken as final (as RetryPolicy bounds them).
MAX_CALLS = 3
EXAMPLES = int(os.environ.get("LIFECYCLE_EXAMPLES", "20"))
STEPS = int(os.environ.get("LIFECYCLE_STEPS", "40"))
SHRINK = os.environ.get("LIFECYCLE_SHRINK", "") == "1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakePoster:
    """Slack as the alerter and the notifier see it, failing on demand in one of the three ways."""

    def __init__(self) -> None:
        self.next_error: dict[str, SlackPostError] = {}  # channel → the error its next call gets
        # (channel, thread_ts, fallback text) of every post Slack took.
        self.posts: list[tuple[str, str | None, str]] = []
        self.auth_problem: str | None = None
        self._ts = 0

    def _fail_maybe(self, channel: str) -> None:
        if channel in self.next_error:
            raise self.next_error.pop(channel)

    async def post(self, channel: str, message: Any, *, thread_ts: str | None = None) -> str:
        self._fail_maybe(channel)
        self._ts += 1
        self.posts.append((channel, thread_ts, str(message.as_kwargs().get("text", ""))))
        return f"{self._ts}.000100"

    async def update(self, channel: str, ts: str, message: Any) -> None:
        self._fail_maybe(channel)

    async def permalink(self, channel: str, ts: str) -> str | None:
        return None

    async def respond(self, response_url: str, message: Any, *, in_channel: bool) -> None:
        raise CannotPostHere("no_response_url")


@dataclass
class Call:
    """One Partoo call a worker made for a request; `answer` stays None while it is in flight."""

    request_id: int
    answer: OutcomeKind | None = None


@dataclass
class Model:
    requests: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # message → retries asked
    alert_retries: dict[int, int] = field(default_factory=dict)  # message → retries asked since its alert
    seen_bodies: set[tuple[int, str, int]] = field(default_factory=set)
    pending: list[tuple[int, str]] = field(default_factory=list)  # stored events not processed yet
    failures: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    failed_again: dict[int, bool] = field(default_factory=dict)
    calls: dict[int, list[Call]] = field(default_factory=lambda: defaultdict(list))
    outcomes: dict[int, str] = field(default_factory=dict)
    held: dict[str, list[RequestView]] = field(default_factory=lambda: defaultdict(list))
    in_flight: dict[str, list[tuple[RequestView, int]]] = field(default_factory=lambda: defaultdict(list))


class Lifecycle(RuleBasedStateMachine):
    """One example: an empty database, three messages, two users, two workers, one Slack."""

    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine

    def __init__(self) -> None:
        super().__init__()
        self.run(_empty(self.engine))
        self.clock = Clock()
        self.alerts = AlertStore(self.engine, clock=self.clock)
        self.queue = RetryQueue(self.engine, clock=self.clock)
        self.slack = FakePoster()
        poster: Any = self.slack
        self.service = RetryService(self.queue, RetryLog(self.engine, clock=self.clock), self.alerts, poster)
        self.clicks = AlertClicks(self.service, self.alerts)
        self.alerter = Alerter(self.alerts, poster, alert_channel=ALERT_CHANNEL, digest_threshold=2, clock=self.clock)
        self.notifier = Notifier(self.queue, poster, log_channel=LOG_CHANNEL, log_interval=0.0, clock=self.clock)
        self.model = Model()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    # -- Partoo's webhooks ------------------------------------------------------------------------

    @rule(message_id=st.sampled_from(MESSAGES), status=st.sampled_from(["Failed", "Failed", "Success"]))
    def webhook(self, message_id: int, status: str) -> None:
        # Always the same bytes for one message and status: Partoo's bodies have no event id.
        body = json.dumps(message_updated_event(message_id, status=status)).encode()
        stored = self.run(self.alerts.store_event(parse_event(body)))
        key = (message_id, status, self.model.requests[message_id])
        if key not in self.model.seen_bodies:
            assert stored, "a new failure (or one after a retry) is never taken for a redelivery"
        elif status == "Failed":
            assert not stored, "a redelivered failure is a duplicate"
        # A Success seen before may be stored again: one applied while its message had no alert and no retry
        # was dropped (bot.alerts.store, retention), and applying a Success again changes nothing it should not.
        self.model.seen_bodies.add(key)
        if stored:
            self.model.pending.append((message_id, status))

    @rule()
    def alerter_round(self) -> None:
        before = set(self.run(self.alerts.alerts_for(MESSAGES)))
        self.run(self.alerter.tick())
        for message_id, status in self.model.pending:
            if status == "Failed":
                self.model.failures[message_id] += 1
                retried = self.model.alert_retries.get(message_id, 0) > 0 and message_id in before
                self.model.failed_again[message_id] = retried
            else:
                self.model.failed_again[message_id] = False
        self.model.pending.clear()
        for message_id in set(self.run(self.alerts.alerts_for(MESSAGES))) - before:
            self.model.alert_retries[message_id] = 0

    # -- people asking --------------------------------------------------------------------------

    @rule(message_id=st.sampled_from(MESSAGES), user=st.sampled_from(USERS))
    def click(self, message_id: int, user: str) -> None:
        alert = self.run(self.alerts.alert_for(message_id))
        if alert is None or alert.ts is None:
            return
        result = self.run(self.clicks.retry(Click(user, alert.channel_id, alert.ts, message_id, "click")))
        self._asked(getattr(result, "queued", ()))

    @rule(message_id=st.sampled_from(MESSAGES), user=st.sampled_from(USERS))
    def command(self, message_id: int, user: str) -> None:
        ask = NewBatch(source="command", requested_by=user, channel_id=COMMAND_CHANNEL, correlation_id="command")
        self._asked(self.run(self.service.request(ask, [message_id])).queued)
        self.run(self.notifier.tick())  # woken at once, as in the bot: the command's root message

    @rule(user=st.sampled_from(USERS))
    def retry_all(self, user: str) -> None:
        for alert in self.run(self.alerts.alerts_for(MESSAGES)).values():
            digest = self.run(self.alerts.digest(alert.digest_id)) if alert.digest_id else None
            if digest is not None and digest.ts is not None:
                result = self.run(self.clicks.retry_all(Click(user, digest.channel_id, digest.ts, digest.id, "all")))
                self._asked(getattr(result, "queued", ()))
                return

    def _asked(self, queued: tuple[int, ...]) -> None:
        for message_id in queued:
            self.model.requests[message_id] += 1
            if message_id in self.model.alert_retries:
                self.model.alert_retries[message_id] += 1
            self.model.failed_again[message_id] = False

    @rule()
    def notifier_round(self) -> None:
        self.run(self.notifier.tick())

    # -- workers --------------------------------------------------------------------------------

    @rule(worker=st.sampled_from(WORKERS))
    def claim(self, worker: str) -> None:
        request = self.run(self.queue.claim_next(worker, LEASE))
        if request is None:
            return
        if request.in_flight_since is not None:
            # What RetryWorker does with a request taken over mid-call: close it, never call again.
            self.run(
                self.queue.finish_without_call(request.id, request.lease_token, OutcomeKind.UNKNOWN, TAKEN_OVER_DETAIL)
            )
            return
        self.model.held[worker].append(request)

    @rule(worker=st.sampled_from(WORKERS))
    def lease_expires_and_a_worker_claims(self, worker: str) -> None:
        self.clock.now += LEASE + 1
        self.claim(worker)

    @precondition(lambda self: any(self.model.held.values()))
    @rule(pick=st.integers(0, 1))
    def call_partoo(self, pick: int) -> None:
        self.call_partoo_as(_pick([w for w in WORKERS if self.model.held[w]], pick))

    def call_partoo_as(self, worker: str) -> None:
        request = self.model.held[worker].pop(0)
        attempt = self.run(self.queue.begin_attempt(request.id, request.lease_token, worker))
        if attempt is None:
            return  # the lease was lost: not sent
        earlier = self.model.calls[request.id]
        assert all(call.answer in TRANSIENT for call in earlier), f"request {request.id} sent twice: {earlier}"
        earlier.append(Call(request.id))
        self.model.in_flight[worker].append((request, attempt))

    @precondition(lambda self: any(self.model.in_flight.values()))
    @rule(pick=st.integers(0, 1), outcome=st.sampled_from(list(OutcomeKind)))
    def partoo_answers(self, pick: int, outcome: OutcomeKind) -> None:
        self.partoo_answers_as(_pick([w for w in WORKERS if self.model.in_flight[w]], pick), outcome)

    def partoo_answers_as(self, worker: str, outcome: OutcomeKind) -> None:
        request, attempt = self.model.in_flight[worker].pop(0)
        calls = self.model.calls[request.id]
        retry_at = self.clock() + 1.0 if outcome in TRANSIENT and len(calls) < MAX_CALLS else None
        answer = PartooAnswer(outcome, http_status=None, detail=f"answer to {worker}")
        self.run(self.queue.record_answer(request.id, attempt, request.lease_token, answer, retry_at=retry_at))
        next(call for call in reversed(calls) if call.answer is None).answer = outcome

    @precondition(lambda self: any(self.model.held.values()) or any(self.model.in_flight.values()))
    @rule(pick=st.integers(0, 1), give_back=st.booleans())
    def renew_or_release(self, pick: int, give_back: bool) -> None:
        worker = _pick([w for w in WORKERS if self.model.held[w] or self.model.in_flight[w]], pick)
        if give_back and self.model.held[worker]:
            request = self.model.held[worker].pop(0)
            self.run(self.queue.release(request.id, request.lease_token))
            return
        for request in self.model.held[worker] + [held for held, _ in self.model.in_flight[worker]]:
            self.run(self.queue.renew_lease(request.id, request.lease_token, LEASE))

    # -- time and Slack -------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1.0, 6.0, 61.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(
        channel=st.sampled_from([ALERT_CHANNEL, COMMAND_CHANNEL, LOG_CHANNEL]),
        error=st.sampled_from(
            [
                SlackUnavailable("ratelimited"),
                SlackAuthError("token_revoked"),
                CannotPostHere("channel_not_found"),
                SlackPermanent("invalid_blocks"),
            ]
        ),
    )
    def slack_fails_next(self, channel: str, error: SlackPostError) -> None:
        if channel == LOG_CHANNEL and isinstance(error, SlackPermanent):
            # A log channel that does not exist loses its lines to the log file, by design: not checked here.
            error = SlackUnavailable("ratelimited")
        self.slack.next_error[channel] = error

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def at_most_one_call_that_may_have_reached_partoo_per_request(self) -> None:
        for request_id, calls in self.model.calls.items():
            assert all(call.answer in TRANSIENT for call in calls[:-1]), f"request {request_id}: {calls}"

    @invariant()
    def every_finished_request_has_one_outcome_for_good(self) -> None:
        rows = self.run(_requests(self.engine))
        for row in rows:
            assert row.attempts == len(self.model.calls.get(row.id, [])), f"attempts of request {row.id}"
            if row.id in self.model.outcomes:
                assert row.state == RequestState.DONE, f"request {row.id} reopened"
                assert row.outcome == self.model.outcomes[row.id], f"request {row.id} changed its outcome"
            elif row.state == RequestState.DONE:
                assert row.outcome is not None and row.finished_at is not None
                self.model.outcomes[row.id] = row.outcome
        for message_id, asked in self.model.requests.items():
            assert sum(1 for row in rows if row.message_id == message_id) == asked

    @invariant()
    def every_failure_shows_on_its_alert(self) -> None:
        alerts = self.run(self.alerts.alerts_for(MESSAGES))
        for message_id, failures in self.model.failures.items():
            alert = alerts[message_id]
            assert alert.state.failures == failures
            if self.model.failed_again.get(message_id):
                assert alert.state.phase is lifecycle.Phase.FAILED_AGAIN
                offered = "actions" in json.dumps(alert_message(alert.state).as_kwargs().get("blocks"))
                assert offered == alert.state.can_retry

    @invariant()
    def no_alert_result_or_log_line_is_lost(self) -> None:
        for alert in self.run(self.alerts.alerts_for(MESSAGES)).values():
            waiting = alert.version > alert.posted_version or alert.ts is not None or alert.digest_id is not None
            assert waiting or alert.post_error, f"alert {alert.message_id} neither posted, pending nor recorded"
        roots = [post for channel, thread, post in self.slack.posts if channel == ALERT_CHANNEL and thread is None]
        assert len(roots) == len(set(self.run(_posted_ts(self.engine)))), "an alert or digest posted twice"
        log_text = " ".join(post for channel, _thread, post in self.slack.posts if channel == LOG_CHANNEL)
        for row in self.run(_requests(self.engine)):
            if row.state == RequestState.DONE and row.reported_at is None:
                # Not reported yet: still claimable later (a claim only ever delays it).
                assert row.report_lease_until is None or row.report_lease_until <= self.clock() + 60
        for message_id in MESSAGES:
            logged = sum(
                1 for row in self.run(_requests(self.engine)) if row.message_id == message_id and row.logged_at
            )
            assert log_text.count(f"`{message_id}`") == logged, f"log lines of {message_id}"

    @invariant()
    def an_alert_counts_the_retries_asked_since_it_exists(self) -> None:
        alerts = self.run(self.alerts.alerts_for(MESSAGES))
        for message_id, retries in self.model.alert_retries.items():
            assert alerts[message_id].state.retries == retries

    # -- the end of an example: Slack comes back, Partoo answers, and everything must reach the team ----

    def teardown(self) -> None:
        self.slack.next_error.clear()
        for worker in WORKERS:
            while self.model.in_flight[worker]:
                self.partoo_answers_as(worker, OutcomeKind.ACCEPTED)
        for _ in range(12):
            self.clock.now += LEASE + 1  # leases, backoffs and Slack retries all expire
            while (request := self.run(self.queue.claim_next("drain", LEASE))) is not None:
                if request.in_flight_since is not None:
                    self.run(
                        self.queue.finish_without_call(
                            request.id, request.lease_token, OutcomeKind.UNKNOWN, TAKEN_OVER_DETAIL
                        )
                    )
                    continue
                self.model.held["drain"] = [request]
                self.call_partoo_as("drain")
                self.partoo_answers_as("drain", OutcomeKind.ACCEPTED)
            self.alerter_round()
            self.notifier_round()
        rows = self.run(_requests(self.engine))
        assert all(row.state == RequestState.DONE and row.outcome for row in rows), "a request never ended"
        assert all(row.logged_at is not None for row in rows), "an outcome never reached the log channel"
        unreported = self.run(_unreported(self.engine))
        assert not unreported, f"outcomes never told: {unreported}"
        for alert in self.run(self.alerts.alerts_for(MESSAGES)).values():
            if alert.digest_id is None:
                assert alert.ts is not None or alert.post_error, f"alert {alert.message_id} never posted"
                assert alert.posted_version == alert.version or alert.post_error
            else:
                digest = self.run(self.alerts.digest(alert.digest_id))
                assert digest is not None
                assert digest.ts is not None or digest.post_error, f"digest {digest.id} never posted"


def _pick(workers: list[str], pick: int) -> str:
    return workers[pick % len(workers)]


async def _empty(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in ("retry_attempts", "retry_requests", "retry_batches", "alerts", "alert_digests"):
            await connection.execute(text(f"DELETE FROM {table}"))
        await connection.execute(text("DELETE FROM webhook_events"))


async def _requests(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return list(await connection.execute(select(Request).order_by(Request.id)))


async def _unreported(engine: AsyncEngine) -> list[int]:
    """Finished requests whose outcome was neither posted on its own nor in its batch's summary."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT r.id FROM retry_requests r JOIN retry_batches b ON b.id = r.batch_id "
                "WHERE r.reported_at IS NULL AND (b.total = 1 OR b.summarized_at IS NULL)"
            )
        )
        return [row[0] for row in rows]


async def _posted_ts(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT ts FROM alerts WHERE ts IS NOT NULL UNION ALL SELECT ts FROM alert_digests WHERE ts IS NOT NULL"
            )
        )
        return [row[0] for row in rows]


@pytest.mark.parametrize("backend", ["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.postgres)])
def test_the_lifecycle_holds_under_any_interleaving(backend: str, request: pytest.FixtureRequest) -> None:
    url: str = request.getfixturevalue(backend)
    loop = asyncio.new_event_loop()
    engine = create_engine(url)
    try:
        loop.run_until_complete(migrate(engine))
        Lifecycle.loop = loop
        Lifecycle.engine = engine
        run_state_machine_as_test(
            Lifecycle,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                # A failing interleaving is printed as found: shrinking a slow stateful run can take minutes.
                phases=[Phase.explicit, Phase.generate] if not SHRINK else list(Phase),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()
