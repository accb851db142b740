"""The slash command's grammar limits: how many ids one command may carry, how long a log may be."""

from __future__ import annotations

COMMAND = "/partoo-retry"


MAX_IDS = 100


DEFAULT_LOG_SIZE = 10


MAX_LOG_SIZE = 50


# Partoo message ids are integers; the database stores them as signed 64-bit.
MAX_MESSAGE_ID = 2**63 - 1
