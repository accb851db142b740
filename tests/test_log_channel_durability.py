"""Log-channel lines are leased, not marked: a bot stopped or killed mid-post loses none and posts none twice.

`python -m bot` posts outcomes to the log channel while fake Slack holds that post (not yet accepted); the
bot is then stopped (SIGTERM) or killed (SIGKILL) mid-post, and started again on the same database. Every
outcome shows in the log channel exactly once.

The promise kept (bot.retries.notifier.Notifier.mirror_to_log_channel): at least once, and marked logged only
once Slack accepted the post. A post Slack never accepted (held here, then dropped when the bot went away) is
made again after the restart: at once after SIGTERM (the lines are given back), after the lease
(LOG_CLAIM_SECONDS) after SIGKILL. A duplicate is possible only if the bot dies between Slack's
acceptance and the database write that follows it, which no test can time from outside.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.defaults import LOG_CLAIM_SECONDS
from bot.platform.database import create_engine
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import bot_environment, section_texts
from tests.processes import start_bot
from tests.waiting import wait_until

LOG_CHANNEL = "CLOG"
IDS = ["4567", "4568", "4569"]
# SIGKILL leaves the lines leased: the restarted bot waits the lease out (it was not shortened for the test).
AFTER_KILL = LOG_CLAIM_SECONDS + 30.0


def _mirrored_ids(slack: FakeSlack) -> list[str]:
    return [
        found
        for post in slack.root_messages(LOG_CHANNEL)
        for shown in section_texts(post.blocks or [])
        for found in re.findall(r"`(\d+)`", shown)
    ]


async def _logged(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(text("SELECT count(*) FROM retry_requests WHERE logged_at IS NOT NULL")))
    finally:
        await engine.dispose()


@pytest.mark.long(15)
@pytest.mark.e2e
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_bot_stopped_mid_post_to_the_log_channel_loses_and_repeats_nothing(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, database_url: str, stop: signal.Signals
) -> None:
    environment = bot_environment(slack, partoo, database_url, SLACK_LOG_CHANNEL=LOG_CHANNEL, SHUTDOWN_SECONDS="6")
    hold = slack.hold_posts(LOG_CHANNEL)
    with start_bot(environment, tmp_path) as process:
        process.wait_healthy()
        answer = process.command(" ".join(IDS), response_url=slack.response_url("cmd"))
        assert answer.status_code == 200, answer.text
        wait_until(lambda: slack.held_posts == 1, timeout=30, message="the log channel post never came")

        process.stop(stop)
        wait_until(lambda: slack.abandoned_posts == 1, timeout=10, message="the held post was not dropped")
    assert _mirrored_ids(slack) == []
    assert asyncio.run(_logged(database_url)) == 0  # nothing marked that Slack did not accept
    hold.release()

    with start_bot(environment, tmp_path) as process:
        process.wait_healthy()
        wait_until(
            lambda: sorted(_mirrored_ids(slack)) == IDS,
            timeout=AFTER_KILL if stop is signal.SIGKILL else 30,
            message=f"log channel shows {_mirrored_ids(slack)}",
        )
        wait_until(lambda: asyncio.run(_logged(database_url)) == len(IDS), timeout=10)
        process.stop(signal.SIGTERM)
    assert sorted(_mirrored_ids(slack)) == IDS  # each once
    assert sorted(partoo.received_ids()) == IDS  # and each retried once
