"""`partoo-retry-bot check`: every problem named, exit 0 only when all is well, and nothing changed.

Run through the real CLI entry (`bot.__main__.main`) with the environment a user would set, against
FakeSlack, FakePartoo and a real database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.__main__ import main
from bot.platform.database import create_engine, migrate, schema_status
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import ALERT_CHANNEL, BOT_TOKEN, PARTOO_API_KEY, SECRETS, bot_environment
from tests.logging_state import preserved_logging
from tests.processes import executable_dir, free_port, search_path
from tests.test_process import CONTRACT

LOG_CHANNEL = "CLOGS"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No variable of the machine running the tests, no .env, and logging as it was afterwards."""
    for name in CONTRACT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with preserved_logging():
        yield


def run_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], environment: dict[str, str]
) -> tuple[int, str]:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # `main` points the root logger at this test's captured stderr, which is closed once the test ends: left in
    # place (callers in other modules have no autouse fixture undoing it), a later test's log lines would fail
    # with "--- Logging error --- ValueError: I/O operation on closed file".
    with preserved_logging():
        code = main(["check"])
    output = capsys.readouterr().out
    for secret in (*SECRETS, PARTOO_API_KEY):
        assert secret not in output
    return code, output


def line_of(output: str, start: str) -> str:
    """The first line starting with `start` (with its hint line, if any)."""
    lines = output.splitlines()
    for number, line in enumerate(lines):
        if line.startswith(start):
            hint = lines[number + 1] if number + 1 < len(lines) and lines[number + 1].startswith("    ") else ""
            return f"{line}\n{hint}"
    raise AssertionError(f"no line starting with {start!r} in:\n{output}")


def stamp(database_url: str, revision: str) -> None:
    """Make the database claim a schema revision, as a newer (or older) bot would leave it."""

    async def write() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
                await connection.execute(text("INSERT INTO alembic_version VALUES (:revision)"), {"revision": revision})
        finally:
            await engine.dispose()

    asyncio.run(write())


def migrated(database_url: str) -> str:
    async def run() -> str:
        engine = create_engine(database_url)
        try:
            await migrate(engine)
            _, head = await schema_status(engine)
            return head
        finally:
            await engine.dispose()

    return asyncio.run(run())


# -- all good --------------------------------------------------------------------------------------------


def test_all_good_exits_0_and_says_what_it_found(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    empty_database_url: str,
) -> None:
    environment = bot_environment(slack, partoo, empty_database_url, SLACK_LOG_CHANNEL=LOG_CHANNEL)
    code, output = run_check(monkeypatch, capsys, environment)

    assert code == 0, output
    assert "✗" not in output
    assert line_of(output, "✓ configuration:").startswith("✓ configuration: HTTP mode")
    assert "@partoo-retry (UBOT) in workspace Fake Team (T0001)" in line_of(output, "✓ Slack bot token:")
    assert "the bot is a member" in line_of(output, f"✓ SLACK_ALERT_CHANNEL {ALERT_CHANNEL}:")
    assert "the bot is a member" in line_of(output, f"✓ SLACK_LOG_CHANNEL {LOG_CHANNEL}:")
    assert "will be" in line_of(output, "✓ database:")  # a fresh database: created or migrated on start
    assert "answers" in line_of(output, "✓ Partoo API:")
    assert output.rstrip().endswith("checks passed.")

    # Nothing was changed anywhere: no retry, no message, no schema.
    assert partoo.calls == []
    assert {call.method for call in slack.calls} == {"auth.test", "conversations.info"}
    assert [call.params["channel"] for call in slack.calls_to("conversations.info")] == [ALERT_CHANNEL, LOG_CHANNEL]


def test_an_up_to_date_database_says_so(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    database_url: str,
) -> None:
    head = migrated(database_url)
    code, output = run_check(monkeypatch, capsys, bot_environment(slack, partoo, database_url))
    assert code == 0, output
    assert f"its schema is up to date ({head})" in line_of(output, "✓ database:")
    assert "SLACK_LOG_CHANNEL: not set" in output


def test_a_public_channel_the_bot_is_not_in_passes_with_the_public_only_caveat(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    slack.not_in_channel(ALERT_CHANNEL)
    code, output = run_check(monkeypatch, capsys, bot_environment(slack, partoo, sqlite_url))
    assert code == 0, output
    found = line_of(output, f"✓ SLACK_ALERT_CHANNEL {ALERT_CHANNEL}:")
    assert "not a member" in found
    assert "chat:write.public" in found
    assert "public channels only" in found
    assert "/invite @partoo-retry" in found


def test_socket_mode_checks_the_app_level_token(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    slack.socket_mode_url = "ws://127.0.0.1:9/link"  # handed out, never connected to
    environment = bot_environment(slack, partoo, sqlite_url, SLACK_APP_TOKEN=slack.app_token)
    code, output = run_check(monkeypatch, capsys, environment)
    assert code == 0, output
    assert "Socket Mode" in line_of(output, "✓ configuration:")
    assert line_of(output, "✓ Socket Mode:")
    assert slack.app_token not in output


# -- problems --------------------------------------------------------------------------------------------


def test_a_refused_bot_token_is_named_and_skips_the_channel_check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    environment = bot_environment(slack, partoo, sqlite_url, SLACK_BOT_TOKEN="xoxb-revoked-token-123456")
    code, output = run_check(monkeypatch, capsys, environment)

    assert code == 1, output
    found = line_of(output, "✗ Slack bot token:")
    assert "invalid_auth" in found
    assert "SLACK_BOT_TOKEN" in found
    assert "xoxb-revoked-token-123456" not in output
    assert line_of(output, f"- SLACK_ALERT_CHANNEL {ALERT_CHANNEL}: not checked")
    # The other checks still ran.
    assert line_of(output, "✓ database:")
    assert line_of(output, "✓ Partoo API:")
    assert "1 problem(s)" in output


def test_an_unreachable_database_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
) -> None:
    url = f"postgresql://partoo:hunter2-secret@127.0.0.1:{free_port()}/partoo_retry"
    code, output = run_check(monkeypatch, capsys, bot_environment(slack, partoo, url))

    assert code == 1, output
    found = line_of(output, "✗ database:")
    assert "cannot open postgresql://partoo:***@127.0.0.1" in found
    assert "DATABASE_URL" in found
    assert "hunter2-secret" not in output


def test_a_sqlite_file_in_a_missing_folder_is_a_problem(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/no/such/folder/bot.db"
    code, output = run_check(monkeypatch, capsys, bot_environment(slack, partoo, url))
    assert code == 1, output
    assert "does not exist" in line_of(output, "✗ database:")
    assert not (tmp_path / "no").exists()


def test_a_schema_from_a_newer_version_is_a_problem(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    empty_database_url: str,
) -> None:
    stamp(empty_database_url, "9999_from_the_future")
    code, output = run_check(monkeypatch, capsys, bot_environment(slack, partoo, empty_database_url))
    assert code == 1, output
    found = line_of(output, "✗ database:")
    assert "9999_from_the_future" in found
    assert "newer" in found


def test_an_alert_channel_that_cannot_be_found_is_a_problem_with_an_invite_hint(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    slack.channel_not_found(ALERT_CHANNEL)
    code, output = run_check(monkeypatch, capsys, bot_environment(slack, partoo, sqlite_url))

    assert code == 1, output
    found = line_of(output, f"✗ SLACK_ALERT_CHANNEL {ALERT_CHANNEL}:")
    assert "not found" in found
    assert "chat:write.public reaches public channels only" in found
    assert "/invite @partoo-retry" in found
    assert f"To fix: SLACK_ALERT_CHANNEL {ALERT_CHANNEL}." in output


def test_a_refused_app_level_token_is_a_problem(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    slack.socket_mode_url = "ws://127.0.0.1:9/link"
    environment = bot_environment(slack, partoo, sqlite_url, SLACK_APP_TOKEN="xapp-1-wrong-app-token-99")
    code, output = run_check(monkeypatch, capsys, environment)
    assert code == 1, output
    found = line_of(output, "✗ Socket Mode:")
    assert "invalid_auth" in found
    assert "SLACK_APP_TOKEN" in found
    assert "xapp-1-wrong-app-token-99" not in output


def test_every_problem_is_listed_at_once(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
) -> None:
    environment = bot_environment(
        slack,
        partoo,
        f"postgresql://partoo@127.0.0.1:{free_port()}/partoo_retry",
        SLACK_BOT_TOKEN="xoxb-wrong-token-000000",
        PARTOO_API_URL=f"http://127.0.0.1:{free_port()}/v2",
    )
    code, output = run_check(monkeypatch, capsys, environment)

    assert code == 1, output
    assert "invalid_auth" in line_of(output, "✗ Slack bot token:")
    assert line_of(output, "✗ database:")
    assert "cannot reach" in line_of(output, "✗ Partoo API:")
    assert "3 problem(s)" in output
    assert "To fix: Slack bot token, database, Partoo API." in output


def test_configuration_problems_are_listed_as_check_lines(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    partoo: FakePartoo,
    sqlite_url: str,
) -> None:
    environment = bot_environment(slack, partoo, sqlite_url, LOG_FORMAT="xml", SLACK_ALERT_CHANNEL="#alerts")
    code, output = run_check(monkeypatch, capsys, environment)
    assert code == 1, output
    assert "LOG_FORMAT" in line_of(output, "✗ configuration: LOG_FORMAT")
    assert line_of(output, "✗ configuration: SLACK_ALERT_CHANNEL")
    assert slack.calls == []


# -- the console script ----------------------------------------------------------------------------------


def console_check(tmp_path: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`partoo-retry-bot check` run as a user runs it, with only `environment` (and PATH)."""
    return subprocess.run(
        [str(executable_dir() / "partoo-retry-bot"), "check"],
        env={"PATH": search_path(), **environment},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.e2e
def test_the_console_script_runs_check(tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, sqlite_url: str) -> None:
    result = console_check(tmp_path, bot_environment(slack, partoo, sqlite_url))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ Slack bot token" in result.stdout
    assert "Traceback" not in result.stderr
    for secret in (BOT_TOKEN, PARTOO_API_KEY):
        assert secret not in result.stdout + result.stderr


def test_serve_stays_the_default() -> None:
    # No subcommand must keep meaning `serve` (the Procfile runs `python -m bot`); `check` is opt-in.
    from bot.__main__ import _parser

    assert _parser().parse_args([]).command is None
    assert _parser().parse_args(["check"]).command == "check"
    assert os.environ.get("SLACK_BOT_TOKEN") is None
