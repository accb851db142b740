"""`partoo-retry-bot demo`: the real bot, a Slack stand-in and a simulated Partoo, all on 127.0.0.1.

Two servers share one event loop: the bot's own ASGI app (served by uvicorn, exactly as in production) and
the demo's server (the page, the Slack Web API stand-in and the simulated Partoo). Every secret is made up
for this run, the database is a SQLite file in a temporary folder that is removed on exit, and nothing is
read from the environment or `.env`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TextIO

import httpx
import uvicorn
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bot.app import create_app
from bot.assembly import Tuning
from bot.config import Settings, load_settings
from bot.demo.changes import Changes
from bot.demo.controls import Knobs
from bot.demo.modals import Modals
from bot.demo.page import build_page_app
from bot.demo.partoo_sim import SimulatedPartoo
from bot.demo.signed import SignedSlack
from bot.demo.slack_standin import SlackStandIn
from bot.demo.workspace import (
    ALERT_CHANNEL,
    ALLOWED_USERS,
    CUSTOMER,
    CUSTOMER_MESSAGE,
    CUSTOMER_MESSAGE_ID,
    LOG_CHANNEL,
    SUPPORT_CHANNEL,
)
from bot.logs import configure_logging
from bot.running import Bot

HOST = "127.0.0.1"
# Shorter than production so that the page shows each step within seconds: loops poll more often, a
# transient failure is retried sooner, Partoo's silence is given up on after 4 s, and retries are paced at
# 600 a minute, so a "Retry all" of an outage finishes in about half a minute.
DEMO_TUNING = Tuning(
    poll_interval=0.2,
    log_channel_interval=3.0,
    retry_policy=replace(Tuning().retry_policy, base_delay=1.0, max_delay=5.0, max_total_seconds=120.0),
    partoo_timeout=httpx.Timeout(connect=2.0, read=4.0, write=2.0, pool=2.0),
)
DEMO_RATE_PER_MINUTE = 600
# The demo never talks to the real Slack or Partoo. Libraries read some variables by themselves (Bolt:
# SLACK_BOT_TOKEN, SLACK_CLIENT_ID…; slack_sdk and httpx: proxies, which would catch loopback calls), so
# they are removed from this process before anything is built.
_IGNORED_PREFIXES = ("SLACK_", "PARTOO_")
_IGNORED_NAMES = {"DATABASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}


def main(port: int = 0, out: TextIO = sys.stdout) -> int:
    """Run the demo until SIGINT or SIGTERM; the page is served on `port` (0: any free port)."""
    _forget_real_configuration()
    with tempfile.TemporaryDirectory(prefix="partoo-retry-demo-") as folder:
        return asyncio.run(_run(Path(folder), port, out))


def _settings(page_url: str, folder: Path, webhook_key: Ed25519PublicKey) -> Settings:
    """The bot's settings for this run: made-up secrets, the stand-ins' URLs and a throwaway database.

    Given to `load_settings` as the variables a user would set (the README's public contract), so the
    demo's settings are checked like anyone's; the mapping is built here, never read from the environment.
    """
    pem = webhook_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return load_settings(
        {
            "SLACK_BOT_TOKEN": f"xoxb-demo-{secrets.token_hex(12)}",
            "SLACK_SIGNING_SECRET": secrets.token_hex(16),
            "SLACK_API_URL": f"{page_url}/slack/api/",
            "SLACK_ALERT_CHANNEL": ALERT_CHANNEL.id,
            "SLACK_LOG_CHANNEL": LOG_CHANNEL.id,
            "PARTOO_API_KEY": f"demo-{secrets.token_hex(12)}",
            "PARTOO_ENV": "sandbox",
            "PARTOO_API_URL": f"{page_url}/partoo/v2",
            "PARTOO_WEBHOOK_PUBLIC_KEY": pem,
            "PARTOO_RATE_LIMIT_PER_MINUTE": str(DEMO_RATE_PER_MINUTE),
            "RETRY_ALLOWED_USERS": ",".join(sorted(ALLOWED_USERS)),
            "DATABASE_URL": f"sqlite:///{folder / 'demo.db'}",
            "LOG_FORMAT": "text",
        }
    )


async def _run(folder: Path, port: int, out: TextIO) -> int:
    page_socket, bot_socket = _listen(port), _listen(0)
    page_port = page_socket.getsockname()[1]
    page_url, bot_url = f"http://{HOST}:{page_port}", f"http://{HOST}:{bot_socket.getsockname()[1]}"
    webhook_key = Ed25519PrivateKey.generate()
    settings = _settings(page_url, folder, webhook_key.public_key())
    changes = Changes()
    partoo = SimulatedPartoo(
        api_key=settings.partoo_api_key.value,
        webhook_key=webhook_key,
        base_url=page_url,
        bot_url=bot_url,
        changes=changes,
    )
    # The terminal shows only the page's URL: the bot's lines (hundreds a minute in an outage) go to a file.
    log_path = folder / "demo.log"
    log_file = log_path.open("a", encoding="utf-8")
    configure_logging(settings.secrets(), log_format=settings.log_format, stream=log_file)
    # uvicorn's lines come from a logger named "uvicorn.error" and name the bot's own port, not the page's.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    standin = SlackStandIn(bot_token=settings.slack_bot_token.value, base_url=page_url, changes=changes)
    modals = Modals(changes)
    standin.add_method("views.open", modals.views_open)
    # A customer's complaint about a message no webhook reported: what the message shortcut is for.
    partoo.unreported_failure(CUSTOMER_MESSAGE_ID)
    standin.post(SUPPORT_CHANNEL.id, CUSTOMER.id, CUSTOMER_MESSAGE)
    slack = SignedSlack(bot_url, settings.slack_signing_secret.value)
    hosts = {f"{HOST}:{page_port}", f"localhost:{page_port}"}
    bot_app = create_app(settings, DEMO_TUNING)
    bot: Bot = bot_app.state.bot
    # The demo's settings name a log channel, so the weekly report is on: the page may ask for it at once.
    assert bot.report_poster is not None
    knobs = Knobs(partoo, report=bot.report_poster)
    page_app = build_page_app(standin, knobs, slack, changes, modals=modals, hosts=hosts)
    # A short shutdown: what is still open at exit (the page's event stream, a held Partoo answer) is cut.
    runner = web.AppRunner(page_app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, page_socket).start()

    config = uvicorn.Config(
        bot_app,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config, on_exit=partoo.stop_sending)
    # uvicorn stops on SIGINT/SIGTERM, then re-raises the signal to the handler that was there before it
    # ran; this one only asks it to stop, so Ctrl-C ends the demo with exit code 0 and no traceback.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, server.handle_exit)

    serving = asyncio.create_task(server.serve(sockets=[bot_socket]))
    ready = asyncio.create_task(server.ready.wait())
    try:
        await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if server.started:
            print(f"(Slack and Partoo are stand-ins on this machine; the bot logs to {log_path}.)", file=out)
            print("Ctrl-C stops the demo and deletes its database and log.", file=out)
            print(f"partoo-retry demo: open {page_url}/", file=out, flush=True)
        await serving
    finally:
        changes.close()
        await slack.aclose()
        await partoo.stop()
        await runner.cleanup()
        logging.getLogger().handlers.clear()
        log_file.close()
    if server.started:
        # Said again on the way out: the first one may have scrolled away.
        print(f"partoo-retry demo stopped (it was at {page_url}/).", file=out, flush=True)
    return 0 if server.started else 1


class _Server(uvicorn.Server):
    """uvicorn's server, which says when it serves, and tells the simulated Partoo when a stop is asked."""

    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Webhooks sent while the bot shuts down would only fail: the bot no longer listens.
        self._on_exit()
        super().handle_exit(sig, frame)


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    return sock


def _forget_real_configuration() -> None:
    for name in list(os.environ):
        if name.upper().startswith(_IGNORED_PREFIXES) or name.upper() in _IGNORED_NAMES:
            del os.environ[name]
