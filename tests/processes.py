"""The bot as a separate process, started the way a user or a platform starts it.

`start_bot(env, tmp_path)` runs `python -m bot` (or any command) in its own directory and process group,
with stdout and stderr in files there, and returns a `BotProcess`; use it as a context manager so the
process is killed whatever happens in the test:

    with start_bot(environment, tmp_path) as bot:
        bot.wait_healthy()
        ...
        assert bot.stop(signal.SIGTERM) == 0
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.harness import SIGNING_SECRET
from tests.signing import slack_signature_headers, slash_command_body
from tests.waiting import wait_until

# Importing the bot, migrating the database and binding the port; generous for a loaded CI machine.
STARTUP_TIMEOUT = 30.0
# Heroku and Kubernetes send SIGKILL 30 s after SIGTERM; the bot must be gone well before.
STOP_TIMEOUT = 25.0

_runs = itertools.count(1)


class BotExited(Exception):
    """The process ended while a test waited for it to serve (not an AssertionError: waiting stops)."""


# The directory holding this checkout's bot/ and tests/.
CHECKOUT = str(Path(__file__).resolve().parent.parent)


def free_port() -> int:
    """A TCP port nothing listens on right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def executable_dir() -> Path:
    """The directory of this interpreter (the virtualenv's bin), where `python` and console scripts live."""
    # Not resolved: a virtualenv's python is a symlink to the base interpreter, outside the venv.
    return Path(sys.executable).parent


def search_path() -> str:
    """PATH with this virtualenv first, as a platform puts the app's own python first."""
    return os.pathsep.join([str(executable_dir()), os.environ.get("PATH", os.defpath)])


@dataclass
class BotProcess:
    """A started bot: its port, its output files, and ways to signal and stop it."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stdout_path(self) -> Path:
        return self.directory / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.directory / "stderr.log"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self) -> str:
        """Everything the process wrote so far, stdout then stderr."""
        return f"--- stdout ---\n{self.stdout()}--- stderr ---\n{self.stderr()}"

    def running(self) -> bool:
        return self.process.poll() is None

    def healthy(self) -> bool:
        """Whether GET /healthz answers 200 now; raises BotExited once the process is gone."""
        if not self.running():
            raise BotExited(f"the bot exited with {self.process.returncode} before serving /healthz\n{self.logs()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        wait_until(self.healthy, timeout=timeout, interval=0.05, message=f"GET {self.url}/healthz never 200")

    def command(self, text: str, *, response_url: str) -> httpx.Response:
        """Run `/partoo-retry <text>` as Slack sends it: signed, to /slack/events."""
        body = slash_command_body(text, response_url=response_url)
        headers = slack_signature_headers(SIGNING_SECRET, body)
        return httpx.post(f"{self.url}/slack/events", content=body, headers=headers, timeout=10.0)

    def send(self, sig: int) -> None:
        """Send `sig` to the whole process group: the bot, and the shell of a Procfile command if any."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send `sig` and wait for the exit; return the exit code (negative: ended by that signal)."""
        self.send(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            name = signal.Signals(sig).name
            raise AssertionError(f"the bot was still running {timeout} s after {name}\n{self.logs()}") from None

    def kill(self) -> None:
        """SIGKILL whatever is left of the process group and reap the bot; safe to call at any time."""
        # The group outlives its leader while a child (the bot under `sh -c`) still runs, so signal it even
        # when the leader has exited.
        self.send(signal.SIGKILL)
        self.process.wait(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()


def start_bot(
    env: Mapping[str, str],
    tmp_path: Path,
    *,
    command: Sequence[str] | None = None,
    port: int | None = None,
    name: str = "bot",
) -> BotProcess:
    """Start `command` (default `python -m bot`) with `env`, PORT, PYTHONUNBUFFERED and PATH (unless set).

    Nothing else of the test's environment leaks in. Each call gets its own working directory under
    `tmp_path` (no stray `.env` there), holding `stdout.log` and `stderr.log`. Pass `port` to restart a bot
    on the port of a previous one.
    """
    port = free_port() if port is None else port
    directory = tmp_path / f"{name}-{next(_runs)}"
    directory.mkdir(parents=True)
    # The bot of this checkout, not whichever one is installed: checking a test against an older commit's bot/
    # (a scratch worktree) must run that bot, or the test "passes" against today's code.
    environment = {"PATH": search_path(), "PYTHONPATH": CHECKOUT, **env, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    argv = list(command) if command is not None else [sys.executable, "-m", "bot"]
    with (directory / "stdout.log").open("wb") as stdout, (directory / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            argv,
            cwd=directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            # Its own process group: signals reach the bot and its shell, never pytest.
            start_new_session=True,
        )
    return BotProcess(process=process, port=port, directory=directory)
