"""`partoo-retry-bot check`: try everything the bot needs, without serving, and say what is wrong.

Each check prints one line, ✓ or ✗, with a hint under a problem; the exit code is 0 when every check
passed and 1 otherwise. Nothing here changes anything: no migration, no message, no retry. A check that
cannot mean anything after an earlier failure (the channel, when the token is refused) is skipped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import httpx
from alembic.script import ScriptDirectory
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import make_url

from bot.config import ConfigError, Settings
from bot.platform.database import MIGRATIONS, async_database_url, create_engine, display_database_url, schema_status
from bot.platform.partoo import PartooClient, PartooReadError, WebhookConfig
from bot.platform.slack import build_web_client

# A check that waits longer than this reports the wait as its problem.
CHECK_TIMEOUT = 20.0
PARTOO_TIMEOUT = httpx.Timeout(10.0)
# Gateway errors mean Partoo is down behind its load balancer; other statuses to a HEAD prove it answers.
_PARTOO_DOWN = frozenset({502, 503, 504})


class Status(Enum):
    OK = "✓"
    PROBLEM = "✗"
    SKIPPED = "-"


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    detail: str
    hint: str | None = None

    def line(self) -> str:
        text = f"{self.status.value} {self.name}: {self.detail}"
        if self.hint:
            text += f"\n    {self.hint}"
        return text


def _ok(name: str, detail: str, hint: str | None = None) -> Result:
    return Result(name, Status.OK, detail, hint)


def _problem(name: str, detail: str, hint: str | None = None) -> Result:
    return Result(name, Status.PROBLEM, detail, hint)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def _slack_code(error: SlackApiError) -> str:
    return str(error.response.get("error") or f"HTTP {error.response.status_code}")


# -- configuration ---------------------------------------------------------------------------------------


def configuration(settings: Settings) -> Result:
    mode = "Socket Mode (SLACK_APP_TOKEN)" if settings.socket_mode else f"HTTP mode on port {settings.port}"
    return _ok("configuration", f"{mode}, Partoo {settings.partoo_env.value}")


def report_configuration_problems(error: ConfigError, out: TextIO) -> int:
    """What `check` prints when the configuration does not even load: every problem, as ✗ lines."""
    for problem in error.problems:
        print(_problem("configuration", problem).line(), file=out)
    print(f"\n{len(error.problems)} configuration problem(s); the other checks need a valid configuration.", file=out)
    return 1


# -- Slack -----------------------------------------------------------------------------------------------


async def slack_token(web: AsyncWebClient, settings: Settings) -> tuple[Result, str | None]:
    """The result, and the bot's user name when the token works."""
    name = "Slack bot token"
    try:
        response = await web.auth_test()
    except SlackApiError as error:
        code = _slack_code(error)
        return _problem(
            name,
            f"Slack refused it ({code})",
            "set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (OAuth & Permissions, xoxb-…), "
            "after installing the app to the workspace",
        ), None
    except (aiohttp.ClientError, TimeoutError) as error:
        return _problem(name, f"cannot reach Slack at {settings.slack_api_url}: {_first_line(error)}"), None
    bot = str(response.get("user") or "partoo-retry")
    detail = f"@{bot} ({response.get('user_id')}) in workspace {response.get('team')} ({response.get('team_id')})"
    return _ok(name, detail), bot


async def socket_mode_token(web: AsyncWebClient, settings: Settings) -> Result:
    name = "Socket Mode"
    try:
        # Only hands out a WebSocket URL, which expires unused: nothing connects, no traffic moves.
        await web.apps_connections_open(app_token=settings.slack_app_token.value)
    except SlackApiError as error:
        return _problem(
            name,
            f"Slack refused the app-level token ({_slack_code(error)})",
            "set SLACK_APP_TOKEN to an app-level token (Basic Information → App-Level Tokens, xapp-…) with "
            "the connections:write scope, and enable Socket Mode for the app",
        )
    except (aiohttp.ClientError, TimeoutError) as error:
        return _problem(name, f"cannot reach Slack: {_first_line(error)}")
    return _ok(name, "the app-level token can open connections")


async def channel(web: AsyncWebClient, variable: str, channel_id: str, bot_name: str) -> Result:
    name = f"{variable} {channel_id}"
    invite = f"in Slack, open the channel and type /invite @{bot_name}"
    try:
        response = await web.conversations_info(channel=channel_id)
    except SlackApiError as error:
        code = _slack_code(error)
        if code == "channel_not_found":
            return _problem(
                name,
                "channel not found: the ID is wrong, or it is a private channel the bot is not in "
                "(chat:write.public reaches public channels only)",
                f"check {variable} (channel details → bottom of the About tab), or {invite}",
            )
        if code == "missing_scope":
            return _problem(
                name,
                f"the app may not read channel details ({code})",
                "add the scopes listed in app_manifest.yaml to the app, then reinstall it",
            )
        return _problem(name, f"Slack refused to describe it ({code})")
    except (aiohttp.ClientError, TimeoutError) as error:
        return _problem(name, f"cannot reach Slack: {_first_line(error)}")
    info: dict[str, Any] = response.get("channel") or {}
    shown = f"#{info['name']}" if info.get("name") else "the channel"
    if info.get("is_archived"):
        return _problem(name, f"{shown} is archived: nothing can be posted there", f"unarchive it or change {variable}")
    if info.get("is_member"):
        return _ok(name, f"{shown} is reachable and the bot is a member")
    if info.get("is_private"):
        return _problem(
            name,
            f"{shown} is private and the bot is not a member (chat:write.public reaches public channels only)",
            invite,
        )
    return _ok(
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
        return _problem("database", f"folder {folder} does not exist, so {path} cannot be created", "fix DATABASE_URL")
    if not os.access(folder, os.W_OK):
        return _problem("database", f"folder {folder} is not writable, so {path} cannot be created", "fix DATABASE_URL")
    return _ok("database", f"{path} does not exist yet; it will be created and migrated on start")


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
        return _problem(
            name, f"cannot open {shown}: {_first_line(error)}", "check DATABASE_URL and that the server runs"
        )
    finally:
        await engine.dispose()
    if current == head:
        return _ok(name, f"{shown} is reachable; its schema is up to date ({head})")
    if current is None:
        return _ok(name, f"{shown} is reachable and empty; it will be migrated on start (to {head})")
    if current in _known_revisions():
        return _ok(name, f"{shown} is reachable; its schema ({current}) will be migrated on start to {head}")
    return _problem(
        name,
        f"{shown} has schema revision {current}, which this version does not know (it knows up to {head})",
        "it was upgraded by a newer partoo-retry: run that version, or restore a backup",
    )


# -- Partoo ----------------------------------------------------------------------------------------------


async def partoo(settings: Settings) -> Result:
    name = "Partoo API"
    url = settings.partoo_api_url
    try:
        # HEAD, without the API key: proves the network path and TLS without asking Partoo to do anything.
        async with httpx.AsyncClient(timeout=PARTOO_TIMEOUT) as http:
            response = await http.head(url)
    except httpx.HTTPError as error:
        return _problem(name, f"cannot reach {url}: {_first_line(error)}", "check PARTOO_API_URL / PARTOO_ENV")
    if response.status_code in _PARTOO_DOWN:
        return _problem(name, f"{url} answers HTTP {response.status_code}: Partoo is unavailable right now")
    return _ok(name, f"{url} answers (HTTP {response.status_code}); check never asks for a retry")


# -- Partoo's webhook configuration (issue #12) ----------------------------------------------------------

WEBHOOK_ROUTE = "/partoo/webhook"
WEBHOOK_EVENT = "message_updated"


def _without_query(url: str) -> str:
    """A webhook URL without its query, which may carry a shared secret (`?key=…`), and trailing slash."""
    return url.split("?", 1)[0].split("#", 1)[0].rstrip("/")


def _shown(url: str) -> str:
    return _without_query(url) + ("?…" if "?" in url else "")


async def partoo_webhook(settings: Settings) -> Result:
    """Whether Partoo sends `message_updated` somewhere, and whether that is this bot (PUBLIC_URL)."""
    name = "Partoo webhook"
    expected = f"{settings.public_url}{WEBHOOK_ROUTE}" if settings.public_url else None
    where = expected or f"https://<the bot's public host>{WEBHOOK_ROUTE}"
    setup = f"in Partoo (Settings > Integrations > Webhooks) point {WEBHOOK_EVENT} at {where}"
    try:
        async with PartooClient(
            base_url=settings.partoo_api_url, api_key=settings.partoo_api_key.value, timeout=PARTOO_TIMEOUT
        ) as client:
            configs = await client.list_webhooks()
    except PartooReadError as error:
        if error.status == 403:
            return Result(
                name,
                Status.SKIPPED,
                f"the API key's user may not read webhook configurations (HTTP 403): {error.detail}",
                f"check by hand: {setup}",
            )
        if error.status == 401:
            return _problem(name, f"Partoo refuses the API key (HTTP 401): {error.detail}", "check PARTOO_API_KEY")
        if error.status is None:  # the Partoo API check above already names this problem
            return Result(name, Status.SKIPPED, f"not checked: {error.detail}")
        return _problem(name, f"cannot read Partoo's webhook configurations (HTTP {error.status}): {error.detail}")
    sending: list[WebhookConfig] = [config for config in configs if config.event_type == WEBHOOK_EVENT]
    if not sending:
        return _problem(
            name, f"no {WEBHOOK_EVENT} webhook is configured in Partoo: failure alerts cannot arrive", setup
        )
    urls = ", ".join(_shown(config.url) for config in sending)
    if expected is None:
        return _ok(
            name, f"{WEBHOOK_EVENT} is sent to {urls}", "set PUBLIC_URL to have this compared with the bot's URL"
        )
    if any(_without_query(config.url) == expected for config in sending):
        return _ok(name, f"{WEBHOOK_EVENT} is sent to {urls}, this bot (PUBLIC_URL)")
    return _problem(name, f"{WEBHOOK_EVENT} is sent to {urls}, not to this bot's {expected} (PUBLIC_URL)", setup)


# -- running them ----------------------------------------------------------------------------------------


async def _bounded(name: str, check: Callable[[], Awaitable[Result | list[Result]]]) -> list[Result]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            found = await check()
    except TimeoutError:
        return [_problem(name, f"no answer within {CHECK_TIMEOUT:g} s")]
    except Exception as error:
        # A check must report, not crash: the next checks still run and the list of problems stays whole.
        return [_problem(name, f"the check itself failed: {_first_line(error)}")]
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
    results = [configuration(settings)]
    print(results[0].line(), file=out)
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
