"""`partoo-retry-bot demo` as a separate process, started the way the README starts it.

`running_demo(tmp_path)` starts it, waits for the one URL it prints, and kills it when the block ends;
`RunningDemo.state(user)` is what the page reads.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.processes import STARTUP_TIMEOUT, BotExited, BotProcess, start_bot
from tests.waiting import wait_until

DEMO_COMMAND = (sys.executable, "-m", "bot", "demo")
_URL = re.compile(r"open (http://127\.0\.0\.1:\d+/)")
_LOG = re.compile(r"the bot logs to (\S+)\.\)")


@dataclass
class RunningDemo:
    process: BotProcess
    url: str

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path.lstrip('/')}", params=params, timeout=10.0)

    def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}{path.lstrip('/')}", json=dict(body), timeout=10.0)

    def state(self, user: str = "UALICE") -> dict[str, Any]:
        response = self.get("/demo/state", user=user)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def bot_log(self) -> str:
        """What the bot logged so far, in the file the demo named (in its temporary folder, gone after a stop)."""
        found = _LOG.search(self.process.stdout())
        assert found, f"the demo did not say where the bot logs:\n{self.process.stdout()}"
        return Path(found[1]).read_text(errors="replace")

    def channel_messages(self, channel_id: str, user: str = "UALICE") -> list[dict[str, Any]]:
        channel = next(c for c in self.state(user)["channels"] if c["id"] == channel_id)
        messages: list[dict[str, Any]] = channel["messages"]
        return messages


def printed_url(process: BotProcess) -> str | None:
    """The page's URL once the demo printed it; raises BotExited if the process ended first."""
    if not process.running():
        raise BotExited(f"the demo exited with {process.process.returncode}\n{process.logs()}")
    match = _URL.search(process.stdout())
    return match.group(1) if match else None


@contextlib.contextmanager
def running_demo(tmp_path: Path, env: Mapping[str, str] | None = None) -> Iterator[RunningDemo]:
    """Start the demo with only `env` (PATH aside), wait for its URL, and kill it whatever happens."""
    with start_bot(env or {}, tmp_path, command=DEMO_COMMAND, name="demo") as process:
        url = wait_until(
            lambda: printed_url(process),
            timeout=STARTUP_TIMEOUT,
            interval=0.05,
            message="the demo never printed its URL",
        )
        assert url is not None  # wait_until returns only a truthy value
        yield RunningDemo(process, url)
