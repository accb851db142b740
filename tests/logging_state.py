"""Undo `configure_logging` after a test: it replaces the root handlers (pytest's included) and levels."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

_NOISY = ("slack_sdk", "slack_bolt", "httpx", "httpcore", "aiohttp", "sqlalchemy", "alembic")


@contextlib.contextmanager
def preserved_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in _NOISY}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, noisy_level in levels.items():
            logging.getLogger(name).setLevel(noisy_level)
