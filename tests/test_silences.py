"""Silences (issue 22 items 1, 2): held failures are stored but not posted, and summed up once when it ends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import func, select

from bot.alerts.alerter import Alerter
from bot.alerts.messages import RETRY_ALL_ACTION_ID
from bot.domain.message import MessageUpdate
from bot.domain.silences import Scope, Silence, matching
from bot.domain.verdict import Verdict, VerdictKind
from bot.failures.silences import SilenceStore
from bot.failures.state import bump_alerts
from bot.platform.models import Digest
from tests.fakes import FakePartoo, FakeSlack, SlackMessage
from tests.harness import (
    ALERT_CHANNEL,
    USER,
    RunningBot,
    assert_whole_entities,
    buttons,
    message_text,
    running_bot,
    section_texts,
)
from tests.signing import PartooSigner, message_updated_event
from tests.waiting import eventually, eventually_async

BISTROT = 42
OTHER = 77


def _failure(business_id: int | None = BISTROT, partner: str | None = "Whatsapp") -> MessageUpdate:
    return MessageUpdate(
        message_id=1,
        conversation_id=2,
        status="Failed",
        content_type="Text",
        content="hi",
        sender_type="User",
        sender_label="Jane",
        consumer_name="John",
        messaging_partner=partner,
        business_id=business_id,
        date=None,
        is_deleted=False,
        org_id=7,
    )


def _silence(scope: Scope, value: str, *, until: float = 2000.0, ended_at: float | None = None) -> Silence:
    return Silence(1, scope, value, until, "U1", 0.0, ended_at=ended_at)


def test_a_silence_matches_its_business_partner_or_cause_only_while_active() -> None:
    closed = Verdict(VerdictKind.CLOSED, checked_at=0.0)
    assert matching([_silence(Scope.BUSINESS, "42")], _failure(42), None, 1000.0) is not None
    assert matching([_silence(Scope.BUSINESS, "42")], _failure(43), None, 1000.0) is None
    assert matching([_silence(Scope.PARTNER, "whatsapp")], _failure(partner=" WhatsApp "), None, 1000.0) is not None
    assert matching([_silence(Scope.PARTNER, "whatsapp")], _failure(partner="Google"), None, 1000.0) is None
    assert matching([_silence(Scope.CAUSE, "closed")], _failure(), closed, 1000.0) is not None
    assert matching([_silence(Scope.CAUSE, "closed")], _failure(), None, 1000.0) is None  # not checked yet
    # Ended by time, or early by someone: no longer holds anything.
    assert matching([_silence(Scope.BUSINESS, "42")], _failure(42), None, 2000.0) is None
    assert matching([_silence(Scope.BUSINESS, "42", ended_at=900.0)], _failure(42), None, 1000.0) is None


def _store(bot: RunningBot) -> SilenceStore:
    store = bot.bot.alerter.silences
    assert isinstance(store, SilenceStore)
    return store


def _summaries(slack: FakeSlack) -> list[SlackMessage]:
    return [m for m in slack.root_messages(ALERT_CHANNEL) if "was silenced" in (m.text or "")]


async def _held(bot: RunningBot, message_ids: list[int], silence_id: int) -> None:
    async def all_held() -> bool:
        alerts = await bot.bot.alerts.alerts_for(message_ids)
        return len(alerts) == len(message_ids) and all(
            a.ts is None and a.posted_version == a.version for a in alerts.values()
        )

    await eventually_async(all_held, timeout=20)
    async with bot.bot.engine.connect() as connection:
        rows = await connection.execute(
            select(func.count()).select_from(Digest.__table__).where(Digest.silence_id == silence_id)
        )
        assert rows.scalar_one() == 0


async def test_a_silenced_business_is_held_back_then_summed_up_once_when_ended_now(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    silence = await _store(bot).start(Scope.BUSINESS, str(BISTROT), time.time() + 3600, "USILENT", note="page")
    await asyncio.gather(*(bot.webhook(message_updated_event(n, business_id=BISTROT), signer) for n in (1, 2, 3)))
    await bot.webhook(message_updated_event(9, business_id=OTHER), signer)
    # The other business's failure is posted as usual; the silenced ones are stored, held, never posted.
    await eventually(lambda: [m for m in slack.root_messages(ALERT_CHANNEL) if "`9`" in message_text(m)])
    await _held(bot, [1, 2, 3], silence.id)
    assert len(slack.root_messages(ALERT_CHANNEL)) == 1

    assert await _store(bot).end_now(silence.id, "UEND")
    assert not await _store(bot).end_now(silence.id, "UEND")  # ended once

    summary = (await eventually(lambda: _summaries(slack), timeout=20))[0]
    assert "While Shop · Paris was silenced: 3 failures, 3 now retryable" in message_text(summary)
    assert [b["action_id"] for b in buttons(summary)] == [RETRY_ALL_ACTION_ID]
    assert len(slack.root_messages(ALERT_CHANNEL)) == 2  # nothing was posted one by one


async def test_failures_held_by_a_silence_that_just_ended_wait_for_its_summary_even_once_changed(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    silence = await _store(bot).start(Scope.BUSINESS, str(BISTROT), time.time() + 3600, "USILENT")
    await asyncio.gather(*(bot.webhook(message_updated_event(n, business_id=BISTROT), signer) for n in (1, 2, 3)))
    await _held(bot, [1, 2, 3], silence.id)
    # This test plays the alerter's rounds itself, in the order a race gives them: a round sums up the ended
    # silences (none yet), the silence ends, then the held alerts change (a conversation check's answer makes
    # them new again), and the same round goes on to post new alerts.
    await bot.bot.alerter.stop()
    rounds = Alerter(bot.bot.alerts, bot.bot.poster, alert_channel=ALERT_CHANNEL, silences=_store(bot))
    assert await _store(bot).end_now(silence.id, "UEND")
    async with bot.bot.engine.begin() as connection:
        await bump_alerts(connection, [1, 2, 3])
    await rounds._post_new_alerts()
    # Neither posted one by one nor grouped as a flood: left for the summary.
    left = await bot.bot.alerts.alerts_for([1, 2, 3])
    assert [(alert.ts, alert.digest_id) for alert in left.values()] == [(None, None)] * 3

    await rounds.tick()
    [summary] = await eventually(lambda: _summaries(slack), timeout=20)
    assert "was silenced: 3 failures" in message_text(summary)
    assert len(slack.root_messages(ALERT_CHANNEL)) == 1


async def test_a_silence_ends_by_itself(bot: RunningBot, slack: FakeSlack, signer: PartooSigner) -> None:
    silence = await _store(bot).start(Scope.PARTNER, "google", time.time() + 1.5, "USILENT")
    await bot.webhook(message_updated_event(5, messaging_partner="Google"), signer)
    await _held(bot, [5], silence.id)
    summary = (await eventually(lambda: _summaries(slack), timeout=20))[0]
    assert "While Google was silenced: 1 failure" in message_text(summary)


async def test_a_requested_retry_is_never_hidden_by_a_silence(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner
) -> None:
    silence = await _store(bot).start(Scope.BUSINESS, str(BISTROT), time.time() + 3600, "USILENT")
    await bot.webhook(message_updated_event(4567), signer)
    await _held(bot, [4567], silence.id)

    await bot.command("4567")
    await eventually(lambda: partoo.count(4567) == 1, timeout=20)
    # Asked by someone: the alert is posted, and it shows the retry, silence or not.
    alert = (await eventually(lambda: slack.root_messages(ALERT_CHANNEL), timeout=20))[0]
    assert "4567" in message_text(alert)
    await bot.alert_recorded(4567, alert.ts)


async def test_a_cause_silence_holds_checked_failures_of_that_cause(
    bot: RunningBot, slack: FakeSlack, signer: PartooSigner
) -> None:
    # Without checks there is no verdict: a cause silence holds nothing, and the failure is posted.
    await _store(bot).start(Scope.CAUSE, VerdictKind.CLOSED.value, time.time() + 3600, "USILENT")
    await bot.webhook(message_updated_event(31), signer)
    await eventually(lambda: slack.root_messages(ALERT_CHANNEL), timeout=20)


async def test_two_replicas_sum_a_silence_up_exactly_once(
    slack: FakeSlack, partoo: FakePartoo, signer: PartooSigner, postgres_url: str, environment: dict[str, Any]
) -> None:
    env = {**environment, "DATABASE_URL": postgres_url}
    async with running_bot(slack, env) as first, running_bot(slack, env) as second:
        silence = await _store(first).start(Scope.BUSINESS, str(BISTROT), time.time() + 3600, "USILENT")
        await asyncio.gather(*(first.webhook(message_updated_event(n), signer) for n in range(1, 6)))
        await _held(first, list(range(1, 6)), silence.id)
        assert await _store(second).end_now(silence.id, "UEND")
        # Both replicas' alerters race for it, and so do two more direct calls.
        results = await asyncio.gather(_store(first).summarize(silence), _store(second).summarize(silence))
        await eventually(lambda: _summaries(slack), timeout=20)
        await eventually_async(lambda: _no_due(first), timeout=20)
        async with first.bot.engine.connect() as connection:
            digests = (
                await connection.execute(select(func.count()).where(Digest.silence_id == silence.id))
            ).scalar_one()
    assert digests == 1
    assert sum(1 for result in results if result) <= 1
    assert len(_summaries(slack)) == 1
    assert "5 failures" in message_text(_summaries(slack)[0])


async def _no_due(bot: RunningBot) -> bool:
    return await _store(bot).due_summaries() == []


async def test_app_home_shows_active_silences_with_a_hostile_note_escaped(
    slack: FakeSlack, environment: dict[str, str]
) -> None:
    async with running_bot(slack, {**environment, "REPORT_CHANNEL": "CREPORT"}) as bot:
        await _app_home_shows_silences(bot, slack)


async def _app_home_shows_silences(bot: RunningBot, slack: FakeSlack) -> None:
    hostile = "<!channel> fixing <https://evil.example|here> & more"
    await _store(bot).start(Scope.PARTNER, "facebook", time.time() + 3600, "USILENT", note=hostile)
    await bot.event(
        {
            "type": "event_callback",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event_id": "EvSilences",
            "event_time": 1,
            "event": {"type": "app_home_opened", "user": USER, "channel": "D1", "tab": "home"},
        }
    )
    view = await eventually(lambda: slack.published_view(USER))
    assert view is not None
    lines = "\n".join(section_texts(view["blocks"]))
    assert "Facebook silenced by <@USILENT> until" in lines
    assert "&lt;!channel&gt; fixing &lt;https://evil.example|here&gt; &amp; more" in lines
    assert_whole_entities(lines.replace("<@USILENT>", ""))
