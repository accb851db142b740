"""`python -m bot` / `partoo-retry-bot`: serve the bot, check its setup, or work with its retry log.

partoo-retry-bot                       serve (HTTP on $PORT)
partoo-retry-bot check                 try the configuration, Slack, the database and Partoo; exit 0 if all is well
partoo-retry-bot demo                  the bot at work on a local page, against stand-ins; nothing to configure
partoo-retry-bot log export --since 7d --format csv
partoo-retry-bot report --since 7d [--format json]   the weekly report's figures, for any period up to now
partoo-retry-bot help                  this list, with every command's options (`<command> --help`)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TypeVar

import uvicorn
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.config import ConfigError, Settings, settings_from_environment
from bot.defaults import HTTP_DRAIN_SECONDS
from bot.demo import run as demo
from bot.logs import configure_logging
from bot.platform.database import SchemaError, create_engine, create_read_only_engine, display_database_url, migrate
from bot.platform.retention import DAY, history_start
from bot.platform.shutdown import ShutdownBudget
from bot.retries.retry_log import RetryLog

# `check` and `log export` are imported by their commands only: a serving process never needs them
# (check alone brings Alembic and its dependencies, megabytes for the life of the process).

EXIT_CONFIG = 2

T = TypeVar("T")

CHECK_DESCRIPTION = (
    "Check a deployment without serving: the configuration, Slack (the token, and that the bot can post in the "
    "alert and log channels), the database and its schema, Partoo's API and its message_updated webhook. Prints "
    "one line per check and exits 0 when all is well, 1 with every problem listed."
)
DEMO_DESCRIPTION = (
    "Run the real bot against a Slack stand-in and a simulated Partoo, all on 127.0.0.1, and print the URL of a "
    "page to try it on. Nothing to configure: every secret is made up, and the database is a temporary file."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="partoo-retry-bot",
        description="A Slack bot that retries failed Partoo messages. Configured by environment variables.",
        epilog="New here? `partoo-retry-bot demo` shows the bot at work with nothing to configure. "
        "`partoo-retry-bot <command> --help` gives a command's options.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser(
        "serve",
        help="serve Slack and Partoo webhooks over HTTP (the default)",
        description="Serve Slack and Partoo webhooks over HTTP on $PORT (what running with no command does).",
    )
    commands.add_parser(
        "check",
        help="check the configuration, Slack, the database and Partoo without serving (exit 1 on problems)",
        description=CHECK_DESCRIPTION,
    )
    demo_help = "try the bot on a local page, against a Slack stand-in and a simulated Partoo (no configuration)"
    demo_parser = commands.add_parser("demo", help=demo_help, description=DEMO_DESCRIPTION)
    demo_parser.add_argument("--port", type=int, default=0, help="the page's port on 127.0.0.1 (default: any free)")
    log_parser = commands.add_parser("log", help="work with the retry log", description="Work with the retry log.")
    log_commands = log_parser.add_subparsers(dest="log_command", required=True)
    exporter = log_commands.add_parser(
        "export",
        help="write the retry log to standard output",
        description="Write the retry log to standard output. Read-only: the database is never migrated or changed.",
    )
    exporter.add_argument("--since", default="7d", help="how far back: 7d, 12h, 30m, 2w or an ISO date (default 7d)")
    exporter.add_argument(
        "--format",
        choices=["csv", "json"],
        default="csv",
        dest="output_format",
        help="csv (default; cells a spreadsheet would run as a formula are quoted) or json",
    )
    reporter = commands.add_parser(
        "report",
        help="print the report Slack gets each week (failures, retries, deliveries) for a period up to now",
        description="Print the weekly report's figures for a period up to now. Read-only, like log export.",
    )
    reporter.add_argument("--since", default="7d", help="how far back: 7d, 12h, 30m, 2w or an ISO date (default 7d)")
    reporter.add_argument(
        "--format", choices=["text", "json"], default="text", dest="output_format", help="text (default) or json"
    )
    # `partoo-retry-bot help` is what people type first; argparse alone would call it an invalid choice.
    commands.add_parser("help", help="show this help", description="Show this help.")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "help":
        parser.print_help()
        return 0
    if arguments.command == "demo":
        # Before reading the configuration: the demo needs none and must not use a real one.
        return demo.main(port=arguments.port)
    try:
        settings = settings_from_environment()
    except ConfigError as error:
        if arguments.command == "check":
            from bot import check

            return check.report_configuration_problems(error, sys.stdout)
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    # `check` prints its own one line per check; the INFO lines of what it calls (slack_sdk's retry handler saying
    # it tries again) would land in the middle of that list.
    level = logging.WARNING if arguments.command == "check" else logging.INFO
    configure_logging(settings.secrets(), level, log_format=settings.log_format)
    try:
        if arguments.command == "check":
            from bot import check

            return asyncio.run(check.run_checks(settings, out=sys.stdout))
        if arguments.command == "log":
            return _log_export(settings, arguments.since, arguments.output_format)
        if arguments.command == "report":
            return _report(settings, arguments.since, arguments.output_format)
        return _serve(settings)
    except SchemaError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG


def _log_export(settings: Settings, since_text: str, output_format: str) -> int:
    from bot.retries import export

    try:
        since = export.parse_since(since_text)
        return asyncio.run(_export(settings, since, output_format))
    except (SchemaError, export.ExportError) as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG


async def _export(settings: Settings, since: float, output_format: str) -> int:
    from bot.retries import export

    rows = await _read_only(settings, lambda engine: RetryLog(engine).since(since))
    if rows is None:
        return 1
    export.write(rows, output_format, sys.stdout)
    # On stderr, so that the CSV or JSON on stdout stays exactly what it was.
    note = export.history_note(since, history_start(time.time(), settings.retention_days * DAY))
    if note:
        print(f"partoo-retry: {note}", file=sys.stderr)
    return 0


def _report(settings: Settings, since_text: str, output_format: str) -> int:
    from bot.retries import export

    try:
        since = export.parse_since(since_text)
    except export.ExportError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_print_report(settings, since, output_format))


async def _print_report(settings: Settings, since: float, output_format: str) -> int:
    from bot.reports import terminal
    from bot.reports.store import ReportReads

    report = await _read_only(settings, lambda engine: ReportReads(engine).report(since, time.time()))
    if report is None:
        return 1
    print(terminal.as_json(report) if output_format == "json" else terminal.as_text(report))
    return 0


async def _read_only(settings: Settings, read: Callable[[AsyncEngine], Awaitable[T]]) -> T | None:
    """What `read` finds, or None once it said why the database cannot be read.

    Audits and reports read the database as it is: they must not change it, nor guess at a schema they do
    not know (SchemaError is the caller's to tell).
    """
    from bot.platform.database import require_current_schema

    engine = create_read_only_engine(settings.database_url)
    try:
        await require_current_schema(engine)
        return await read(engine)
    except (OSError, SQLAlchemyError) as error:
        print(
            f"partoo-retry cannot read its database {display_database_url(settings.database_url)}: "
            f"{type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return None
    finally:
        await engine.dispose()


async def _prepare_database(settings: Settings) -> None:
    """Migrate before serving, so that a schema problem stops the bot with its own message."""
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def _serve(settings: Settings) -> int:
    try:
        asyncio.run(_prepare_database(settings))
    except (OSError, SQLAlchemyError) as error:
        print(
            f"partoo-retry cannot open its database {display_database_url(settings.database_url)}: "
            f"{type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return 1
    shutdown = ShutdownBudget(settings.shutdown_seconds)
    config = uvicorn.Config(
        create_app(settings, shutdown=shutdown),
        host="0.0.0.0",  # noqa: S104 - platforms (Heroku, containers) route traffic to every interface
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        # Requests being served when SIGTERM comes take their share of the one shutdown budget, no more.
        timeout_graceful_shutdown=min(HTTP_DRAIN_SECONDS, settings.shutdown_seconds // 5),
    )
    server = _Server(config, shutdown)

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler that was
    # installed before it ran; with Python's defaults that ends the process with -15 or a traceback.
    # Platforms read that as a crash, so the handlers it restores only ask the server to exit.
    def request_exit(_signum: int, _frame: object) -> None:
        shutdown.start()
        server.should_exit = True

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, request_exit)
    server.run()
    return 0 if server.started else 1


class _Server(uvicorn.Server):
    """uvicorn's server, starting the shutdown budget the moment the stop signal arrives."""

    def __init__(self, config: uvicorn.Config, shutdown: ShutdownBudget) -> None:
        super().__init__(config)
        self.shutdown_budget = shutdown

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What exists once the bot is up (some 100,000 objects: modules, classes, the app) lives as long as the
        # process. Frozen, it is left out of every later garbage collection: a full one no longer walks it,
        # which took about 17 ms of the one event loop each time, stalling every request in flight.
        gc.collect()
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.shutdown_budget.start()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
