"""The notifier: everything the retry service tells Slack, driven by what is in the database.

Because it works from stored state (not from the worker's memory), answers survive a restart and a
Slack outage: whatever could not be posted is found again on the next round and posted then.
Each post is claimed first with a conditional UPDATE, and the claim is renewed while Slack answers
(slack_sdk may wait out a long Retry-After), so several replicas never post it twice. Slack's failures
are handled by kind (bot.platform.slack): transient and auth failures keep the post for later; a
permanent one is logged with the outcome, which stays in the retry log.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.defaults import (
    LOG_CHANNEL_INTERVAL,
    LOG_CLAIM_SECONDS,
    NOTIFIER_CLAIM_SECONDS,
    POLL_INTERVAL,
    POSTS_WAITING_NOTE,
    PROGRESS_INTERVAL,
)
from bot.domain.retry_requests import BatchView, RequestView
from bot.platform.leases import ClaimLost, Held, while_claimed
from bot.platform.loop import PollingLoop
from bot.platform.slack import (
    CannotPostHere,
    ChannelBusy,
    SlackAuthError,
    SlackPermanent,
    SlackPoster,
    SlackPostError,
    SlackUnavailable,
)
from bot.retries import log_messages, messages
from bot.retries.grouped_outcomes import OutcomeGroups
from bot.retries.retry_log import RetryLog
from bot.retries.store import RetryQueue

log = logging.getLogger(__name__)

# A one-message batch's root is posted only in a slot free now; a bulk's waits for its slot (see announce).
ROOT_WAIT = 0.0
# A bulk whose root could not be posted (channel still busy, Slack down) tries again after this; its
# retries wait meanwhile.
BULK_ROOT_RETRY_SECONDS = 1.0
# Outcomes read per round: enough for a few full grouped posts in a burst (bot.retries.grouped_outcomes).
UNREPORTED_PER_ROUND = 200
# A claim is renewed three times per lease while its Slack call runs.
_RENEW_EVERY = NOTIFIER_CLAIM_SECONDS / 3


class Notifier(PollingLoop):
    """Announces batches, reports outcomes, updates progress and mirrors outcomes to the log channel."""

    name = "notifier"

    def __init__(
        self,
        queue: RetryQueue,
        poster: SlackPoster,
        *,
        log_channel: str | None = None,
        log_interval: float = LOG_CHANNEL_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
        on_announced: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(poll_interval)
        self.queue = queue
        # Polled every round: reads only the batches whose progress or summary is due.
        self.news = RetryLog(queue.engine, clock=queue.clock)
        self.poster = poster
        self.grouped = OutcomeGroups(queue, poster)
        self.log_channel = log_channel
        self.log_interval = log_interval
        self.on_announced = on_announced
        self.clock = clock
        self._last_log_post = 0.0

    async def tick(self) -> bool:
        """One round: announce, report, refresh progress, mirror to the log channel."""
        waiting: dict[str, int] = {}  # posts queued per channel, read once a round, counted down as they go
        while (claimed := await self.queue.claim_announcement(NOTIFIER_CLAIM_SECONDS)) is not None:
            batch, held = claimed
            if batch.channel_id not in waiting:
                waiting[batch.channel_id] = await self.news.waiting_posts(batch.channel_id)
            waiting[batch.channel_id] -= 1  # this one
            await self.announce(batch, held, waiting=waiting[batch.channel_id])
        # Outcomes that would each be a new message in one place go out together; the others alone.
        for request in await self.grouped.report(await self.queue.unreported(limit=UNREPORTED_PER_ROUND)):
            await self.report(request)
        for batch in await self.news.batches_with_news():
            await self.refresh(batch)
        if self.log_channel and self.clock() - self._last_log_post >= self.log_interval:
            await self.mirror_to_log_channel()
        return False

    async def announce(self, batch: BatchView, held: Held, *, waiting: int = 0) -> None:
        """Post the root message of a command; fall back to response_url where the bot cannot post.

        With many posts queued behind the channel's pace (`waiting`), the root says so: its outcome may take
        minutes, and silence would read as a bot that forgot.

        Workers claim only requests of announced batches, so whether a batch may run without its root is
        decided here, once, by what the root carries:
        - one message: Partoo's retry does not wait for Slack's pace. With no slot free now the root is not
          posted, the retry goes ahead, and its outcome is posted whole, one post instead of two, when the
          channel has a slot.
        - a bulk (`BatchView.is_bulk`): the root is its progress message and carries Stop, the only way to
          stop it. It waits for the channel's slot like any post (at most POST_WAIT_LIMIT), and if the
          channel is still busy or Slack is down, the batch stays unannounced and is tried again: its retries
          wait for the root (a few seconds at one post a second), they never run without it.
        """
        requests = await self.queue.batch_requests(batch.id)
        message_ids = [request.message_id for request in requests]
        root = messages.batch_root(
            batch, message_ids, waiting=waiting if waiting >= POSTS_WAITING_NOTE else 0, requests=requests
        )
        root_ts: str | None = None
        uses_response_url = False

        renew = self.queue.announcements.renewer(held, NOTIFIER_CLAIM_SECONDS)
        try:
            # A message shortcut's batch answers in the thread of the message it was used on.
            root_ts = await while_claimed(
                self.poster.post(
                    batch.channel_id,
                    root,
                    thread_ts=batch.thread_ts,
                    # None: the poster's own limit, as every other post waits.
                    max_wait=None if batch.is_bulk else ROOT_WAIT,
                ),
                renew,
                _RENEW_EVERY,
                give_back=lambda: self.queue.announcements.release(held),
            )
        except ClaimLost:
            log.warning("batch %s: another replica took its announcement over", batch.id)
            return
        except CannotPostHere as error:
            log.info("cannot post in %s (%s); answering through response_url", batch.channel_id, error.error)
            uses_response_url = batch.response_url is not None
        except SlackPostError as error:
            if batch.is_bulk and not isinstance(error, SlackPermanent):
                # Its Stop lives on the root: the bulk waits unannounced (its retries unclaimed) and is tried again.
                log.info("root message of bulk batch %s not posted yet (%s); its retries wait", batch.id, error.error)
                await self.queue.retry_announcement_in(held, BULK_ROOT_RETRY_SECONDS)
                return
            # Partoo's retry must not wait for Slack: the outcome is posted, whole, once Slack answers again.
            # A busy channel is the expected case in a burst, not a problem worth a warning.
            level = logging.INFO if isinstance(error, ChannelBusy) else logging.WARNING
            log.log(level, "could not post the root message of batch %s: %s", batch.id, error.error)
        announced = await self.queue.mark_announced(
            held,
            root_channel=batch.channel_id if root_ts else None,
            root_ts=root_ts,
            uses_response_url=uses_response_url,
        )
        if not announced:
            # Our post outlived the lease and another replica took the batch over: its root message counts.
            log.warning("batch %s: announced by another replica meanwhile; ours is not recorded", batch.id)
            return
        self.on_announced()

    async def report(self, request: RequestView) -> None:
        """Tell the outcome of a one-message batch in its thread (or through response_url)."""
        held = await self.queue.claim_report(request.id, NOTIFIER_CLAIM_SECONDS)
        if held is None:
            return
        batch = await self.queue.batch(request.batch_id)
        renew = self.queue.reports.renewer(held, NOTIFIER_CLAIM_SECONDS)
        try:
            await while_claimed(
                self._deliver_single(batch, request),
                renew,
                _RENEW_EVERY,
                give_back=lambda: self.queue.reports.release(held),
            )
        except ClaimLost:
            log.warning("outcome of Partoo message %s: another replica took the post over", request.message_id)
            return
        except (SlackUnavailable, SlackAuthError) as error:
            log.warning(
                "Slack cannot take it now (%s); outcome of Partoo message %s (%s) will be posted later",
                error.error,
                request.message_id,
                request.outcome,
            )
            await self.queue.retry_report_in(held, self.poster.pause_seconds)
            return
        except SlackPostError as error:
            log.error(
                "could not post the outcome of Partoo message %s (%s: %s) for %s: %s",
                request.message_id,
                request.outcome,
                request.detail,
                batch.requested_by,
                error.error,
            )
        if not await self.queue.mark_reported(held):
            log.warning("outcome of Partoo message %s: another replica took the post over", request.message_id)

    async def _deliver_single(self, batch: BatchView, request: RequestView) -> None:
        if batch.alert_message_id is not None and batch.root_channel and batch.root_ts:
            # The alert itself is re-rendered by the alerter; its thread tells who retried and what Partoo said.
            await self.poster.post(
                batch.root_channel, messages.alert_outcome_reply(batch, request), thread_ts=batch.root_ts
            )
            return
        if batch.root_channel and batch.root_ts:
            thread = batch.thread_ts or batch.root_ts  # the root may itself be a reply in a thread
            # The root shows the outcome first: chat.update does not wait for the channel's posting pace, so
            # the outcome is in the channel even while its thread reply waits for a slot.
            with contextlib.suppress(SlackPostError):
                await self.poster.update(batch.root_channel, batch.root_ts, messages.single_finished(batch, request))
            await self.poster.post(batch.root_channel, messages.outcome_reply(request), thread_ts=thread)
            return
        await self._deliver_whole(batch, [request])

    async def _deliver_whole(self, batch: BatchView, requests: list[RequestView]) -> None:
        """No root message: one self-contained message, in the channel or through response_url."""
        message = messages.response_url_outcome(batch, requests)
        if not batch.uses_response_url:
            try:
                # A shortcut's batch stays in the thread it was used in, root message or not.
                await self.poster.post(batch.channel_id, message, thread_ts=batch.thread_ts)
                return
            except CannotPostHere:
                if not batch.response_url:
                    raise
        if not batch.response_url:
            raise CannotPostHere("no_response_url")
        await self.poster.respond(batch.response_url, message, in_channel=True)

    async def refresh(self, batch: BatchView) -> None:
        """Update a many-message batch's progress in place; post its summary once all are done."""
        requests = await self.queue.batch_requests(batch.id)
        done = sum(1 for request in requests if request.finished_at is not None)
        if done == len(requests):
            await self._summarize(batch, requests)
            return
        if not (batch.root_channel and batch.root_ts) or done == batch.progress_shown or batch.digest_id:
            return  # a digest shows its own progress, rendered by the alerter
        if batch.progress_shown_at and self.clock() - batch.progress_shown_at < PROGRESS_INTERVAL:
            return
        message_ids = [request.message_id for request in requests]
        try:
            await self.poster.update(
                batch.root_channel, batch.root_ts, messages.batch_root(batch, message_ids, done, requests=requests)
            )
        except SlackPostError as error:
            log.info("progress update of batch %s skipped: %s", batch.id, error.error)
        await self.queue.note_progress(batch.id, done)

    async def _summarize(self, batch: BatchView, requests: list[RequestView]) -> None:
        held = await self.queue.claim_summary(batch.id, NOTIFIER_CLAIM_SECONDS)
        if held is None:
            return
        renew = self.queue.summaries.renewer(held, NOTIFIER_CLAIM_SECONDS)
        try:
            await while_claimed(
                self._post_summary(batch, requests),
                renew,
                _RENEW_EVERY,
                give_back=lambda: self.queue.summaries.release(held),
            )
        except ClaimLost:
            log.warning("summary of batch %s: another replica took the post over", batch.id)
            return
        except (SlackUnavailable, SlackAuthError) as error:
            log.warning("Slack unavailable (%s); summary of batch %s will be posted later", error.error, batch.id)
            await self.queue.retry_summary_in(held, self.poster.pause_seconds)
            return
        except SlackPostError as error:
            counts = {str(r.message_id): str(r.outcome) for r in requests}
            log.error("could not post the summary of batch %s (%s): %s", batch.id, counts, error.error)
        if not await self.queue.mark_summarized(held, [request.id for request in requests]):
            log.warning("summary of batch %s: another replica took the post over", batch.id)

    async def _post_summary(self, batch: BatchView, requests: list[RequestView]) -> None:
        if batch.root_channel and batch.root_ts:
            if batch.digest_id is None:
                await self.poster.update(batch.root_channel, batch.root_ts, messages.batch_summary(batch, requests))
            for reply in messages.problems_replies(requests):
                await self.poster.post(batch.root_channel, reply, thread_ts=batch.thread_ts or batch.root_ts)
        else:
            await self._deliver_whole(batch, requests)

    async def mirror_to_log_channel(self) -> None:
        """One post per round listing the outcomes finished since the last one.

        What this keeps: every outcome reaches the log channel at least once, and is marked logged only
        once Slack accepted the post that shows it (fenced: a replica taken over marks nothing). Stopped
        mid-post (SIGTERM cancels the round), the lines are given back; killed, their lease runs out and
        another round posts them. A line is posted twice only if the bot dies (or loses its lease) between
        Slack's acceptance and the mark, a window of one database write.
        """
        assert self.log_channel is not None
        self._last_log_post = self.clock()
        claimed = await self.queue.claim_log_lines(LOG_CLAIM_SECONDS)
        held = {request.id: lease for request, lease in claimed}
        posts = log_messages.log_channel_posts([request for request, _lease in claimed])
        for number, (message, shown) in enumerate(posts):
            mine = [held[request.id] for request in shown]
            try:
                # Stopped mid-post, the unposted lines are given back at once rather than when the lease ends.
                await while_claimed(
                    self.poster.post(self.log_channel, message),
                    self._log_renewer(mine),
                    LOG_CLAIM_SECONDS / 3,
                    give_back=functools.partial(self._give_back, posts[number:], held),
                )
            except ClaimLost:
                log.warning("log channel post: another replica took %d outcomes over", len(shown))
                await self._give_back(posts[number + 1 :], held)
                return
            except (SlackUnavailable, SlackAuthError) as error:
                log.warning("log channel post delayed (%s); outcomes will be mirrored later", error.error)
                await self._give_back(posts[number:], held)
                return
            except SlackPostError as error:
                log.error(
                    "could not mirror %d outcomes to the log channel: %s (%s)",
                    len(shown),
                    error.error,
                    ", ".join(f"{r.message_id}={r.outcome}" for r in shown),
                )
            if await self.queue.mark_logged(mine) < len(mine):
                # Taken over after Slack accepted the post: the new holder posts those lines again (the one
                # duplicate the lease allows, see the docstring).
                log.warning("log channel: %d outcomes were taken over while posted", len(mine))

    def _log_renewer(self, mine: list[Held]) -> Callable[[], Awaitable[bool]]:
        async def renew() -> bool:
            # Every line the post shows must still be ours: if one was taken over, its new holder posts it.
            renewed = await self.queue.log_lines.write(
                mine, {"log_lease_until": self.queue.clock() + LOG_CLAIM_SECONDS}
            )
            return renewed == len(mine)

        return renew

    async def _give_back(self, posts: Sequence[tuple[object, Sequence[RequestView]]], held: dict[int, Held]) -> None:
        await self.queue.release_log_lines([held[request.id] for _message, shown in posts for request in shown])
