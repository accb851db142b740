"""`python -m bench.profile`: where the bot's time goes on one of its hot paths.

Starts the bot as `python -m bench` does (Slack in 50 ms, Partoo in 2 s), attaches py-spy to it, sends
the load of one path and prints where the event loop thread spent its samples:

- `--path ack` (default): bursts of `/partoo-retry <id>` (`--concurrency` at once, `--rounds` bursts);
- `--path webhooks`: signed `Failed` deliveries, closed loop over `--concurrency` connections
  (`--events` of them), as benchmark 2 sends them.

py-spy is not a dependency of the project: `pip install py-spy` into the virtualenv first. The raw stacks
are kept (`--raw FILE`, collapsed-stack format, for flamegraph.pl or speedscope). The bot's CPU time per
request over the profiled load is printed too (py-spy's sampling adds little to it at 250 Hz).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.ack import GAP
from bench.common import (
    bursts,
    cpu_seconds,
    database,
    fakes,
    fresh_ids,
    load_clients,
    ours_environment,
    raw_clients,
    raw_pool,
    running,
    say,
    signed_failures,
    start_ours,
)
from tests.signing import PartooSigner

# Frames worth a line of their own: (label, regex on a frame of the event loop thread).
PARTS = (
    ("HTTP in uvicorn/h11 (parse, write)", r"h11_impl|protocols/http"),
    ("Starlette routing and middleware", r"starlette/"),
    ("Bolt: whole dispatch of a request", r"AsyncApp\.async_dispatch"),
    ("Bolt: request verification (HMAC)", r"slack_bolt/.*(verif|signature)"),
    ("Bolt: waiting loop for ack() (asyncio_runner)", r"asyncio_runner\.py:15[23]"),
    ("listener on_command (parse, authorize, enqueue, ack)", r"on_command"),
    ("RetryQueue.enqueue (the durable write)", r"RetryQueue\.enqueue"),
    ("webhook endpoint (verify, parse, store)", r"intake\.py"),
    ("Ed25519 signature verification", r"signatures\.py"),
    ("webhook parsing and dedupe key", r"events\.py"),
    ("group commit writer (batched transactions)", r"GroupCommit\."),
    ("bot ASGI middleware (body limits, request id)", r"http_limits\.py|request_id\.py"),
    ("SQLAlchemy (all statements, any caller)", r"sqlalchemy/"),
    ("aiosqlite hand-off to its thread", r"aiosqlite/"),
    ("Notifier and alerter loops (posts from stored state)", r"Notifier\.|Alerter\."),
    ("RetryWorker (claims, pace, Partoo calls)", r"RetryWorker\."),
    ("slack_sdk / aiohttp client calls", r"slack_sdk/|aiohttp/"),
    ("httpx (Partoo client)", r"httpx/|httpcore/"),
    ("logging", r"logging/|bot/logs\.py"),
    ("idle in epoll (nothing to do)", r"EpollSelector\.select"),
)


def summarize(raw: Path) -> str:
    """Per part: share of the event loop thread's samples whose stack contains a matching frame."""
    total = 0
    parts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        threads[frames[0].split(":", 1)[-1].strip()] += count
        if "MainThread" not in frames[0]:
            continue
        total += count
        for label, pattern in PARTS:
            if any(re.search(pattern, frame) for frame in frames[1:]):
                parts[label] += count
    lines = [f"event loop thread: {total} samples (other threads: {sum(threads.values()) - total})"]
    lines += [f"  {parts[label] * 100 / max(total, 1):5.1f} %  {label}" for label, _ in PARTS]
    return "\n".join(lines)


async def _load(url: str, slack, concurrency: int, rounds: int) -> int:  # type: ignore[no-untyped-def]
    async with load_clients(url, concurrency) as clients:
        latencies = await bursts(clients, slack, rounds=rounds, gap=GAP)
    say(f"  {concurrency} at once under py-spy: {latencies.describe()}")
    return latencies.count


async def _deliver(port: int, requests: list[bytes], concurrency: int) -> int:
    async with raw_clients(port, concurrency) as clients:
        began = time.perf_counter()
        latencies = await raw_pool(clients, requests)
        seconds = time.perf_counter() - began
    say(f"  {concurrency} senders under py-spy: {latencies.count / seconds:,.0f} events/s, {latencies.describe()}")
    return latencies.count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=("ack", "webhooks"), default="ack")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20, help="bursts of commands (--path ack)")
    parser.add_argument("--events", type=int, default=5000, help="deliveries (--path webhooks)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--raw", type=Path, default=Path("bench-profile.txt"), help="where to keep the raw stacks")
    arguments = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    record = [py_spy, "record", "--format", "raw", "--threads", "--nonblocking"]
    record += ["--rate", str(arguments.rate), "--output", str(arguments.raw)]
    signer = PartooSigner()
    with (
        tempfile.TemporaryDirectory(prefix="partoo-profile-") as directory,
        fakes() as (slack, partoo),
        database(arguments.database, Path(directory)) as url,
        running(
            start_ours(
                ours_environment(slack, partoo, url, PARTOO_WEBHOOK_PUBLIC_KEY=signer.public_pem), Path(directory)
            )
        ) as process,
    ):
        if arguments.path == "webhooks":
            requests = signed_failures(signer, process.port, fresh_ids(100 + arguments.events))
            asyncio.run(_deliver(process.port, requests[:100], arguments.concurrency))  # warm-up
        else:
            asyncio.run(_load(process.url, slack, 1, 3))  # warm-up
        spy = subprocess.Popen(
            [*record, "--pid", str(process.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(1.0)
        cpu_before = cpu_seconds(process.pid)
        if arguments.path == "webhooks":
            count = asyncio.run(_deliver(process.port, requests[100:], arguments.concurrency))
        else:
            count = asyncio.run(_load(process.url, slack, arguments.concurrency, arguments.rounds))
        cpu = cpu_seconds(process.pid) - cpu_before
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
    say(f"bot CPU {cpu * 1000 / max(count, 1):.2f} ms per request (background work included)")
    say(f"raw stacks in {arguments.raw}")
    print(summarize(arguments.raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
