"""Talking to Slack: a Web API client with slack_sdk's retry handlers, and a poster with narrow errors.

Every Slack failure, of the bot's own calls and of Bolt's alike, is narrowed here, through one table of
Slack's error codes, into one of three kinds that each call site handles the same way:

    SlackPostError
    ├── SlackUnavailable   transient (429, 5xx, message_limit_exceeded, no connection), still so after the
    │   │                  retry handlers gave up: keep the work and try again with a backoff
    │   └── ChannelBusy    not sent: the channel's posting pace has no slot within POST_WAIT_LIMIT
    ├── SlackAuthError     the token is wrong, revoked or its account inactive (a token rotation, say): keep
    │                      the work, try again, and report the problem in /readyz until a call succeeds
    └── SlackPermanent     this message can never be posted as it is: record why, log it, show it in
        │                  `status`; never dropped silently, never tried on every poll
        ├── CannotPostHere   the bot is not in the channel, or it is gone: answer through response_url
        └── MessageGone      the message to update no longer exists
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.defaults import POST_WAIT_LIMIT, SLACK_BACKOFF, SLACK_RETRY_SECONDS
from bot.platform.pace import ChannelPaces, SharedPace

log = logging.getLogger(__name__)


class Postable(Protocol):
    """What the bot posts: anything that renders to chat.postMessage's `text` and `blocks` arguments.

    A protocol, so that this client never imports the message builders (they sit above it).
    """

    def as_kwargs(self) -> dict[str, Any]: ...


# How often each slack_sdk handler retries before the poster reports SlackUnavailable.
RATE_LIMIT_RETRIES = 4
SERVER_ERROR_RETRIES = 2
CONNECTION_ERROR_RETRIES = 2
WEB_API_TIMEOUT = 10


class SlackPostError(Exception):
    """Slack refused or failed a call; `error` is Slack's error code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class SlackUnavailable(SlackPostError):
    """Transient: try again later."""


class ChannelBusy(SlackUnavailable):
    """Nothing was sent: the channel's shared posting pace is booked further ahead than a post may wait."""


class SlackAuthError(SlackPostError):
    """The token does not work (now): keep the work and try again; /readyz shows it meanwhile."""


class SlackPermanent(SlackPostError):
    """This message cannot be posted as it is, however often it is tried."""


class CannotPostHere(SlackPermanent):
    pass


class MessageGone(SlackPermanent):
    pass


# Codes not listed are permanent for the message: recorded and shown rather than retried forever.
_ERRORS: dict[str, type[SlackPostError]] = {
    "ratelimited": SlackUnavailable,
    "message_limit_exceeded": SlackUnavailable,
    "fatal_error": SlackUnavailable,
    "internal_error": SlackUnavailable,
    "service_unavailable": SlackUnavailable,
    "request_timeout": SlackUnavailable,
    "invalid_auth": SlackAuthError,
    "not_authed": SlackAuthError,
    "token_revoked": SlackAuthError,
    "token_expired": SlackAuthError,
    "account_inactive": SlackAuthError,
    "missing_scope": SlackAuthError,
    "not_in_channel": CannotPostHere,
    "channel_not_found": CannotPostHere,
    "is_archived": CannotPostHere,
    "restricted_action": CannotPostHere,
    "restricted_action_read_only_channel": CannotPostHere,
    "cannot_reply_to_message": CannotPostHere,
    "message_not_found": MessageGone,
    "cant_update_message": MessageGone,
    "edit_window_closed": MessageGone,
    "thread_not_found": MessageGone,
    "invalid_blocks": SlackPermanent,
    "msg_too_long": SlackPermanent,
}


def classify(error: SlackApiError) -> SlackPostError:
    """The narrow error class for a SlackApiError, found through the table."""
    data = error.response.data
    # A 5xx from Slack (or a proxy) may carry an HTML or plain-text body instead of JSON.
    code = str((data.get("error") if isinstance(data, dict) else None) or f"http_{error.response.status_code}")
    if error.response.status_code == 429 or error.response.status_code >= 500:
        return SlackUnavailable(code)
    return _ERRORS.get(code, SlackPermanent)(code)


def narrow(error: BaseException) -> SlackPostError | None:
    """Any exception of a Slack call (slack_sdk's or the network's) as its narrow class; None if not Slack's."""
    if isinstance(error, SlackPostError):
        return error
    if isinstance(error, SlackApiError):
        return classify(error)
    if isinstance(error, aiohttp.ClientError | TimeoutError):
        return SlackUnavailable(type(error).__name__)
    return None


class _ProportionalJitter(Jitter):
    """Up to twice the backoff factor more: slack_sdk's RandomJitter (up to 1 s) at its factor of 0.5."""

    def __init__(self, backoff: float) -> None:
        self.most = 2 * backoff

    def recalculate(self, duration: float) -> float:
        return duration + random.random() * self.most  # noqa: S311 - jitter, not cryptography


def retry_handlers(backoff: float = SLACK_BACKOFF) -> list[Any]:
    """slack_sdk's handlers: Retry-After for 429s, `backoff` x 2^n seconds and jitter for 5xx and lost connections."""
    waits = BackoffRetryIntervalCalculator(backoff, _ProportionalJitter(backoff))
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES, interval_calculator=waits),
        AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_ERROR_RETRIES, interval_calculator=waits),
    ]


def build_web_client(token: str, base_url: str, *, backoff: float = SLACK_BACKOFF) -> AsyncWebClient:
    """The Web API client every part of the bot shares (Bolt included)."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=WEB_API_TIMEOUT,
        retry_handlers=retry_handlers(backoff),
        logger=logging.getLogger("bot.slack.web"),
    )


class SlackPoster:
    """Posts, updates and answers through response_url, raising the narrow SlackPostError classes.

    Every chat.postMessage first takes a slot of its channel's pace, shared by every replica (Slack counts
    every post in a channel against about one a second), so no caller can post around it. The wait is
    bounded (`max_wait`, then ChannelBusy) and happens here, before the call, where no caller holds a
    transaction. chat.update is not paced by channel: Slack limits it per workspace and method (Tier 3, 50+
    a minute), not by the channel's posting limit, and holding progress updates behind a channel's queue of
    posts would hide the very progress that says the queue is there. Its rare 429 is waited out by slack_sdk.

    It also remembers whether Slack last refused the token (`auth_problem`, for /readyz), until a call
    succeeds again.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        paces: ChannelPaces,
        *,
        max_wait: float = POST_WAIT_LIMIT,
        pause_seconds: float = SLACK_RETRY_SECONDS,
        on_error: Callable[[str], None] = lambda code: None,
    ) -> None:
        self.client = client
        self.paces = paces
        self.max_wait = max_wait
        self.pause_seconds = pause_seconds
        self.on_error = on_error
        self.auth_problem: str | None = None
        # Set when the bot stops: a post still waiting for its slot gives up (ChannelBusy) instead of holding
        # the stop for up to `max_wait`; a call already made to Slack finishes.
        self.stopping = asyncio.Event()

    def note(self, error: SlackPostError) -> None:
        """Count a narrowed failure, and remember an auth failure until a call succeeds."""
        self.on_error(error.error)
        if isinstance(error, SlackAuthError):
            self.auth_problem = f"Slack refuses the bot token ({error.error}); posts are kept until it works"

    def bolt_error_handler(self) -> Callable[[Exception], Awaitable[None]]:
        """Bolt's error handler: a listener's Slack failure is narrowed and noted like the bot's own."""

        async def handle(error: Exception) -> None:
            slack_error = narrow(error)
            if slack_error is None:
                log.error("a Slack listener failed", exc_info=error)
                return
            self.note(slack_error)
            level = logging.WARNING if isinstance(slack_error, SlackUnavailable) else logging.ERROR
            log.log(level, "a Slack listener's call failed: %s (%s)", slack_error.error, type(slack_error).__name__)

        return handle

    async def post(
        self, channel: str, message: Postable, *, thread_ts: str | None = None, max_wait: float | None = None
    ) -> str:
        """Post a message (in a thread when thread_ts is given) in the channel's pace and return its ts.

        Raises ChannelBusy, having sent nothing, when the channel's next slot is more than `max_wait` away
        (the poster's own limit unless the caller gives a shorter one).
        """
        pace = await self.paces.for_channel(channel)
        if not await self._slot_unless_stopping(pace, self.max_wait if max_wait is None else max_wait):
            raise ChannelBusy("channel_busy")
        try:
            response = await self._call("chat_postMessage", channel=channel, thread_ts=thread_ts, **message.as_kwargs())
        except SlackUnavailable:
            # slack_sdk's own retries gave up (429s or 5xx): every replica's posts there pause for a while.
            await pace.pause(self.pause_seconds)
            raise
        return str(response["ts"])

    async def _slot_unless_stopping(self, pace: SharedPace, max_wait: float) -> bool:
        """Wait for the channel's slot; False, having sent nothing, if none comes within `max_wait` or the bot
        stops first (every caller keeps a ChannelBusy post and tries it later, or the next start does)."""
        if self.stopping.is_set():
            return False
        slot = asyncio.ensure_future(pace.wait_for_slot_within(max_wait))
        stopping = asyncio.ensure_future(self.stopping.wait())
        try:
            done, _pending = await asyncio.wait({slot, stopping}, return_when=asyncio.FIRST_COMPLETED)
            return slot in done and slot.result()
        finally:
            stopping.cancel()
            if not slot.done():
                slot.cancel()  # the slot reserved is left unused: one second of the channel's pace, no more

    async def update(self, channel: str, ts: str, message: Postable) -> None:
        await self._call("chat_update", channel=channel, ts=ts, **message.as_kwargs())

    async def permalink(self, channel: str, ts: str) -> str | None:
        try:
            response = await self._call("chat_getPermalink", channel=channel, message_ts=ts)
        except SlackPostError:
            return None
        return str(response["permalink"])

    async def respond(self, response_url: str, message: Postable, *, in_channel: bool) -> None:
        """Answer through a command's or click's response_url (works where the bot is not a member)."""
        webhook = AsyncWebhookClient(response_url, timeout=WEB_API_TIMEOUT, retry_handlers=self.client.retry_handlers)
        try:
            response = await webhook.send(
                response_type="in_channel" if in_channel else "ephemeral", **message.as_kwargs()
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SlackUnavailable(type(error).__name__) from error
        if response.status_code == 429 or response.status_code >= 500:
            raise SlackUnavailable(f"http_{response.status_code}")
        if response.status_code != 200:
            # 404 used_url / expired_url: the 5 answers or 30 minutes Slack allows are spent.
            raise CannotPostHere(response.body or f"http_{response.status_code}")

    async def _call(self, method: str, **arguments: Any) -> Any:
        arguments = {key: value for key, value in arguments.items() if value is not None}
        try:
            response = await getattr(self.client, method)(**arguments)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
            slack_error = narrow(error)
            assert slack_error is not None
            self.note(slack_error)
            raise slack_error from error
        self.auth_problem = None
        return response
