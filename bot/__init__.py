"""partoo-retry: a Slack bot that retries failed Partoo messages and keeps a shared retry log."""

from __future__ import annotations

__version__ = "0.1.0"
