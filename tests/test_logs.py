"""Log lines: JSON or text, a request id on every line, and never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from bot.config import ConfigError, load_settings
from bot.logs import REDACTED, configure_logging, resolve_format
from bot.platform import correlation
from tests.logging_state import preserved_logging

SECRET = "xoxb-very-secret-token-42"
OTHER_SECRET = "partoo-key-0f0f0f"

log = logging.getLogger("bot.test")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with preserved_logging():
        yield


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def configured(log_format: str, stream: io.StringIO | None = None) -> io.StringIO:
    stream = stream if stream is not None else io.StringIO()
    configure_logging([SECRET, OTHER_SECRET], log_format=log_format, stream=stream)
    return stream


# -- format ----------------------------------------------------------------------------------------------


def test_json_lines_have_time_level_logger_and_message() -> None:
    stream = configured("json")
    log.info("retried %s messages", 3)
    (line,) = json_lines(stream)
    assert line["level"] == "INFO"
    assert line["logger"] == "bot.test"
    assert line["message"] == "retried 3 messages"
    moment = datetime.fromisoformat(line["time"])
    assert moment.utcoffset() is not None
    assert moment.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert "request_id" not in line
    assert "exc" not in line


def test_an_exception_is_one_json_line_with_its_traceback() -> None:
    stream = configured("json")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("the worker failed")
    assert len(stream.getvalue().splitlines()) == 1
    (line,) = json_lines(stream)
    assert line["level"] == "ERROR"
    assert line["message"] == "the worker failed"
    assert line["exc"].startswith("Traceback")
    assert "RuntimeError: boom" in line["exc"]


def test_extra_fields_are_part_of_the_json_line() -> None:
    stream = configured("json")
    log.info("retry finished", extra={"message_id": 4567, "outcome": "accepted", "ids": [1, 2]})
    (line,) = json_lines(stream)
    assert line["message_id"] == 4567
    assert line["outcome"] == "accepted"
    assert line["ids"] == [1, 2]


def test_text_lines_are_readable() -> None:
    stream = configured("text")
    with correlation.bound("req-1"):
        log.warning("Slack said %s", "ratelimited", extra={"channel": "C1"})
    (line,) = stream.getvalue().splitlines()
    assert " WARNING bot.test [req-1]: Slack said ratelimited  channel=C1" in line


@pytest.mark.parametrize(
    ("setting", "stream", "expected"),
    [
        ("auto", io.StringIO(), "json"),
        ("auto", Terminal(), "text"),
        ("json", Terminal(), "json"),
        ("text", io.StringIO(), "text"),
    ],
)
def test_auto_means_text_on_a_terminal_and_json_elsewhere(setting: str, stream: io.StringIO, expected: str) -> None:
    assert resolve_format(setting, stream) == expected


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="xml"):
        resolve_format("xml", io.StringIO())


# -- request id ------------------------------------------------------------------------------------------


def test_the_bound_request_id_is_on_every_line_including_libraries() -> None:
    stream = configured("json")
    with correlation.bound() as request_id:
        log.info("from the bot")
        logging.getLogger("slack_bolt.App").warning("from a library")
    log.info("after")
    lines = json_lines(stream)
    assert [line.get("request_id") for line in lines] == [request_id, request_id, None]


async def test_tasks_started_inside_a_request_carry_its_id() -> None:
    stream = configured("json")

    async def later() -> None:
        await asyncio.sleep(0)
        log.info("after ack")

    with correlation.bound("req-abc"):
        task = asyncio.create_task(later())
    await task
    assert json_lines(stream)[0]["request_id"] == "req-abc"


def test_bound_restores_the_outer_id() -> None:
    assert correlation.current() is None
    with correlation.bound("outer"):
        with correlation.bound("inner"):
            assert correlation.current() == "inner"
        assert correlation.current() == "outer"
    assert correlation.current() is None


def test_an_explicit_request_id_wins_over_the_bound_one() -> None:
    stream = configured("json")
    with correlation.bound("bound-id"):
        log.info("worker picked a request", extra={"request_id": "stored-id"})
    assert json_lines(stream)[0]["request_id"] == "stored-id"


def test_new_ids_differ() -> None:
    assert len({correlation.new_id() for _ in range(100)}) == 100


# -- secrets ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_secret_is_written_wherever_it_hides(log_format: str) -> None:
    stream = configured(log_format)
    log.info("token is %s", SECRET)
    log.info(f"key is {OTHER_SECRET}")
    log.info("extras", extra={"token": SECRET, "nested": {"key": OTHER_SECRET}})
    try:
        raise ValueError(f"bad token {SECRET}")
    except ValueError:
        log.exception("failed")
    log.info("stack", stack_info=True, extra={"where": OTHER_SECRET})
    with correlation.bound():
        logging.getLogger("slack_sdk.web").error("library says %r", {"token": SECRET})

    output = stream.getvalue()
    assert SECRET not in output
    assert OTHER_SECRET not in output
    assert output.count(REDACTED) >= 7


# -- configuration ---------------------------------------------------------------------------------------

MINIMAL = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PARTOO_API_KEY": "k"}


@pytest.mark.parametrize(("value", "expected"), [("", "auto"), ("json", "json"), ("TEXT", "text"), (" auto ", "auto")])
def test_log_format_setting(value: str, expected: str) -> None:
    assert load_settings({**MINIMAL, "LOG_FORMAT": value}).log_format == expected


def test_an_unknown_log_format_is_a_configuration_problem() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({**MINIMAL, "LOG_FORMAT": "xml"})
    assert any("LOG_FORMAT" in problem for problem in error.value.problems)
