"""The command and log messages, built without any server: limits, escaping, fallback text."""

from __future__ import annotations

import json

from bot.domain.access import AccessPolicy
from bot.domain.commands import MAX_IDS
from bot.domain.outcomes import OutcomeKind
from bot.domain.records import AttemptView, BatchView, RequestView
from bot.rendering.message import SlackMessage
from bot.retries import home_messages, messages

NOW = 1_795_000_000.0


def _batch(total: int, skipped: tuple[int, ...] = ()) -> BatchView:
    return BatchView(
        id=1, source="command", requested_by="U1", channel_id="C1", response_url=None, total=total,
        skipped=skipped, created_at=NOW, correlation_id="c", root_channel="C1", root_ts="1.1",
        uses_response_url=False, alert_message_id=None, digest_id=None, progress_shown=0,
        progress_shown_at=None, finished_at=None, summarized_at=None,
    )  # fmt: skip


def _request(message_id: int, outcome: OutcomeKind | None, detail: str = "") -> RequestView:
    return RequestView(
        id=message_id, batch_id=1, message_id=message_id, requested_by="U1", requested_at=NOW, state="done",
        attempts=1, first_attempt_at=NOW, in_flight_since=None, outcome=outcome, http_status=400,
        detail=detail, finished_at=NOW + 1,
    )  # fmt: skip


def _limits_hold(message: SlackMessage) -> dict[str, object]:
    rendered = message.as_kwargs()  # slack_sdk's models raise here when a limit is broken
    assert rendered["text"]
    assert len(rendered["blocks"]) <= 50
    for block in rendered["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    return rendered


def test_a_hundred_ids_fit_in_one_root_message() -> None:
    ids = list(range(10**12, 10**12 + MAX_IDS))
    rendered = _limits_hold(messages.batch_root(_batch(MAX_IDS, skipped=tuple(range(50))), ids, done=12))
    text = json.dumps(rendered)
    assert "12/100 done" in text
    assert "and 80 more" in text


def test_a_hundred_long_refusals_are_split_into_replies_within_limits() -> None:
    requests = [_request(n, OutcomeKind.REFUSED, detail="<!channel> " + "x" * 500) for n in range(MAX_IDS)]
    replies = messages.problems_replies(requests)
    assert len(replies) > 1
    listed = 0
    for reply in replies:
        rendered = _limits_hold(reply)
        listed += json.dumps(rendered["blocks"]).count("Partoo refused the retry")
        assert "<!channel>" not in json.dumps(rendered)
    assert listed == MAX_IDS


def test_the_summary_counts_outcomes() -> None:
    requests = [
        _request(1, OutcomeKind.ACCEPTED),
        _request(2, OutcomeKind.NOT_FOUND),
        _request(3, OutcomeKind.ACCEPTED),
    ]
    text = messages.batch_summary(_batch(3), requests).text
    assert "3/3 done: 2 accepted, 1 not found." in text


def test_status_of_a_long_history_stays_within_limits() -> None:
    attempts = [
        AttemptView(request_id=1, started_at=NOW, finished_at=NOW, outcome=OutcomeKind.UNAVAILABLE,
                    http_status=503, detail="<html>" * 100, latency_ms=12.0)
        for _ in range(30)
    ]  # fmt: skip
    history = [(_request(n, OutcomeKind.UNAVAILABLE, "&" * 300), _batch(1), attempts) for n in range(40)]
    rendered = _limits_hold(messages.status(7, history, {1: "https://fake.slack.com/archives/C1/p1"}))
    assert "Showing the last 12 of 40 requests" in json.dumps(rendered)
    assert "<html>" not in json.dumps(rendered)


def test_who_may_retry_is_named() -> None:
    policy = AccessPolicy(users=frozenset({"U1"}), usergroups=frozenset({"S1"}), channels=frozenset({"C9"}))
    text = messages.not_allowed(policy).text
    assert "<@U1>" in text
    assert "<!subteam^S1>" in text
    assert "<#C9>" in text


def test_the_home_view_renders() -> None:
    view = home_messages.home([_request(n, OutcomeKind.ACCEPTED) for n in range(15)], {"requested": 3}, {})
    rendered = view.to_dict()
    assert rendered["type"] == "home"
    assert "*3* requested" in json.dumps(rendered)
