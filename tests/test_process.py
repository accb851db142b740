"""The bot started the way users and platforms start it: `python -m bot`, the Procfile, the console script.

Also checks `.env.example` against the variables `bot/config.py` reads.
"""

from __future__ import annotations

import ast
import asyncio
import io
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from dotenv import dotenv_values

import bot.config
from bot.config import ConfigError, load_settings
from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import RequestView
from bot.platform.database import create_engine
from bot.retries.retry_log import RetryLog
from bot.retries.worker import STOPPED_DETAIL
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import CHANNEL, PARTOO_API_KEY, SECRETS, bot_environment, message_text
from tests.processes import executable_dir, start_bot
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / ".env.example"
PROCFILE = ROOT / "Procfile"

# The configuration contract (README, deploy scripts): renaming or dropping one is a breaking change.
CONTRACT = {
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "SLACK_ALERT_CHANNEL",
    "SLACK_LOG_CHANNEL",
    "ALERT_ROUTES",
    "PARTOO_API_KEY",
    "PARTOO_ENV",
    "PARTOO_API_URL",
    "PARTOO_WEBHOOK_PUBLIC_KEY",
    "PARTOO_RATE_LIMIT_PER_MINUTE",
    "RETRY_ALLOWED_USERS",
    "RETRY_ALLOWED_USERGROUPS",
    "RETRY_ALLOWED_CHANNELS",
    "DATABASE_URL",
    "PORT",
    "LOG_FORMAT",
    "STORE_MESSAGE_PREVIEW",
    "CONVERSATION_CHECK",
    "CONVERSATION_CHECK_CACHE_SECONDS",
    "NOT_CONFIRMED_MINUTES",
    "BULK_PLAN_MAX",
    "RETENTION_DAYS",
    "WEBHOOK_SILENCE_ALERT_MINUTES",
    "PUBLIC_URL",
    "REPORT_CHANNEL",
    "REPORT_SCHEDULE",
    "REPORT_TIMEZONE",
    "SHUTDOWN_SECONDS",
}
REQUIRED = {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "PARTOO_API_KEY"}

# Within this the bot must be gone after SIGTERM (platforms send SIGKILL 30 s after it).
STOP_SECONDS = 25.0
# A command's root message and its answer, from a separate process on a loaded CI machine.
ANSWER_SECONDS = 15.0


# -- python -m bot ---------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_python_m_bot_answers_a_command_then_stops_cleanly_on_sigterm(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, empty_database_url: str
) -> None:
    # A user's first start: an empty database, which the bot migrates before it answers.
    environment = bot_environment(slack, partoo, empty_database_url)
    with start_bot(environment, tmp_path) as process:
        process.wait_healthy()

        response = process.command("4567", response_url=slack.response_url("cmd"))
        assert response.status_code == 200, response.text

        root = wait_until(lambda: slack.root_messages(CHANNEL), timeout=ANSWER_SECONDS)[0]
        assert "4567" in message_text(root)

        def accepted_reply() -> bool:
            texts = [message_text(reply) for reply in slack.thread(CHANNEL, root.ts)]
            return any("accepted" in text and "not accepted" not in text for text in texts)

        wait_until(accepted_reply, timeout=ANSWER_SECONDS, message="no 'accepted' reply in the thread")
        assert partoo.count(4567) == 1

        exit_code = process.stop(signal.SIGTERM, timeout=STOP_SECONDS)
        assert exit_code == 0, f"exit code {exit_code} after SIGTERM\n{process.logs()}"
        assert partoo.count(4567) == 1
        assert partoo.received_ids() == ["4567"]

        output = process.logs()
        for secret in SECRETS:
            assert secret not in output


@pytest.mark.e2e
def test_sigterm_with_slow_partoo_calls_in_flight_exits_within_the_budget_and_sends_nothing_twice(
    tmp_path: Path, slack: FakeSlack, database_url: str
) -> None:
    # Partoo takes two minutes to answer, far past the budget and past the client's own 15 s read timeout.
    budget = 8
    with FakePartoo(api_key=PARTOO_API_KEY, latency=120.0) as partoo:
        environment = {**bot_environment(slack, partoo, database_url), "SHUTDOWN_SECONDS": str(budget)}
        with start_bot(environment, tmp_path) as process:
            process.wait_healthy()
            answer = process.command("4567 4568 4569", response_url=slack.response_url("cmd"))
            assert answer.status_code == 200, answer.text
            wait_until(lambda: partoo.in_flight == 3, timeout=ANSWER_SECONDS, message="calls never reached Partoo")

            exit_code = process.stop(signal.SIGTERM, timeout=budget)

            assert exit_code == 0, process.logs()
            assert "Traceback" not in process.logs()
        assert sorted(partoo.received_ids()) == ["4567", "4568", "4569"]

    # The calls cut short may have reached Partoo: closed as unknown, never queued to be sent again.
    requests = asyncio.run(_recent_requests(database_url))
    assert {request.message_id for request in requests} == {4567, 4568, 4569}
    for request in requests:
        assert (request.state, request.outcome, request.attempts) == ("done", OutcomeKind.UNKNOWN, 1), request
        assert request.detail == STOPPED_DETAIL


async def _recent_requests(database_url: str) -> list[RequestView]:
    engine = create_engine(database_url)
    try:
        return await RetryLog(engine).recent(10)
    finally:
        await engine.dispose()


# -- the Procfile ----------------------------------------------------------------------------------------


def procfile_command(process_type: str) -> str:
    """The command of one process type (`web: …`) in the Procfile."""
    for line in PROCFILE.read_text().splitlines():
        name, separator, command = line.partition(":")
        if separator and name.strip() == process_type:
            return command.strip()
    raise AssertionError(f"the Procfile has no {process_type!r} process")


@pytest.mark.e2e
def test_the_procfile_web_command_serves_on_port(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, sqlite_url: str
) -> None:
    command = procfile_command("web")
    environment = bot_environment(slack, partoo, sqlite_url)
    # Platforms run the command through a shell, with PORT set and the app's python first on PATH.
    with start_bot(environment, tmp_path, command=["sh", "-c", command]) as process:
        process.wait_healthy()
        assert httpx.get(f"{process.url}/readyz", timeout=5.0).status_code == 200
        process.stop(signal.SIGTERM, timeout=STOP_SECONDS)


# -- the console script with a broken configuration ------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("environment", "problems"),
    [
        pytest.param({}, ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "PARTOO_API_KEY"], id="nothing-set"),
        pytest.param(
            {
                "SLACK_BOT_TOKEN": "nope",
                "PARTOO_RATE_LIMIT_PER_MINUTE": "abc",
                "SLACK_LOG_CHANNEL": "#retries",
                "PORT": "99999",
            },
            [
                "SLACK_BOT_TOKEN must be a bot token",
                "SLACK_SIGNING_SECRET",
                "PARTOO_API_KEY",
                "PARTOO_RATE_LIMIT_PER_MINUTE",
                "SLACK_LOG_CHANNEL",
                "PORT",
            ],
            id="invalid-values",
        ),
    ],
)
def test_the_console_script_lists_every_configuration_problem_and_exits_2(
    tmp_path: Path, environment: dict[str, str], problems: list[str]
) -> None:
    script = executable_dir() / "partoo-retry-bot"
    assert script.exists(), f"{script} missing: install the package (pip install -e '.[test]')"
    result = subprocess.run(
        [str(script)],
        env={"PATH": os.environ.get("PATH", os.defpath), **environment},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    # One message listing every problem, one per line.
    assert result.stderr.count("cannot start") == 1, result.stderr
    problem_lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    for problem in problems:
        assert any(problem in line for line in problem_lines), f"{problem!r} not listed:\n{result.stderr}"
    assert len(problem_lines) == len(problems), result.stderr


# -- .env.example ----------------------------------------------------------------------------------------

_COMMENTED_ASSIGNMENT = re.compile(r"^#\s?([A-Z][A-Z0-9_]*=.*)$")


def env_example() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(set variables, commented-out variables, the comment line above each variable) of .env.example."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for number, line in enumerate(lines):
        match = _COMMENTED_ASSIGNMENT.match(line)
        assignment = match.group(1) if match else line
        if not assignment or assignment.startswith("#"):
            continue
        parsed = dotenv_values(stream=io.StringIO(assignment))
        assert len(parsed) == 1, f".env.example line {number + 1} is not one assignment: {line!r}"
        ((name, value),) = parsed.items()
        target = commented if match else active
        assert name not in active and name not in commented, f"{name} is in .env.example twice"
        target[name] = value or ""
        above = lines[number - 1] if number else ""
        descriptions[name] = above if above.startswith("#") and not _COMMENTED_ASSIGNMENT.match(above) else ""
    return active, commented, descriptions


def names_read_by_config() -> set[str]:
    """Names passed as string literals to `text(…)` / `required(…)` in bot/config.py."""
    tree = ast.parse(Path(bot.config.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"text", "required"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def test_env_example_names_exactly_the_variables_config_reads() -> None:
    active, commented, _ = env_example()
    assert names_read_by_config() == CONTRACT
    assert set(active) | set(commented) == CONTRACT


def test_env_example_describes_every_variable() -> None:
    *_, descriptions = env_example()
    for name in CONTRACT:
        description = descriptions[name]
        assert description, f"{name} in .env.example has no comment line above it"
        if name in REQUIRED:
            assert description.startswith("# Required"), description
        else:
            assert description.startswith("# Optional"), description
            assert "default" in description, description


def test_env_example_sets_the_required_variables_and_comments_out_the_others() -> None:
    active, commented, _ = env_example()
    assert set(active) == REQUIRED
    # Its placeholders form a configuration that loads…
    load_settings(active)
    # …each of them is needed…
    for name in REQUIRED:
        with pytest.raises(ConfigError) as error:
            load_settings({key: value for key, value in active.items() if key != name})
        assert any(name in problem for problem in error.value.problems)
    # …and uncommenting any optional example keeps it loadable.
    for name, value in commented.items():
        load_settings({**active, name: value})
