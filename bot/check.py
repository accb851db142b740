"""`partoo-retry-bot check`: try everything the bot needs, without serving, and say what is wrong.

Each check prints one line, ✓ or ✗, with a hint under a problem; the exit code is 0 when every check
passed and 1 otherwise. Nothing here changes anything: no migration, no message, no retry. A check that
cannot mean anything after an earlier failure (the channel, when the token is refused) is skipped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from alembic.script import ScriptDirectory
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import make_url

from bot.check_partoo import partoo, partoo_webhook
from bot.check_results import Result, Status, first_line, ok, problem
from bot.config import WHERE_TO_START, ConfigError, Settings
from bot.domain.access import alert_channels_refused, refused_buttons
from bot.platform.database import MIGRATIONS, async_database_url, create_engine, display_database_url, schema_status
from bot.platform.slack import build_web_client

# A check that waits longer than this reports the wait as its problem.
CHECK_TIMEOUT = 20.0


def _slack_code(error: SlackApiError) -> str:
    return str(error.response.get("error") or f"HTTP {error.response.status_code}")


# -- configuration ---------------------------------------------------------------------------------------


def configuration(settings: Settings) -> Result:
    mode = "Socket Mode (SLACK_APP_TOKEN)" if settings.socket_mode else f"HTTP mode on port {settings.port}"
    return ok("configuration", f"{mode}, Partoo {settings.partoo_env.value}")


def retry_channels(settings: Settings) -> list[Result]:
    """Whether RETRY_ALLOWED_CHANNELS lets people use the buttons of every channel alerts go to."""
    if not settings.access.channels:
        return []  # no channel restriction: every button can be used
    refused = alert_channels_refused(settings.access, settings.slack_alert_channel, settings.alert_routes.channels)
    if not refused:
        return [ok("RETRY_ALLOWED_CHANNELS", "includes every channel alerts are posted in")]
    return [
        problem(f"RETRY_ALLOWED_CHANNELS {channel}", *refused_buttons(setting, channel)) for setting, channel in refused
    ]


def report_configuration_problems(error: ConfigError, out: TextIO) -> int:
    """What `check` prints when the configuration does not even load: every problem, as ✗ lines."""
    for found in error.problems:
        print(problem("configuration", found).line(), file=out)
    print(f"\n{len(error.problems)} configuration problem(s); the other checks need a valid configuration.", file=out)
    print(WHERE_TO_START, file=out)
    return 1


# -- Slack -----------------------------------------------------------------------------------------------


async def slack_token(web: AsyncWebClient, settings: Settings) -> tuple[Result, str | None]:
    """The result, and the bot's user name when the token works."""
    name = "Slack bot token"
    try:
        response = await web.auth_test()
    except SlackApiError as error:
        code = _slack_code(error)
        return problem(
            name,
            f"Slack refused it ({code})",
            "set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (OAuth & Permissions, xoxb-…), "
            "after installing the app to the workspace",
        ), None
    except (aiohttp.ClientError, TimeoutError) as error:
        return problem(name, f"cannot reach Slack at {settings.slack_api_url}: {first_line(error)}"), None
    bot = str(response.get("user") or "partoo-retry")
    detail = f"@{bot} ({response.get('user_id')}) in workspace {response.get('team')} ({response.get('team_id')})"
    return ok(name, detail), bot


async def socket_mode_token(web: AsyncWebClient, settings: Settings) -> Result:
    name = "Socket Mode"
    try:
        # Only hands out a WebSocket URL, which expires unused: nothing connects, no traffic moves.
        await web.apps_connections_open(app_token=settings.slack_app_token.value)
    except SlackApiError as error:
        return problem(
            name,
            f"Slack refused the app-level token ({_slack_code(error)})",
            "set SLACK_APP_TOKEN to an app-level token (Basic Information → App-Level Tokens, xapp-…) with "
            "the connections:write scope, and enable Socket Mode for the app",
        )
    except (aiohttp.ClientError, TimeoutError) as error:
        return problem(name, f"cannot reach Slack: {first_line(error)}")
    return ok(name, "the app-level token can open connections")


async def channel(web: AsyncWebClient, variable: str, channel_id: str, bot_name: str) -> Result:
    name = f"{variable} {channel_id}"
    invite = f"in Slack, open the channel and type /invite @{bot_name}"
    try:
        response = await web.conversations_info(channel=channel_id)
    except SlackApiError as error:
        code = _slack_code(error)
        if code == "channel_not_found":
            return problem(
                name,
                "channel not found: the ID is wrong, or it is a private channel the bot is not in "
                "(chat:write.public reaches public channels only)",
                f"check {variable} (channel details → bottom of the About tab), or {invite}",
            )
        if code == "missing_scope":
            return problem(
                name,
                f"the app may not read channel details ({code})",
                "add the scopes listed in app_manifest.yaml to the app, then reinstall it",
            )
        return problem(name, f"Slack refused to describe it ({code})")
    except (aiohttp.ClientError, TimeoutError) as error:
        return problem(name, f"cannot reach Slack: {first_line(error)}")
    info: dict[str, Any] = response.get("channel") or {}
    shown = f"#{info['name']}" if info.get("name") else "the channel"
    if info.get("is_archived"):
        return problem(name, f"{shown} is archived: nothing can be posted there", f"unarchive it or change {variable}")
    if info.get("is_member"):
        return ok(name, f"{shown} is reachable and the bot is a member")
    if info.get("is_private"):
        return problem(
            name,
            f"{shown} is private and the bot is not a member (chat:write.public reaches public channels only)",
            invite,
        )
    return ok(
        name,
        f"{shown} is public; the bot is not a member and posts there through chat:write.public, "
        "which works for public channels only",
        f"if the channel ever becomes private, {invite}",
    )


async def slack(settings: Settings, web: AsyncWebClient) -> list[Result]:
    token, bot_name = await slack_token(web, settings)
    results = [token]
    if settings.socket_mode:
        results.append(await socket_mode_token(web, settings))
    channels = [
        ("SLACK_ALERT_CHANNEL", settings.slack_alert_channel),
        ("SLACK_LOG_CHANNEL", settings.slack_log_channel),
        *(("ALERT_ROUTES", routed) for routed in sorted(settings.alert_routes.channels)),
    ]
    for variable, channel_id in channels:
        if channel_id is None:
            results.append(Result(variable, Status.SKIPPED, "not set"))
        elif bot_name is None:
            results.append(
                Result(f"{variable} {channel_id}", Status.SKIPPED, "not checked: the bot token does not work")
            )
        else:
            results.append(await channel(web, variable, channel_id, bot_name))
    return results


# -- database --------------------------------------------------------------------------------------------


def _known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def _missing_sqlite_file(url: str) -> Result | None:
    """For a SQLite file that does not exist yet: whether the bot can create it (checked without creating it)."""
    parsed = make_url(async_database_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    if path.exists():
        return None
    folder = path.parent.resolve()
    if not folder.is_dir():
        return problem("database", f"folder {folder} does not exist, so {path} cannot be created", "fix DATABASE_URL")
    if not os.access(folder, os.W_OK):
        return problem("database", f"folder {folder} is not writable, so {path} cannot be created", "fix DATABASE_URL")
    return ok("database", f"{path} does not exist yet; it will be created and migrated on start")


async def database(settings: Settings) -> Result:
    name = "database"
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        return missing
    shown = display_database_url(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        current, head = await schema_status(engine)
    except Exception as error:
        # Drivers raise their own classes (OSError, asyncpg's, SQLAlchemy's); each one means "cannot use it".
        return problem(name, f"cannot open {shown}: {first_line(error)}", "check DATABASE_URL and that the server runs")
    finally:
        await engine.dispose()
    if current == head:
        return ok(name, f"{shown} is reachable; its schema is up to date ({head})")
    if current is None:
        return ok(name, f"{shown} is reachable and empty; it will be migrated on start (to {head})")
    if current in _known_revisions():
        return ok(name, f"{shown} is reachable; its schema ({current}) will be migrated on start to {head}")
    return problem(
        name,
        f"{shown} has schema revision {current}, which this version does not know (it knows up to {head})",
        "it was upgraded by a newer partoo-retry: run that version, or restore a backup",
    )


# -- running them ----------------------------------------------------------------------------------------


async def _bounded(name: str, check: Callable[[], Awaitable[Result | list[Result]]]) -> list[Result]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            found = await check()
    except TimeoutError:
        return [problem(name, f"no answer within {CHECK_TIMEOUT:g} s")]
    except Exception as error:
        # A check must report, not crash: the next checks still run and the list of problems stays whole.
        return [problem(name, f"the check itself failed: {first_line(error)}")]
    return found if isinstance(found, list) else [found]


async def run_checks(settings: Settings, *, out: TextIO) -> int:
    """Run every check, print one line each to `out`, and return the exit code (0: all passed, 1: not)."""
    web = build_web_client(settings.slack_bot_token.value, settings.slack_api_url)
    checks: list[tuple[str, Callable[[], Awaitable[Result | list[Result]]]]] = [
        ("Slack", lambda: slack(settings, web)),
        ("database", lambda: database(settings)),
        ("Partoo API", lambda: partoo(settings)),
        ("Partoo webhook", lambda: partoo_webhook(settings)),
    ]
    results = [configuration(settings), *retry_channels(settings)]
    for result in results:
        print(result.line(), file=out)
    for name, check in checks:
        # Printed as each check ends, so that a slow one shows which it is.
        found = await _bounded(name, check)
        for result in found:
            print(result.line(), file=out, flush=True)
        results += found
    problems = [result for result in results if result.status is Status.PROBLEM]
    passed = sum(result.status is Status.OK for result in results)
    if problems:
        names = ", ".join(result.name for result in problems)
        print(f"\n{len(problems)} problem(s), {passed} check(s) passed. To fix: {names}.", file=out)
        return 1
    print(f"\nAll {passed} checks passed.", file=out)
    return 0
