"""`/partoo-retry <id>` end to end: signed commands through the ASGI app, fake Slack and Partoo behind it."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest

from tests.fakes import FakePartoo, FakeSlack, Reply
from tests.harness import (
    CHANNEL,
    FAST,
    USER,
    RunningBot,
    assert_whole_entities,
    ephemeral_text,
    message_text,
    running_bot,
    section_texts,
)
from tests.waiting import eventually


async def test_one_id_is_retried_once_and_answered_in_a_thread(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    response = await bot.command("4567")

    assert response.status_code == 200
    assert response.text == ""  # acknowledged silently; the answer goes to the channel
    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    assert f"<@{USER}> asked to retry Partoo message `4567`" in message_text(root)
    reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts)))[0]
    assert "accepted" in message_text(reply)
    assert "`4567`" in message_text(reply)
    assert partoo.count(4567) == 1
    await eventually(lambda: "accepted" in message_text(slack.message(CHANNEL, root.ts)))
    assert len(slack.root_messages(CHANNEL)) == 1


async def test_the_command_is_acknowledged_before_partoo_answers(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    gate = partoo.hold()
    try:
        started = time.perf_counter()
        response = await bot.command("4567")
        acknowledged = time.perf_counter() - started
        assert response.status_code == 200
        # Partoo has the call but has not answered: the ack did not wait for it.
        await eventually(lambda: partoo.count(4567) == 1)
        assert not slack.thread(CHANNEL, slack.root_messages(CHANNEL)[0].ts)
        assert acknowledged < 2.0
    finally:
        gate.release()
    root = slack.root_messages(CHANNEL)[0]
    await eventually(lambda: slack.thread(CHANNEL, root.ts))


async def test_refusal_shows_partoos_reason_escaped(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo) -> None:
    partoo.answer(88, 400, body={"errors": {"json": {"message_id": ["<!channel> not in a failed state"]}}})

    await bot.command("88")

    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts)))[0]
    assert "refused" in message_text(reply)
    assert "&lt;!channel&gt; not in a failed state" in message_text(reply)
    assert "<!channel>" not in message_text(reply)
    assert partoo.count(88) == 1


async def test_transient_failures_are_retried_then_accepted(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    partoo.script(5, [Reply(status=503), Reply(status=429, headers={"Retry-After": "1"}), Reply(status=200)])

    await bot.command("5")

    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts), timeout=10))[0]
    assert "accepted" in message_text(reply)
    assert partoo.count(5) == 3


async def test_bad_key_tells_what_to_check(bot: RunningBot, slack: FakeSlack, partoo: FakePartoo) -> None:
    partoo.answer(7, 401)

    await bot.command("7")

    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts)))[0]
    assert "PARTOO_API_KEY" in message_text(reply)
    assert "PARTOO_ENV" in message_text(reply)
    assert partoo.count(7) == 1


async def test_no_answer_in_time_is_reported_and_never_resent(
    slack: FakeSlack, partoo: FakePartoo, environment: dict[str, str]
) -> None:
    tuning = replace(FAST, partoo_timeout=httpx.Timeout(5.0, read=0.3))
    partoo.script(9, [Reply(status=200, delay=2.0)])
    async with running_bot(slack, environment, tuning) as bot:
        await bot.command("9")
        root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
        reply = (await eventually(lambda: slack.thread(CHANNEL, root.ts), timeout=10))[0]
    assert "did not answer in time" in message_text(reply)
    assert partoo.count(9) == 1


async def test_several_ids_collapse_duplicates_and_show_progress_then_summary(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    partoo.answer(4568, 404)

    response = await bot.command("4567 4568, 4569,4567")

    assert response.status_code == 200
    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    assert "asked to retry 3 Partoo messages" in message_text(root)
    await eventually(lambda: "3/3 done" in message_text(slack.message(CHANNEL, root.ts)), timeout=10)
    summary = message_text(slack.message(CHANNEL, root.ts))
    assert "2 accepted" in summary
    assert "1 not found" in summary
    problems = await eventually(lambda: slack.thread(CHANNEL, root.ts))
    assert len(problems) == 1
    assert "`4568`" in message_text(problems[0])
    assert "`4567`" not in message_text(problems[0])
    assert sorted(partoo.received_ids()) == ["4567", "4568", "4569"]
    assert len(slack.root_messages(CHANNEL)) == 1


async def test_progress_is_updated_in_place_while_the_batch_runs(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    gate = partoo.hold()
    ids = " ".join(str(n) for n in range(100, 140))
    await bot.command(ids)
    root = (await eventually(lambda: slack.root_messages(CHANNEL)))[0]
    assert "0/40 done" in message_text(root)
    gate.release()
    await eventually(lambda: "40/40 done" in message_text(slack.message(CHANNEL, root.ts)), timeout=15)
    updates = [call for call in slack.calls_to("chat.update") if call.params.get("ts") == root.ts]
    assert updates, "the root message is updated in place"
    assert len(slack.root_messages(CHANNEL)) == 1
    assert all(partoo.count(n) == 1 for n in range(100, 140))


async def test_a_second_request_for_a_message_in_progress_is_not_sent_again(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    gate = partoo.hold()
    try:
        await bot.command("4567")
        await eventually(lambda: partoo.count(4567) == 1)
        second = await bot.command("4567", user_id="U999")
        text = ephemeral_text(second)
        assert "already" in text
        assert f"<@{USER}>" in text
    finally:
        gate.release()
    root = slack.root_messages(CHANNEL)[0]
    await eventually(lambda: slack.thread(CHANNEL, root.ts))
    assert partoo.count(4567) == 1
    assert len(slack.root_messages(CHANNEL)) == 1


async def test_after_a_refusal_the_same_message_can_be_retried_again(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    # Issue 19: this test asserted that a second command after an *accepted* retry calls Partoo again, the
    # double send admission now refuses (tests/test_admission_paths.py). After a refusal nothing was sent.
    partoo.answer(4567, 400, body={"errors": {"json": "not in a failed state"}})
    await bot.command("4567")
    await eventually(lambda: len(slack.calls_to("chat.update")) >= 1)
    await bot.command("4567")
    await eventually(lambda: partoo.count(4567) == 2)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("abc", "not a subcommand"),
        ("12a", "not a message id"),
        ("-5", "positive"),
        ("0", "positive"),
        ("99999999999999999999", "too large"),
        (" ".join(str(n) for n in range(1, 102)), "At most 100"),
        ("status", "exactly one message id"),
        ("status x", "not a message id"),
        ("log 0", "from 1 to 50"),
        ("log 51", "from 1 to 50"),
        ("<!channel>", "&lt;!channel&gt;"),
        # Signs, huge numbers and other scripts' digits: each once raised inside the authorization middleware.
        ("--5", "not a message id"),
        ("+-5", "not a message id"),
        ("+5", "not a message id"),
        ("4567 --5", "not a message id"),
        ("status --3", "not a message id"),
        ("log --3", "from 1 to 50"),
        ("9" * 30, "too large"),
        ("status " + "9" * 30, "too large"),
        ("9" * 5000, "too large"),
        ("log " + "9" * 5000, "from 1 to 50"),
        ("\u0664\u0665\u0666\u0667", "not a message id"),  # Arabic-Indic 4567
        ("45\u0666\u0667", "not a message id"),  # mixed scripts
        ("4\u00b2", "not a message id"),  # superscript two: isdigit() says yes
        ("\uff14\uff15\uff16\uff17", "not a message id"),  # fullwidth 4567
    ],
)
async def test_bad_input_gets_a_clear_ephemeral_answer_and_changes_nothing(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, text: str, problem: str
) -> None:
    response = await bot.command(text)

    answer = ephemeral_text(response)
    assert problem in answer
    assert "/partoo-retry status" in answer  # the usage is shown
    assert "<!channel>" not in answer
    assert partoo.calls == []
    assert slack.calls_to("chat.postMessage") == []
    assert await bot.bot.retry_log.recent(10) == []


@pytest.mark.parametrize("text", ["", "help", "  HELP "])
async def test_help_is_an_ephemeral_usage(bot: RunningBot, partoo: FakePartoo, text: str) -> None:
    response = await bot.command(text)
    answer = ephemeral_text(response)
    # Escaped: Slack would read `<message id>` as a link to "message id" and show a broken one.
    assert "/partoo-retry &lt;message id&gt;" in answer
    for shown in [response.json()["text"], *section_texts(response.json()["blocks"])]:
        assert_whole_entities(shown)
    assert partoo.calls == []


async def test_where_the_bot_cannot_post_the_outcome_goes_through_response_url(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    slack.not_in_channel("CPRIVATE")

    await bot.command("4567", channel_id="CPRIVATE", response_url=slack.response_url("private"))

    answer = (await eventually(lambda: slack.responses("private")))[0]
    assert answer["response_type"] == "in_channel"
    assert "accepted" in answer["text"]
    assert "`4567`" in answer["text"]
    assert partoo.count(4567) == 1


async def test_slack_rate_limits_and_errors_are_retried_when_posting(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo
) -> None:
    slack.fail_next("chat.postMessage", times=1, status=429, retry_after=1)
    slack.fail_next("chat.postMessage", times=1, status=503)

    await bot.command("4567")

    root = (await eventually(lambda: slack.root_messages(CHANNEL), timeout=10))[0]
    await eventually(lambda: slack.thread(CHANNEL, root.ts), timeout=10)
    assert partoo.count(4567) == 1


async def test_an_outcome_that_cannot_be_posted_is_logged_not_dropped(
    bot: RunningBot, slack: FakeSlack, partoo: FakePartoo, caplog: pytest.LogCaptureFixture
) -> None:
    slack.channel_not_found("CGONE")

    # The response_url is older than the 30 minutes Slack honours it: it answers 404 expired_url.
    response_url = slack.response_url("late")
    slack.advance(31 * 60)
    await bot.command("4567", channel_id="CGONE", response_url=response_url)

    record = await eventually(
        lambda: next((r for r in caplog.records if "could not post the outcome" in r.getMessage()), None),
        timeout=15,
    )
    assert record is not None
    assert "4567" in record.getMessage()
    assert "accepted" in record.getMessage()
    assert "expired_url" in record.getMessage()
    assert [(refusal.method, refusal.error) for refusal in slack.refusals] == [("response_url:late", "expired_url")]


async def test_a_forged_command_is_refused(bot: RunningBot, partoo: FakePartoo, slack: FakeSlack) -> None:
    response = await bot.command("4567", secret="not-the-signing-secret")

    assert response.status_code == 401
    assert partoo.calls == []
    assert slack.calls_to("chat.postMessage") == []
