"""What every benchmark shares: fakes with realistic latency, bot processes, load, measurements.

The fakes are the test suite's (tests/fakes), serving on 127.0.0.1 from threads of the benchmark process.
Both bots run as separate processes started the way users start them (tests/processes.py): the real bot
with `python -m bot`, the naive one with `python bench/naive_bot.py`, each configured by environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import math
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.databases import create_database, drop_database, postgres_server_url, probe_postgres_server
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import BOT_TOKEN, CHANNEL, PARTOO_API_KEY, SIGNING_SECRET, USER, bot_environment
from tests.processes import BotProcess, start_bot
from tests.signing import PartooSigner, json_body, message_updated_event, slack_signature_headers, slash_command_body

REPO = Path(__file__).resolve().parent.parent
NAIVE_BOT = Path(__file__).with_name("naive_bot.py")

# Realistic answer times: Slack's Web API from a cloud host, and Partoo at its slow end.
SLACK_LATENCY = 0.05
PARTOO_LATENCY = 2.0
# Slack gives up on a command or click that is not acknowledged within this.
SLACK_DEADLINE = 3.0
# Every Web API method either bot calls; each answers after SLACK_LATENCY.
SLACK_METHODS = (
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "chat.getPermalink",
    "usergroups.users.list",
    "views.publish",
    "conversations.info",
)
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 25.0

_started = time.perf_counter()


def say(message: str) -> None:
    """A progress line on stdout, stamped with the time since the run began."""
    elapsed = time.perf_counter() - _started
    print(f"[{int(elapsed) // 60:02d}:{elapsed % 60:04.1f}] {message}", flush=True)


# -- fakes -------------------------------------------------------------------------------------------------


def slack_fake(latency: float = SLACK_LATENCY) -> FakeSlack:
    """FakeSlack (not started) whose every Web API method answers after `latency` seconds."""
    slack = FakeSlack(BOT_TOKEN)
    for method in SLACK_METHODS:
        slack.delay(method, latency)
    return slack


def partoo_fake(latency: float = PARTOO_LATENCY, rate_limit_per_minute: int | None = None) -> FakePartoo:
    """FakePartoo (not started) answering after `latency` s, enforcing a 60 s sliding window if asked."""
    return FakePartoo(PARTOO_API_KEY, latency=latency, rate_limit_per_minute=rate_limit_per_minute)


@contextlib.contextmanager
def fakes(
    *, slack_latency: float = SLACK_LATENCY, partoo_latency: float = PARTOO_LATENCY, partoo_rate: int | None = None
) -> Iterator[tuple[FakeSlack, FakePartoo]]:
    with slack_fake(slack_latency) as slack, partoo_fake(partoo_latency, partoo_rate) as partoo:
        yield slack, partoo


# -- databases ---------------------------------------------------------------------------------------------


def postgres_available() -> str | None:
    """None when the local PostgreSQL server can be used, else why not."""
    return probe_postgres_server(postgres_server_url())


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database for one bot: a SQLite file under `workdir`, or a new PostgreSQL database."""
    if kind == "sqlite":
        directory = workdir / f"db-{next(_databases)}"
        directory.mkdir(parents=True)
        yield f"sqlite:///{directory / 'partoo-retry.db'}"
        return
    url = asyncio.run(create_database(postgres_server_url()))
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


_databases = itertools.count(1)


def sqlite_path(database_url: str) -> Path:
    return Path(database_url.removeprefix("sqlite:///"))


def read_only_query(database_url: str, query: str) -> list[tuple[Any, ...]]:
    """Rows of one query on a bot's database, over a read-only connection of its own (never the bot's)."""
    if database_url.startswith("sqlite"):
        uri = f"file:{sqlite_path(database_url)}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as connection:
            return [tuple(row) for row in connection.execute(query).fetchall()]
    return asyncio.run(_postgres_rows(database_url, query))


async def read_only_query_async(database_url: str, query: str) -> list[tuple[Any, ...]]:
    """`read_only_query` from inside an event loop (SQLite in a thread, PostgreSQL with asyncpg)."""
    if database_url.startswith("sqlite"):
        return await asyncio.to_thread(read_only_query, database_url, query)
    return await _postgres_rows(database_url, query)


async def _postgres_rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(
        database_url, timeout=10, server_settings={"default_transaction_read_only": "on"}
    )
    try:
        return [tuple(row) for row in await connection.fetch(query)]
    finally:
        await connection.close()


# -- bot processes -----------------------------------------------------------------------------------------


@dataclass
class Started:
    """A bot process and how long it took from Popen to its first good answer."""

    process: BotProcess
    ready_seconds: float


def ours_environment(slack: FakeSlack, partoo: FakePartoo, database_url: str, **extra: str) -> dict[str, str]:
    return {**bot_environment(slack, partoo, database_url), **extra}


def naive_environment(slack: FakeSlack, partoo: FakePartoo, **extra: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "PARTOO_API_KEY": PARTOO_API_KEY,
        "PARTOO_API_URL": partoo.api_url,
        **extra,
    }


def start_ours(environment: dict[str, str], workdir: Path, command: Sequence[str] | None = None) -> Started:
    """`python -m bot` (or `command`), timed until GET /readyz answers 200."""
    started = time.perf_counter()
    process = start_bot(environment, workdir, command=command, name="bot")
    return Started(process, _wait(process, "/readyz", lambda status: status == 200, started))


def start_naive(environment: dict[str, str], workdir: Path) -> Started:
    """`python bench/naive_bot.py`, timed until it answers HTTP at all (it has no readiness route)."""
    started = time.perf_counter()
    process = start_bot(environment, workdir, command=[sys.executable, str(NAIVE_BOT)], name="naive")
    return Started(process, _wait(process, "/", lambda status: status > 0, started))


def _wait(process: BotProcess, path: str, good: Callable[[int], bool], started: float) -> float:
    deadline = started + READY_TIMEOUT
    with httpx.Client(timeout=1.0) as client:
        while True:
            if not process.running():
                raise RuntimeError(f"the bot exited with {process.process.returncode}\n{process.logs()}")
            try:
                if good(client.get(f"{process.url}{path}").status_code):
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                process.kill()
                raise RuntimeError(f"{process.url}{path} not ready after {READY_TIMEOUT} s\n{process.logs()}")
            time.sleep(0.005)


def stop(process: BotProcess) -> None:
    """SIGTERM and wait; SIGKILL if it lingers. Benchmarks never depend on a clean stop."""
    with contextlib.suppress(AssertionError):
        process.stop(signal.SIGTERM, timeout=STOP_TIMEOUT)
    process.kill()


@contextlib.contextmanager
def running(started: Started) -> Iterator[BotProcess]:
    try:
        yield started.process
    finally:
        stop(started.process)


# -- measurements of a process -----------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Resident memory (VmRSS) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14 and stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- statistics --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated linearly between the closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Latencies:
    """Seconds per request, with the HTTP statuses seen."""

    seconds: tuple[float, ...]
    statuses: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.seconds)

    @property
    def p50(self) -> float:
        return percentile(self.seconds, 50)

    @property
    def p99(self) -> float:
        return percentile(self.seconds, 99)

    @property
    def max(self) -> float:
        return max(self.seconds) if self.seconds else math.nan

    @property
    def not_ok(self) -> int:
        """Answers that were not a bare acknowledgement: errors, transport failures, ephemeral refusals."""
        return sum(1 for status in self.statuses if status != 200)

    @property
    def refused(self) -> int:
        return sum(1 for status in self.statuses if status == REFUSED)

    def over(self, seconds: float) -> int:
        return sum(1 for value in self.seconds if value >= seconds)

    def describe(self) -> str:
        return f"n={self.count} p50={ms(self.p50)} p99={ms(self.p99)} max={ms(self.max)}" + (
            f" not-acked={self.not_ok} (of which answered with a message: {self.refused})" if self.not_ok else ""
        )


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    value = seconds * 1000
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


# -- load --------------------------------------------------------------------------------------------------

# A 200 whose body is a message (the command was answered, not just acknowledged).
REFUSED = 1200

_message_ids = itertools.count(10_000_001)


def fresh_ids(count: int) -> list[int]:
    """Message ids never used before in this run, so that no command finds its id already active."""
    return [next(_message_ids) for _ in range(count)]


def signed_command(text: str, response_url: str) -> tuple[bytes, dict[str, str]]:
    """A `/partoo-retry <text>` POST body and its Slack signature headers."""
    body = slash_command_body(text, user_id=USER, channel_id=CHANNEL, response_url=response_url)
    return body, slack_signature_headers(SIGNING_SECRET, body)


@contextlib.asynccontextmanager
async def load_clients(base_url: str, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` HTTP clients, one per simulated sender, each keeping one keep-alive connection to the bot.

    One client per sender, as Slack's requests come over many connections: a single httpx client shared by
    50 concurrent requests spends more time in its own connection pool than the bot spends answering.
    """
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) for _ in range(count)]
    try:
        # Open every connection before anything is timed.
        await asyncio.gather(*(client.get("/") for client in clients))
        yield clients
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """This process's garbage collector off while requests are timed, back on (and catching up) afterwards.

    The load generator and the fakes share this process: a full collection here stalled every request in
    flight for 40 to 90 ms, about one burst in thirty, and a burst's p99 is its slowest requests. That was the
    benchmark's noise, not the bot's (with the collector paused, 120 bursts of `GET /healthz` in a row kept
    within 17 to 26 ms). The bot's own collections still count: they happen in the bot's process.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def at_once(calls: Iterable[Awaitable[tuple[float, int]]]) -> list[tuple[float, int]]:
    """Timed calls sent together, with the collector paused until the last is answered."""
    with collector_paused():
        return await asyncio.gather(*calls)


async def timed_post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> tuple[float, int]:
    """POST to /slack/events; (seconds from send to full answer, status).

    The status is 0 on a transport error, and REFUSED for a 200 that carries a message: a bare `ack()`
    answers with an empty body, while an ephemeral answer (e.g. "the retry queue is unavailable") is text.
    """
    started = time.perf_counter()
    try:
        response = await client.post("/slack/events", content=body, headers=headers)
        status = response.status_code
        if status == 200 and response.content:
            status = REFUSED
    except httpx.TransportError:
        status = 0
    return time.perf_counter() - started, status


async def timed_get(client: httpx.AsyncClient, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    try:
        status = (await client.get(path)).status_code
    except httpx.TransportError:
        status = 0
    return time.perf_counter() - started, status


async def bursts(
    clients: Sequence[httpx.AsyncClient],
    slack: FakeSlack,
    *,
    rounds: int,
    gap: float,
    ids_per_command: int = 1,
) -> Latencies:
    """`rounds` bursts of one command per client sent at once; a round ends when all are answered.

    Bodies are built and signed before a round starts, so the timing covers only the HTTP exchange.
    """
    seconds: list[float] = []
    statuses: list[int] = []
    for _ in range(rounds):
        prepared = []
        for _ in clients:
            ids = fresh_ids(ids_per_command)
            prepared.append(signed_command(" ".join(map(str, ids)), slack.response_url(f"cmd-{ids[0]}")))
        results = await at_once(
            timed_post(client, body, headers) for client, (body, headers) in zip(clients, prepared, strict=True)
        )
        for elapsed, status in results:
            seconds.append(elapsed)
            statuses.append(status)
        if gap:
            await asyncio.sleep(gap)
    return Latencies(tuple(seconds), tuple(statuses))


async def get_bursts(clients: Sequence[httpx.AsyncClient], path: str, *, rounds: int, gap: float) -> Latencies:
    """The same burst pattern against a trivial GET: what loopback, uvicorn and this client cost alone."""
    seconds: list[float] = []
    statuses: list[int] = []
    for _ in range(rounds):
        results = await at_once(timed_get(client, path) for client in clients)
        for elapsed, status in results:
            seconds.append(elapsed)
            statuses.append(status)
        if gap:
            await asyncio.sleep(gap)
    return Latencies(tuple(seconds), tuple(statuses))


async def pool(clients: Sequence[httpx.AsyncClient], commands: Iterable[tuple[bytes, dict[str, str]]]) -> Latencies:
    """Closed loop: one sender per client, each sending its next command as soon as the last is answered."""
    queue = iter(list(commands))
    seconds: list[float] = []
    statuses: list[int] = []

    async def sender(client: httpx.AsyncClient) -> None:
        for body, headers in queue:
            elapsed, status = await timed_post(client, body, headers)
            seconds.append(elapsed)
            statuses.append(status)

    with collector_paused():
        await asyncio.gather(*(sender(client) for client in clients))
    return Latencies(tuple(seconds), tuple(statuses))


# -- Partoo webhooks ---------------------------------------------------------------------------------------

WEBHOOK_PATH = "/partoo/webhook"
# Answer classes of a webhook delivery, as statuses in Latencies: 200 means "answered 200, event stored".
DUPLICATE = 1201
OTHER_200 = 1202


class RawHttp:
    """One keep-alive HTTP/1.1 connection that sends prepared request bytes and reads the answer.

    The webhook benchmarks send thousands of requests a second from the process that also serves the
    fakes, on the 2 cores the bot uses: httpx costs about 0.5 ms of CPU per request there, this about
    0.05 ms, so the bot, not the load generator, sets the pace. Requests are built (and signed) before
    anything is timed (`request_bytes`); answers must carry a Content-Length, as uvicorn's do.
    """

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """(HTTP status, body); status 0 when the connection failed or timed out (reopened for the next one)."""
        try:
            async with asyncio.timeout(self.timeout):
                if self._reader is not None and self._reader.at_eof():
                    await self.close()  # the server closed this keep-alive connection since the last answer
                if self._reader is None or self._writer is None:
                    await self.open()
                reader, writer = self._reader, self._writer
                if reader is None or writer is None:
                    raise OSError("not connected")
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status, length, closing = _parse_head(head)
                body = await reader.readexactly(length) if length else b""
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            await self.close()
            return 0, b""
        if closing:
            await self.close()
        return status, body


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, closing = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            closing = True
        elif name == b"transfer-encoding":
            raise ValueError("chunked answers are not read by this client")
    return status, length, closing


def request_bytes(method: str, path: str, port: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def signed_failures(signer: PartooSigner, port: int, ids: Iterable[int], status: str = "Failed") -> list[bytes]:
    """One signed `message_updated` delivery per message id, each a whole HTTP request ready to send."""
    requests = []
    for message_id in ids:
        body = json_body(message_updated_event(message_id, status=status))
        requests.append(request_bytes("POST", WEBHOOK_PATH, port, body, signer.headers(body)))
    return requests


def webhook_status(status: int, body: bytes) -> int:
    """200 for a 200 whose body says the event was stored (or, from the naive bot, anything), else a class."""
    if status != 200:
        return status
    try:
        verdict = json.loads(body).get("status")
    except (ValueError, AttributeError):
        return OTHER_200
    if verdict == "stored":
        return 200
    return DUPLICATE if verdict == "duplicate" else OTHER_200


@contextlib.asynccontextmanager
async def raw_clients(port: int, count: int) -> AsyncIterator[list[RawHttp]]:
    """`count` keep-alive connections, each opened and used once (GET /healthz) before anything is timed."""
    clients = [RawHttp(port) for _ in range(count)]
    try:
        await asyncio.gather(*(client.open() for client in clients))
        probe = request_bytes("GET", "/healthz", port)
        await asyncio.gather(*(client.send(probe) for client in clients))
        yield clients
    finally:
        await asyncio.gather(*(client.close() for client in clients))


async def raw_pool(
    clients: Sequence[RawHttp], requests: Iterable[bytes], classify: Callable[[int, bytes], int] | None = None
) -> Latencies:
    """Closed loop: each connection sends its next request as soon as the last is answered.

    Statuses are `classify(status, body)`: by default `webhook_status` classes for POSTs, and plain HTTP
    statuses for GETs.
    """
    queue = iter(list(requests))
    seconds: list[float] = []
    statuses: list[int] = []

    async def sender(client: RawHttp) -> None:
        for request in queue:
            started = time.perf_counter()
            status, body = await client.send(request)
            seconds.append(time.perf_counter() - started)
            if classify is not None:
                statuses.append(classify(status, body))
            else:
                statuses.append(webhook_status(status, body) if request.startswith(b"POST") else status)

    with collector_paused():
        await asyncio.gather(*(sender(client) for client in clients))
    return Latencies(tuple(seconds), tuple(statuses))


def ratio(naive: float, ours: float) -> str:
    if not ours or math.isnan(naive) or math.isnan(ours):
        return "-"
    value = naive / ours
    return f"{value:,.0f}x" if value >= 10 else f"{value:.1f}x"


def as_jsonable(value: Any) -> Any:
    """Results as plain data (for the --json dump)."""
    if isinstance(value, Latencies):
        return {
            "count": value.count,
            "p50_ms": value.p50 * 1000,
            "p99_ms": value.p99 * 1000,
            "max_ms": value.max * 1000,
            "non_200": value.not_ok,
        }
    if isinstance(value, dict):
        return {str(key): as_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_jsonable(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "__dataclass_fields__"):
        return {name: as_jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    return value
