"""`python -m bot` / `partoo-retry-bot`: serve the bot, configured by the environment."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from bot.app import create_app
from bot.config import ConfigError, settings_from_environment
from bot.logs import configure_logging
from bot.store.database import SchemaTooNewError

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="partoo-retry-bot", description=__doc__)
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve"], help="what to do (default: serve)"
    )
    parser.parse_args(argv)
    try:
        settings = settings_from_environment()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.secrets())
    config = uvicorn.Config(
        create_app(settings),
        host="0.0.0.0",  # noqa: S104 - platforms (Heroku, containers) route traffic to every interface
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        # Heroku and Kubernetes give 30 s between SIGTERM and SIGKILL.
        timeout_graceful_shutdown=20,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except SchemaTooNewError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
