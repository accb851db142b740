"""What a newcomer reads first from `partoo-retry-bot`: its help, the missing-configuration message, `check`'s list."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bot.__main__ import main
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import bot_environment

# The same isolation as test_check's (autouse there, and here once imported): no variable of the machine running
# the tests, no .env, and logging as it was afterwards.
from tests.test_check import _isolated, console_check  # noqa: F401

README = Path(__file__).resolve().parent.parent / "README.md"


def help_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What `partoo-retry-bot <argv> --help` prints (argparse exits 0 after printing)."""
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_help_as_a_command_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help"]) == 0
    captured = capsys.readouterr()
    assert captured.out == help_of(capsys)
    assert captured.err == ""
    for command in ("serve", "check", "demo", "log"):
        assert re.search(rf"^\s+{command}\s+\S", captured.out, re.MULTILINE), f"{command} not listed"
    assert "partoo-retry-bot demo" in captured.out


@pytest.mark.parametrize(
    ("argv", "described"),
    [
        (("check",), "Check a deployment without serving"),
        (("demo",), "Run the real bot against a Slack stand-in"),
        (("serve",), "Serve Slack and Partoo webhooks"),
        (("log", "export"), "Write the retry log to standard output"),
    ],
)
def test_every_command_describes_itself(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], described: str
) -> None:
    assert described in " ".join(help_of(capsys, *argv).split())


def test_every_option_of_log_export_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    shown = " ".join(help_of(capsys, "log", "export").split())
    assert "--format {csv,json} csv (default" in shown
    assert "--since SINCE how far back" in shown


def test_the_missing_configuration_message_says_where_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    message = capsys.readouterr().err
    assert "SLACK_BOT_TOKEN is required" in message
    assert "copy .env.example to .env" in message
    assert "partoo-retry-bot demo" in message
    # The section it names must exist, under that name.
    section = re.search(r'the README\'s\s+"([^"]+)"', message)
    assert section, message
    assert f"## {section[1]}" in README.read_text()


def test_check_with_no_configuration_says_where_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 1
    output = capsys.readouterr().out
    assert "✗ configuration: SLACK_BOT_TOKEN is required" in output
    assert "copy .env.example to .env" in output
    assert "partoo-retry-bot demo" in output


@pytest.mark.e2e
def test_check_prints_its_list_and_no_log_line_while_slack_is_retried(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, sqlite_url: str
) -> None:
    # slack_sdk's retry handler logs each retry: on a terminal those lines would land between the ✓ lines.
    slack.fail_next("auth.test", times=2, status=503)
    result = console_check(tmp_path, bot_environment(slack, partoo, sqlite_url))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(slack.calls_to("auth.test")) == 3  # the retries did happen
    assert "✓ Slack bot token" in result.stdout
    assert result.stderr == ""
    for line in result.stdout.splitlines():
        assert line == "" or line.startswith(("✓ ", "✗ ", "- ", "    ", "All ")), f"not a check line: {line!r}"
    assert os.environ.get("SLACK_BOT_TOKEN") is None
