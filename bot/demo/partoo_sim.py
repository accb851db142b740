"""A simulated Partoo: the retry endpoint the bot calls, conversations, and signed `message_updated` webhooks.

It behaves as NOTES.md describes Partoo: `POST /v2/messages/{id}/retry` answers 200 only for a message in the
`Failed` state (404 for an id it never sent, 400 otherwise), and the final outcome arrives later as a webhook
signed with Ed25519 (a key generated per run; the bot is given its public half). Knobs set what the next
retries do (delivered, fail again, no answer in time) and make Partoo answer 429 for a while.

`GET /v2/conversations/{id}` answers for the conversations of failures it sent: Open with no issues, unless
the failure came from a scenario (a closed conversation, a channel with setup issues). Setup issues belong to
the channel (a business's Facebook, say), as in Partoo, so every conversation of that channel reports them
from then on; a retry sent there anyway fails again, whatever the next retries are set to do.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.demo.changes import Changes
from bot.demo.customers import BUSINESS_NAMES, PARTNERS, SimulatedMessage, made_up_message, message_updated

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Partoo-Signature-v1"
# A WhatsApp outage: this many failures within OUTAGE_SECONDS, in waves (what a webhook storm looks like).
OUTAGE_FAILURES = 240
OUTAGE_SECONDS = 3.0
OUTAGE_WAVES = 12
WEBHOOK_CONCURRENCY = 20
WEBHOOK_ATTEMPTS = 3
RATE_LIMIT_SECONDS = 15.0
MAX_RETRY_AFTER = 5


class NextRetries(StrEnum):
    """What happens to the messages Partoo accepts to retry from now on."""

    DELIVERED = "delivered"
    FAIL_AGAIN = "fail_again"
    TIME_OUT = "time_out"


@dataclass
class Conversation:
    """What `GET /v2/conversations/{id}` says; Open with no issues unless a scenario says otherwise."""

    status: str = "Open"
    issues: list[str] = field(default_factory=list)

    @property
    def reachable(self) -> bool:
        """Whether a message sent in it can reach the customer."""
        return self.status == "Open" and not self.issues


class SimulatedPartoo:
    """Partoo's API at `{base_url}/partoo/v2`, sending webhooks signed with `webhook_key` to the bot at `bot_url`."""

    def __init__(
        self,
        *,
        api_key: str,
        webhook_key: Ed25519PrivateKey,
        base_url: str,
        bot_url: str,
        changes: Changes,
        report_delay: float = 2.0,
        hold_seconds: float = 8.0,
        rng: random.Random | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.changes = changes
        self.report_delay = report_delay
        self.hold_seconds = hold_seconds  # longer than the bot waits for an answer, in "time out" mode
        self.next_retries = NextRetries.DELIVERED
        self.messages: dict[int, SimulatedMessage] = {}
        self.conversations: dict[int, Conversation] = {}
        # Setup issues of a channel, by (business id, messaging partner): every conversation there has them.
        self.channel_issues: dict[tuple[int, str], list[str]] = {}
        # Answers by HTTP status: to retries (what the page shows), and to the bot's conversation checks.
        self.answers: Counter[int] = Counter()
        self.check_answers: Counter[int] = Counter()
        # The ids of the messages Partoo was asked to retry (past the key and rate checks), one entry per call:
        # how the page (and a test) sees that nothing was sent twice, and that a stopped retry was never sent.
        self.retried_ids: list[int] = []
        self.webhooks_sent = 0
        self._rng = rng or random.Random()  # noqa: S311 - made-up customers, not secrets
        # Above the customer's message in #support (workspace.CUSTOMER_MESSAGE_ID), so that no failure takes its id.
        self._next_id = self._rng.randint(48_100, 49_000)
        self._rate_limited_until = 0.0
        self._key = webhook_key
        self._http = httpx.AsyncClient(base_url=bot_url, timeout=10.0, trust_env=False)
        self._sending = asyncio.Semaphore(WEBHOOK_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/partoo/v2"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/partoo/v2/messages/{message_id}/retry", self._retry),
            web.get("/partoo/v2/conversations/{conversation_id}", self._conversation),
        ]

    def stop_sending(self) -> None:
        """Send no more webhooks: the bot is stopping."""
        self._stopping = True

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    # -- scenarios -------------------------------------------------------------------------------------------

    def fail_one(
        self, conversation: Conversation | None = None, *, partner: str | None = None, business_id: int | None = None
    ) -> SimulatedMessage:
        """A random customer's message to `business_id` fails on `partner` (default: random ones); Partoo reports it.

        `conversation` is what Partoo then says about its conversation (default: Open, no issues); its
        issues become the channel's, as setup issues are in Partoo.
        """
        message = self._new_failure(partner or self._rng.choice(PARTNERS), business_id)
        if conversation is not None:
            self.conversations[message.conversation_id] = conversation
            if conversation.issues:
                self.channel_issues[(message.business_id, message.partner)] = list(conversation.issues)
        self._background(self._report(message))
        return message

    def unreported_failure(self, message_id: int, partner: str = "Whatsapp") -> SimulatedMessage:
        """A message that failed without a webhook reaching the bot: only a customer's complaint tells of it."""
        message = made_up_message(self._rng, message_id, partner)
        self.messages[message.id] = message
        return message

    def outage(self, count: int = OUTAGE_FAILURES, seconds: float = OUTAGE_SECONDS) -> None:
        """WhatsApp goes down: `count` messages fail within `seconds`, reported in the background."""
        failures = [self._new_failure("Whatsapp") for _ in range(count)]
        self._background(self._report_waves(failures, seconds))

    def set_next_retries(self, behaviour: NextRetries) -> None:
        self.next_retries = behaviour
        self.changes.bump()

    def rate_limit(self, seconds: float = RATE_LIMIT_SECONDS) -> None:
        """Answer 429 to every call for `seconds`."""
        self._rate_limited_until = time.monotonic() + seconds
        self.changes.bump()

    def status(self) -> dict[str, Any]:
        """What the page's control panel shows."""
        recent = [m for m in reversed(self.messages.values()) if m.status == "Failed"][:5]
        return {
            "next_retries": self.next_retries.value,
            "rate_limited_for": max(0, math.ceil(self._rate_limited_until - time.monotonic())),
            "retry_calls": sum(self.answers.values()),
            "retried_ids": self.retried_ids,
            "answers": {str(status): count for status, count in sorted(self.answers.items())},
            "conversation_checks": sum(self.check_answers.values()),
            "webhooks_sent": self.webhooks_sent,
            "failed": [{"id": m.id, "consumer": m.consumer, "partner": m.partner} for m in recent],
        }

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def _retry(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return self._answer(*refusal)
        raw_id = request.match_info["message_id"]
        message = self.messages.get(int(raw_id)) if raw_id.isdigit() else None
        if message is not None:
            self.retried_ids.append(message.id)
        if message is None:
            return self._answer(404, {"error": {"json": "Resource not found"}})
        if message.status != "Failed":
            return self._answer(400, {"errors": {"json": {"message_id": ["Message is not in a failed state"]}}})
        message.status = "Sending"
        behaviour = self.next_retries
        # Partoo accepts a retry in a conversation nobody can reach (a "Retry anyway"), and it fails again.
        unreachable = not self._conversation_of(message).reachable
        final = "Failed" if behaviour is NextRetries.FAIL_AGAIN or unreachable else "Success"
        if behaviour is NextRetries.TIME_OUT:
            # Partoo acts on the retry but answers too late: the bot records "no answer" and never resends.
            self._background(self._report(message, final, delay=self.hold_seconds + self.report_delay))
            await asyncio.sleep(self.hold_seconds)
        else:
            self._background(self._report(message, final, delay=self.report_delay))
        return self._answer(200, {"status": "success"})

    async def _conversation(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return self._answer(*refusal, counter=self.check_answers)
        raw_id = request.match_info["conversation_id"]
        known = next((m for m in self.messages.values() if str(m.conversation_id) == raw_id), None)
        if known is None:
            return self._answer(404, {"error": {"json": "Resource not found"}}, counter=self.check_answers)
        state = self._conversation_of(known)
        body = {
            "id": known.conversation_id,
            "consumer_name": known.consumer,
            "status": state.status,
            "issues": state.issues,
            "is_expired": state.status == "Closed",
            "is_solved": False,
            "messaging_partner": known.partner,
            "business": _business(known.business_id),
        }
        return self._answer(200, body, counter=self.check_answers)

    def _conversation_of(self, message: SimulatedMessage) -> Conversation:
        """What Partoo knows of the conversation of `message`, its channel's setup issues included."""
        state = self.conversations.get(message.conversation_id, Conversation())
        issues = state.issues or self.channel_issues.get((message.business_id, message.partner), [])
        return Conversation(state.status, list(issues))

    def _refusal(self, request: web.Request) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """A 401 for a wrong key, or a 429 while rate limited; None when the call may go ahead."""
        if request.headers.get("x-APIKey") != self.api_key:
            return 401, {"errors": {"authentication": "User not authenticated"}}, {}
        left = self._rate_limited_until - time.monotonic()
        if left > 0:
            retry_after = str(min(MAX_RETRY_AFTER, math.ceil(left)))
            return 429, {"error": "Too Many Requests"}, {"Retry-After": retry_after}
        return None

    def _answer(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        counter: Counter[int] | None = None,
    ) -> web.Response:
        """The response; counted with the retries' answers unless `counter` says otherwise."""
        (self.answers if counter is None else counter)[status] += 1
        self.changes.bump()
        return web.json_response(body, status=status, headers=headers)

    # -- webhooks --------------------------------------------------------------------------------------------

    def _new_failure(self, partner: str, business_id: int | None = None) -> SimulatedMessage:
        self._next_id += self._rng.randint(1, 9)
        message = made_up_message(self._rng, self._next_id, partner, business_id)
        self.messages[message.id] = message
        return message

    async def _report_waves(self, failures: list[SimulatedMessage], seconds: float) -> None:
        """Report `failures` in waves spread over `seconds` (slower only if the bot takes longer to store them)."""
        wave = max(1, math.ceil(len(failures) / OUTAGE_WAVES))
        for start in range(0, len(failures), wave):
            for message in failures[start : start + wave]:
                self._background(self._report(message))
            await asyncio.sleep(seconds / OUTAGE_WAVES)

    async def _report(self, message: SimulatedMessage, status: str = "Failed", *, delay: float = 0.0) -> None:
        """Send the bot a signed `message_updated` webhook; like Partoo, deliver again after a 5xx."""
        await asyncio.sleep(delay)
        message.status = status
        body = json.dumps(message_updated(message)).encode()
        signature = base64.b64encode(self._key.sign(body)).decode()
        headers = {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}
        async with self._sending:
            for attempt in range(WEBHOOK_ATTEMPTS):
                if attempt:
                    await asyncio.sleep(2**attempt)
                if self._stopping:
                    return
                try:
                    answer = await self._http.post("/partoo/webhook", content=body, headers=headers)
                except httpx.TransportError as error:
                    log.warning("demo webhook for message %s not delivered: %s", message.id, type(error).__name__)
                    continue
                if answer.status_code < 500:
                    self.webhooks_sent += 1
                    self.changes.bump()
                    return

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # a reference until done, or the task may be collected mid-way
        task.add_done_callback(self._tasks.discard)


def _business(business_id: int) -> dict[str, Any]:
    """The `business` object of a conversation, as Partoo documents it (a made-up business has no name)."""
    name, city = BUSINESS_NAMES.get(business_id, (None, None))
    return {"id": business_id, "name": name, "city": city, "country": "FR"}
