"""The command and log messages, built without any server: limits, escaping, fallback text."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from bot.domain.access import AccessPolicy
from bot.domain.commands import MAX_IDS, MAX_LOG_SIZE
from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import AttemptView, BatchView, RequestView
from bot.rendering import mrkdwn
from bot.rendering.message import SlackMessage
from bot.retries import home_messages, log_messages, messages
from tests.fakes.block_kit import message_refusal, view_refusal
from tests.harness import assert_whole_entities, section_texts

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


def _limits_hold(message: SlackMessage) -> dict[str, Any]:
    rendered = message.as_kwargs()  # slack_sdk's models raise here when a limit is broken
    assert rendered["text"]
    assert message_refusal(rendered) is None  # Slack's limits, as the fake Slack checks them
    for text in [rendered["text"], *section_texts(rendered["blocks"])]:
        assert_whole_entities(text)
    return rendered


def _shown_ids(rendered: dict[str, Any]) -> list[int]:
    """The message ids listed in a message's blocks, in order."""
    return [int(found) for text in section_texts(rendered["blocks"]) for found in re.findall(r"`(\d+)`", text)]


# Long ids, user ids and outcome labels: the longest log lines the bot writes.
LONG_ID = 9_000_000_000_000_000_000


def _long_line_request(n: int) -> RequestView:
    return replace(_request(LONG_ID + n, OutcomeKind.UNAVAILABLE, "x" * 500), requested_by="U0123456789AB")


def test_a_hundred_ids_fit_in_one_root_message() -> None:
    ids = list(range(10**12, 10**12 + MAX_IDS))
    rendered = _limits_hold(messages.batch_root(_batch(MAX_IDS, skipped=tuple(range(50))), ids, done=12))
    text = json.dumps(rendered)
    assert "12/100 done" in text
    assert "and 80 more" in text


def test_a_plans_progress_of_a_thousand_stays_within_limits_and_escapes_its_filter() -> None:
    """A plan's batch (up to BULK_PLAN_MAX messages) tallies its requests; its filter is escaped all the same."""
    batch = replace(_batch(1000), plan_filter="in the last 1 hour, partner <!channel>", plan_changed=3)
    requests = [
        *(_request(10**12 + n, OutcomeKind.ACCEPTED) for n in range(400)),
        *(replace(_request(2 * 10**12 + n, OutcomeKind.ACCEPTED), delivery="delivered") for n in range(100)),
        *(_request(3 * 10**12 + n, OutcomeKind.REFUSED, "closed") for n in range(20)),
        *(replace(_request(4 * 10**12 + n, None), finished_at=None) for n in range(480)),
    ]
    ids = [request.message_id for request in requests]
    rendered = _limits_hold(messages.batch_root(batch, ids, done=520, requests=requests))
    shown = " ".join(section_texts(rendered["blocks"]))
    assert "520/1000 done · 500 accepted · 20 refused · 100 delivered so far" in shown, shown
    assert "3 changed since the plan" in shown and "and 980 more" in shown
    assert "<!channel>" not in json.dumps(rendered)
    summary = _limits_hold(messages.batch_summary(batch, requests[:520]))
    assert "100 delivered so far" in json.dumps(summary) and "3 changed since the plan" in json.dumps(summary)


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
    rendered = _limits_hold(log_messages.status(7, history, {1: "https://fake.slack.com/archives/C1/p1"}))
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


def test_the_log_shows_every_line_it_announces_whole() -> None:
    requests = [_long_line_request(n) for n in range(MAX_LOG_SIZE)]
    rendered = _limits_hold(log_messages.recent_log(requests))
    assert f"The last {MAX_LOG_SIZE} retries" in section_texts(rendered["blocks"])[0]
    assert _shown_ids(rendered) == [LONG_ID + n for n in range(MAX_LOG_SIZE)]
    assert json.dumps(rendered).count("<!date^") == MAX_LOG_SIZE


def test_a_log_of_one_retry_says_so_in_the_singular() -> None:
    rendered = _limits_hold(log_messages.recent_log([_request(1, OutcomeKind.ACCEPTED)]))
    assert section_texts(rendered["blocks"])[0] == "*The last retry*"


def test_the_log_channel_gets_every_outcome_in_posts_within_limits() -> None:
    for count in (1, 40, 400):
        requests = [_long_line_request(n) for n in range(count)]
        posts = log_messages.log_channel_posts(requests)
        shown: list[int] = []
        for post, covered in posts:
            rendered = _limits_hold(post)
            assert _shown_ids(rendered) == [request.message_id for request in covered]
            shown += _shown_ids(rendered)
        assert shown == [request.message_id for request in requests]
    assert len(posts) > 1  # 400 long lines are more than one post holds


def test_usage_shows_its_placeholders_instead_of_broken_links() -> None:
    for message in (messages.usage(), messages.usage("`x` is not a message id.")):
        rendered = _limits_hold(message)
        assert "`/partoo-retry &lt;message id&gt; [&lt;message id&gt; …]`" in section_texts(rendered["blocks"])[-1]


def test_the_home_view_is_one_slack_accepts() -> None:
    for recent in ([], [_long_line_request(n) for n in range(15)]):
        view = home_messages.home(recent, {}, {}).to_dict()
        assert view_refusal(view) is None
        for text in section_texts(view["blocks"]):
            assert_whole_entities(text)
        assert _shown_ids({"blocks": view["blocks"]}) == [LONG_ID + n for n in range(len(recent))]


def test_status_never_cuts_an_entity_and_says_what_it_shows() -> None:
    attempts = [
        AttemptView(request_id=1, started_at=NOW, finished_at=NOW, outcome=OutcomeKind.UNAVAILABLE,
                    http_status=503, detail="&<>" * 100, latency_ms=12.0)
        for _ in range(30)
    ]  # fmt: skip
    history = [(_request(n, OutcomeKind.UNAVAILABLE, "&" * 500), _batch(1), attempts) for n in range(40)]
    rendered = _limits_hold(log_messages.status(7, history, {}))
    shown = json.dumps(rendered).count("asked by")
    assert f"Showing the last {shown} of 40 requests" in json.dumps(rendered)


def test_shortening_never_cuts_an_entity() -> None:
    date = mrkdwn.when(NOW)
    text = f"{'a' * 10}{date} {mrkdwn.user('U1')} &amp;&lt;&gt; end"
    for limit in range(2, len(text) + 1):
        shortened = mrkdwn.shorten(text, limit)
        assert len(shortened) <= limit
        assert_whole_entities(shortened)
        assert text.startswith(shortened.removesuffix("…"))
    assert mrkdwn.shorten(text, len(text)) == text


def test_a_section_holds_whole_lines_up_to_the_limit() -> None:
    lines = [f"{n:04d} " + "x" * 995 for n in range(7)]  # 1,000 characters each: two lines a section
    sections, shown = messages._line_sections(lines, max_sections=3)
    assert shown == 6
    assert [block.to_dict()["text"]["text"].split("\n") for block in sections] == [lines[0:2], lines[2:4], lines[4:6]]


def test_stop_tells_how_many_were_stopped_and_how_many_finish_as_sent_in_good_grammar() -> None:
    assert messages.stopped(1, 0).text == ":octagonal_sign: Stopped 1 retry not yet sent."
    one = messages.stopped(3, 1).text
    assert one.endswith("Stopped 3 retries not yet sent. 1 already on its way to Partoo finishes as sent."), one
    many = messages.stopped(206, 31).text
    assert many.endswith("Stopped 206 retries not yet sent. 31 already on their way to Partoo finish as sent."), many
