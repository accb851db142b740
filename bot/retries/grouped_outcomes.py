"""Outcomes grouped into one post where many wait for the same place in a channel.

Slack takes about one post a second per channel. In a burst of commands into one channel most get no root
message (the notifier does not hold Partoo's retry for a posting slot, see Notifier.announce), and each outcome
would then need a post of its own: 2,000 commands, over half an hour of posts, one a second. Where several such
outcomes wait for the same place (a channel, or the thread a shortcut was used in), one post shows them all,
each line naming who asked, the message and what Partoo said, as the post of one outcome would: every outcome is
still in the channel, in about a minute rather than an hour, as bots under a rate limit group their news.

An outcome with a root message (its thread), an alert's (the alert's thread) or one answered through
response_url keeps its own post: only outcomes that would each be a new root message are grouped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.defaults import GROUP_OUTCOMES_FROM, GROUPED_OUTCOMES_MAX, NOTIFIER_CLAIM_SECONDS
from bot.domain.retry_requests import BatchView, RequestView
from bot.platform.leases import ClaimLost, Held, while_claimed
from bot.platform.slack import CannotPostHere, SlackAuthError, SlackPoster, SlackPostError, SlackUnavailable
from bot.rendering import mrkdwn
from bot.rendering.message import OUTCOME_EMOJI, SlackMessage
from bot.retries.messages import MAX_BLOCKS, _fallback, _line_sections, outcome_sentence
from bot.retries.store import RetryQueue

log = logging.getLogger(__name__)

Place = tuple[str, str | None]  # (channel, thread_ts): where the outcome's own post would go


def grouped_outcomes(outcomes: Sequence[tuple[BatchView, RequestView]]) -> SlackMessage:
    """One message telling several people the outcomes of the retries they asked for (pure)."""
    heading = (
        f":inbox_tray: {len(outcomes)} retries asked here are done. Slack takes about one post a second in a"
        " channel, so their outcomes come together:"
    )
    lines = [
        f"{mrkdwn.user(batch.requested_by)} asked to retry Partoo message `{request.message_id}`: "
        f"{OUTCOME_EMOJI[request.outcome]} {outcome_sentence(request)}"
        for batch, request in outcomes
    ]
    sections, _shown = _line_sections(lines, MAX_BLOCKS - 1)
    return SlackMessage(text=_fallback(heading, lines), blocks=[*_line_sections([heading], 1)[0], *sections])


def place_of(batch: BatchView) -> Place | None:
    """Where an outcome would be posted as a new message of its own; None when it has a thread or another way."""
    if batch.alert_message_id is not None or batch.uses_response_url or (batch.root_channel and batch.root_ts):
        return None
    return (batch.channel_id, batch.thread_ts)


class OutcomeGroups:
    """Posts, in one message per place, the outcomes that would each be a new message there."""

    def __init__(self, queue: RetryQueue, poster: SlackPoster) -> None:
        self.queue = queue
        self.poster = poster

    async def report(self, requests: Sequence[RequestView]) -> list[RequestView]:
        """Post the groups of outcomes found among `requests`; return the ones left for a post of their own."""
        alone: list[RequestView] = []
        places: dict[Place, list[tuple[BatchView, RequestView]]] = {}
        for request in requests:
            batch = await self.queue.batch(request.batch_id)
            place = place_of(batch)
            if place is None:
                alone.append(request)
            else:
                places.setdefault(place, []).append((batch, request))
        for place, outcomes in places.items():
            if len(outcomes) < GROUP_OUTCOMES_FROM:
                alone.extend(request for _batch, request in outcomes)
                continue
            for start in range(0, len(outcomes), GROUPED_OUTCOMES_MAX):
                alone.extend(await self._post(place, outcomes[start : start + GROUPED_OUTCOMES_MAX]))
        return alone

    async def _post(self, place: Place, outcomes: list[tuple[BatchView, RequestView]]) -> list[RequestView]:
        """Claim the outcomes, post them as one message, mark them reported; return those left to post alone."""
        by_id = {request.id: (batch, request) for batch, request in outcomes}
        held = await self.queue.claim_reports(list(by_id), NOTIFIER_CLAIM_SECONDS)
        if not held:
            return []  # another replica has them
        mine = [by_id[int(h.row_id)] for h in held]
        channel, thread_ts = place
        try:
            await while_claimed(
                self.poster.post(channel, grouped_outcomes(mine), thread_ts=thread_ts),
                self._renewer(held),
                NOTIFIER_CLAIM_SECONDS / 3,
                give_back=lambda: self.queue.reports.release(held),
            )
        except ClaimLost:
            log.warning("%d outcomes in %s: another replica took the post over", len(held), channel)
            await self.queue.reports.release(held)
            return []
        except CannotPostHere:
            # Not a member there: each outcome goes its own way (response_url) as it would alone.
            await self.queue.reports.release(held)
            return [request for _batch, request in mine]
        except (SlackUnavailable, SlackAuthError) as error:
            log.warning("Slack cannot take %d outcomes in %s now (%s); later", len(held), channel, error.error)
            await self.queue.reports.release(held, retry_in=self.poster.pause_seconds)
            return []
        except SlackPostError as error:
            log.error("could not post %d outcomes in %s: %s", len(held), channel, error.error)
        marked = await self.queue.mark_reported_many(held)
        if marked < len(held):
            log.warning("%d outcomes in %s were taken over while posted", len(held) - marked, channel)
        return []

    def _renewer(self, held: list[Held]) -> Callable[[], Awaitable[bool]]:
        async def renew() -> bool:
            # Every outcome the post shows must still be ours: if one was taken over, its new holder posts it.
            until = self.queue.clock() + NOTIFIER_CLAIM_SECONDS
            return await self.queue.reports.write(held, {"report_lease_until": until}) == len(held)

        return renew
