"""Settings: the one place that reads the environment (and `.env`).

Every variable here is part of the public contract in the README; renaming one breaks deploy scripts.
`load_settings` collects every problem before failing, so a misconfigured deploy is fixed in one go.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from dotenv import find_dotenv, load_dotenv

from bot.defaults import (
    DEFAULT_BULK_PLAN_MAX,
    DEFAULT_CONVERSATION_CHECK,
    DEFAULT_CONVERSATION_CHECK_CACHE_SECONDS,
    DEFAULT_DATABASE_URL,
    DEFAULT_LOG_FORMAT,
    DEFAULT_NOT_CONFIRMED_MINUTES,
    DEFAULT_PORT,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    DEFAULT_REPORT_SCHEDULE,
    DEFAULT_REPORT_TIMEZONE,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_SHUTDOWN_SECONDS,
    DEFAULT_SLACK_API_URL,
    LOG_FORMATS,
    MAX_RETENTION_DAYS,
    MAX_SILENCE_MINUTES,
    PRODUCTION_API_URL,
    SANDBOX_API_URL,
)
from bot.domain.access import AccessPolicy
from bot.domain.alert_routes import AlertRoutes, parse_routes
from bot.domain.weekly_report import Schedule, ScheduleError, parse_schedule
from bot.platform.signatures import (
    PRODUCTION_PUBLIC_KEY_PEM,
    SANDBOX_PUBLIC_KEY_PEM,
    InvalidPublicKey,
    load_public_key,
)

_SLACK_ID = re.compile(r"^[A-Z0-9]{2,}$")


class PartooEnvironment(StrEnum):
    PRODUCTION = "production"
    SANDBOX = "sandbox"


# Where a newcomer goes from the missing-configuration message: most who see it have not configured anything yet.
WHERE_TO_START = (
    "To configure it: copy .env.example to .env and fill it in (each variable is explained there; the README's\n"
    '"Setup in five minutes" creates the Slack app), or set the same variables in the environment.\n'
    "To see the bot at work first, with nothing to configure: partoo-retry-bot demo"
)


class ConfigError(Exception):
    """The configuration cannot run the bot; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

    def __str__(self) -> str:
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        return f"partoo-retry cannot start, the configuration has problems:\n{lines}\n\n{WHERE_TO_START}"


@dataclass(frozen=True)
class Secret:
    """A value that must never be printed: its repr and str hide it."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class Settings:
    slack_bot_token: Secret
    slack_signing_secret: Secret
    slack_app_token: Secret
    slack_api_url: str
    slack_alert_channel: str | None
    slack_log_channel: str | None
    partoo_api_key: Secret
    partoo_env: PartooEnvironment
    partoo_api_url: str
    partoo_webhook_public_key: Ed25519PublicKey = field(repr=False)
    partoo_rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE
    access: AccessPolicy = field(default_factory=AccessPolicy)
    database_url: str = DEFAULT_DATABASE_URL
    port: int = DEFAULT_PORT
    store_message_preview: bool = True
    log_format: str = DEFAULT_LOG_FORMAT  # one of bot.logs.LOG_FORMATS
    # ALERT_ROUTES: failures of some businesses or messaging partners go to their own channels.
    alert_routes: AlertRoutes = field(default_factory=AlertRoutes)
    conversation_check: bool = DEFAULT_CONVERSATION_CHECK
    conversation_check_cache_seconds: int = DEFAULT_CONVERSATION_CHECK_CACHE_SECONDS
    not_confirmed_minutes: int = DEFAULT_NOT_CONFIRMED_MINUTES
    bulk_plan_max: int = DEFAULT_BULK_PLAN_MAX
    # Retention and webhook health: 0 days keeps everything; None minutes never warns; None URL compares nothing.
    retention_days: int = DEFAULT_RETENTION_DAYS
    webhook_silence_alert_minutes: int | None = None
    public_url: str | None = None
    shutdown_seconds: int = DEFAULT_SHUTDOWN_SECONDS
    # The weekly report goes to REPORT_CHANNEL, else SLACK_LOG_CHANNEL; with neither it is not posted.
    report_channel: str | None = None
    report_schedule: Schedule = field(
        default_factory=lambda: parse_schedule(DEFAULT_REPORT_SCHEDULE, ZoneInfo(DEFAULT_REPORT_TIMEZONE))
    )

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction and for tests that scan output."""
        values = [self.slack_bot_token, self.slack_signing_secret, self.slack_app_token, self.partoo_api_key]
        return [secret.value for secret in values if secret]


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from a mapping of environment variables, or raise ConfigError listing every problem."""
    problems: list[str] = []

    def text(name: str) -> str:
        return environ.get(name, "").strip()

    def required(name: str, hint: str) -> str:
        value = text(name)
        if not value:
            problems.append(f"{name} is required ({hint}).")
        return value

    bot_token = required("SLACK_BOT_TOKEN", "the bot token, xoxb-…")
    if bot_token and not bot_token.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-.")
    app_token = text("SLACK_APP_TOKEN")
    if app_token and not app_token.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-.")
    signing_secret = text("SLACK_SIGNING_SECRET")
    if not signing_secret and not app_token:
        problems.append("SLACK_SIGNING_SECRET is required in HTTP mode (set SLACK_APP_TOKEN for Socket Mode).")

    slack_api_url = text("SLACK_API_URL") or DEFAULT_SLACK_API_URL
    if not slack_api_url.startswith(("http://", "https://")):
        problems.append("SLACK_API_URL must be an http(s) URL.")
    if not slack_api_url.endswith("/"):
        slack_api_url += "/"

    alert_channel = _channel(text("SLACK_ALERT_CHANNEL"), "SLACK_ALERT_CHANNEL", problems)
    log_channel = _channel(text("SLACK_LOG_CHANNEL"), "SLACK_LOG_CHANNEL", problems)
    alert_routes, route_problems = parse_routes(text("ALERT_ROUTES"))
    problems.extend(route_problems)

    api_key = required("PARTOO_API_KEY", "the key of a Partoo user allowed to retry messages")
    partoo_env = PartooEnvironment.PRODUCTION
    try:
        partoo_env = PartooEnvironment(text("PARTOO_ENV").lower() or "production")
    except ValueError:
        problems.append("PARTOO_ENV must be production or sandbox.")
    sandbox = partoo_env is PartooEnvironment.SANDBOX
    partoo_api_url = (text("PARTOO_API_URL") or (SANDBOX_API_URL if sandbox else PRODUCTION_API_URL)).rstrip("/")
    if not partoo_api_url.startswith(("http://", "https://")):
        problems.append("PARTOO_API_URL must be an http(s) URL, e.g. https://api.partoo.co/v2.")

    pem = text("PARTOO_WEBHOOK_PUBLIC_KEY") or (SANDBOX_PUBLIC_KEY_PEM if sandbox else PRODUCTION_PUBLIC_KEY_PEM)
    public_key = load_public_key(PRODUCTION_PUBLIC_KEY_PEM)
    try:
        public_key = load_public_key(pem)
    except InvalidPublicKey as error:
        problems.append(f"PARTOO_WEBHOOK_PUBLIC_KEY is not usable: {error}")

    rate = _integer(
        text("PARTOO_RATE_LIMIT_PER_MINUTE"),
        "PARTOO_RATE_LIMIT_PER_MINUTE",
        problems,
        default=DEFAULT_RATE_LIMIT_PER_MINUTE,
        low=1,
        high=100_000,
    )
    port = _integer(text("PORT"), "PORT", problems, default=DEFAULT_PORT, low=0, high=65535)
    shutdown_seconds = _integer(
        text("SHUTDOWN_SECONDS"), "SHUTDOWN_SECONDS", problems, default=DEFAULT_SHUTDOWN_SECONDS, low=5, high=3600
    )

    access = AccessPolicy(
        users=_id_list(text("RETRY_ALLOWED_USERS"), "RETRY_ALLOWED_USERS", problems),
        usergroups=_id_list(text("RETRY_ALLOWED_USERGROUPS"), "RETRY_ALLOWED_USERGROUPS", problems),
        channels=_id_list(text("RETRY_ALLOWED_CHANNELS"), "RETRY_ALLOWED_CHANNELS", problems),
    )

    database_url = text("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database_url.startswith(("sqlite:", "sqlite+aiosqlite:", "postgresql", "postgres:")):
        problems.append("DATABASE_URL must start with sqlite:/// or postgresql://.")

    log_format = text("LOG_FORMAT").lower() or DEFAULT_LOG_FORMAT
    if log_format not in LOG_FORMATS:
        problems.append(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}.")

    store_message_preview = _boolean(text("STORE_MESSAGE_PREVIEW"), "STORE_MESSAGE_PREVIEW", problems, default=True)

    conversation_check = _boolean(
        text("CONVERSATION_CHECK"), "CONVERSATION_CHECK", problems, default=DEFAULT_CONVERSATION_CHECK
    )
    check_cache_seconds = _integer(
        text("CONVERSATION_CHECK_CACHE_SECONDS"),
        "CONVERSATION_CHECK_CACHE_SECONDS",
        problems,
        default=DEFAULT_CONVERSATION_CHECK_CACHE_SECONDS,
        low=0,
        high=3600,
    )
    not_confirmed_minutes = _integer(
        text("NOT_CONFIRMED_MINUTES"),
        "NOT_CONFIRMED_MINUTES",
        problems,
        default=DEFAULT_NOT_CONFIRMED_MINUTES,
        low=1,
        high=24 * 60,
    )
    bulk_plan_max = _integer(
        text("BULK_PLAN_MAX"), "BULK_PLAN_MAX", problems, default=DEFAULT_BULK_PLAN_MAX, low=1, high=100_000
    )
    retention_days = _integer(
        text("RETENTION_DAYS"),
        "RETENTION_DAYS",
        problems,
        default=DEFAULT_RETENTION_DAYS,
        low=0,
        high=MAX_RETENTION_DAYS,
    )
    silence_text = text("WEBHOOK_SILENCE_ALERT_MINUTES")
    silence_minutes = (
        _integer(silence_text, "WEBHOOK_SILENCE_ALERT_MINUTES", problems, default=0, low=1, high=MAX_SILENCE_MINUTES)
        if silence_text
        else None
    )
    public_url = text("PUBLIC_URL").rstrip("/") or None
    if public_url and not public_url.startswith(("http://", "https://")):
        problems.append("PUBLIC_URL must be the bot's public http(s) base URL, e.g. https://partoo-retry.example.com.")

    report_channel = _channel(text("REPORT_CHANNEL"), "REPORT_CHANNEL", problems) or log_channel
    report_schedule = _schedule(text("REPORT_SCHEDULE"), text("REPORT_TIMEZONE"), problems)

    if problems:
        raise ConfigError(problems)
    return Settings(
        slack_bot_token=Secret(bot_token),
        slack_signing_secret=Secret(signing_secret),
        slack_app_token=Secret(app_token),
        slack_api_url=slack_api_url,
        slack_alert_channel=alert_channel,
        slack_log_channel=log_channel,
        partoo_api_key=Secret(api_key),
        partoo_env=partoo_env,
        partoo_api_url=partoo_api_url,
        partoo_webhook_public_key=public_key,
        partoo_rate_limit_per_minute=rate,
        access=access,
        database_url=database_url,
        port=port,
        store_message_preview=store_message_preview,
        log_format=log_format,
        alert_routes=alert_routes,
        conversation_check=conversation_check,
        conversation_check_cache_seconds=check_cache_seconds,
        not_confirmed_minutes=not_confirmed_minutes,
        bulk_plan_max=bulk_plan_max,
        retention_days=retention_days,
        webhook_silence_alert_minutes=silence_minutes,
        public_url=public_url,
        shutdown_seconds=shutdown_seconds,
        report_channel=report_channel,
        report_schedule=report_schedule,
    )


def settings_from_environment() -> Settings:
    """Load `.env` (without overriding real environment variables), then the environment."""
    # Look from the working directory (where the user keeps .env), not from this file's folder.
    load_dotenv(find_dotenv(usecwd=True), override=False)
    return load_settings(os.environ)


def _channel(value: str, name: str, problems: list[str]) -> str | None:
    if not value:
        return None
    if not _SLACK_ID.match(value):
        problems.append(f"{name} must be a channel ID such as C0123ABCD (not a #name).")
    return value


def _schedule(when: str, zone_name: str, problems: list[str]) -> Schedule:
    try:
        zone = ZoneInfo(zone_name or DEFAULT_REPORT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"REPORT_TIMEZONE must be a time zone name such as Europe/Paris, not {zone_name!r}.")
        zone = ZoneInfo(DEFAULT_REPORT_TIMEZONE)
    try:
        return parse_schedule(when or DEFAULT_REPORT_SCHEDULE, zone)
    except ScheduleError as error:
        problems.append(f"REPORT_SCHEDULE: {error}.")
        return parse_schedule(DEFAULT_REPORT_SCHEDULE, zone)


def _id_list(value: str, name: str, problems: list[str]) -> frozenset[str]:
    ids = frozenset(part.strip() for part in value.replace(" ", ",").split(",") if part.strip())
    bad = sorted(item for item in ids if not _SLACK_ID.match(item))
    if bad:
        problems.append(f"{name} must list Slack IDs separated by commas; not IDs: {', '.join(bad)}.")
    return ids


def _boolean(value: str, name: str, problems: list[str], *, default: bool) -> bool:
    if not value:
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    problems.append(f"{name} must be true or false.")
    return default


def _integer(value: str, name: str, problems: list[str], *, default: int, low: int, high: int) -> int:
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        problems.append(f"{name} must be a whole number.")
        return default
    if not low <= number <= high:
        problems.append(f"{name} must be between {low} and {high}.")
        return default
    return number
