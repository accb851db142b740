"""Soak: months of Partoo traffic compressed into minutes, to show that the database and memory plateau.

`python -m bench.soak [--deliveries 200000] [--rate 100] [--database sqlite|postgresql]` starts the bot as its
own process (this module's `--serve` mode: `python -m bot`'s app with retention shortened from days to seconds)
against fake Slack and Partoo on 127.0.0.1, and sends it signed `message_updated` deliveries, `--rate` a second,
at a realistic mix:

- about 98 % `Sending` or `Success` of messages that never failed (all of an organisation's traffic);
- 2 % `Failed` (each raises an alert, or joins a digest in a flood); a quarter of those are retried with
  `/partoo-retry <id>` (Partoo accepts) and then reported `Success` (delivered).

With retention at `--retention-seconds` (default 60) and the pruner every `--prune-every` seconds, every
`--sample-every` seconds it records the database size (SQLite: the file and its WAL; PostgreSQL:
pg_database_size), the rows of each table, and the bot's resident memory. It stops by itself once every
delivery is sent and a full retention period has passed, then draws docs/soak.png and writes the figures
into docs/benchmarks.md (between the SOAK markers) and, with --json, the samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench.common import (
    REPO,
    database,
    partoo_fake,
    read_only_query_async,
    rss_mib,
    running,
    say,
    signed_command,
    slack_fake,
    sqlite_path,
    start_ours,
)
from tests.harness import bot_environment
from tests.signing import PartooSigner, json_body, message_updated_event

DEFAULT_DELIVERIES = 200_000
# A steady pace the alerter keeps up with on a small machine: 100 a second is 8.6 million a day, 170 times the
# 50,000 a day of a busy organisation. Faster, the test measures the alerter's backlog instead of retention.
DEFAULT_RATE = 100.0
FAILED_SHARE = 0.02
RETRIED_SHARE = 0.25  # of the failures
SENDERS = 8
TABLES = (
    "webhook_events",
    "alerts",
    "alert_digests",
    "retry_batches",
    "retry_requests",
    "retry_attempts",
    "webhook_intake",
)
PNG = REPO / "docs" / "soak.png"
REPORT = REPO / "docs" / "benchmarks.md"
START_MARKER = "<!-- SOAK START (bench/soak.py writes this section) -->"
END_MARKER = "<!-- SOAK END -->"


@dataclass
class Sample:
    seconds: float
    sent: int
    database_mib: float
    rss_mib: float
    rows: dict[str, int]


@dataclass
class Soak:
    database: str
    deliveries: int
    rate: float
    retention_seconds: float
    prune_every: float
    seconds: float = 0.0
    answered: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    retried: int = 0
    samples: list[Sample] = field(default_factory=list)


# -- the bot, as its own process ------------------------------------------------------------------------------


def serve(retention_seconds: float, prune_every: float) -> None:
    """`python -m bot`, with retention in seconds instead of days (RETENTION_DAYS is a whole number)."""
    import uvicorn

    from bot.app import create_app
    from bot.assembly import Tuning
    from bot.config import settings_from_environment
    from bot.logs import configure_logging

    settings = settings_from_environment()
    configure_logging(settings.secrets(), log_format="json")
    tuning = Tuning(retention_seconds=retention_seconds, retention_interval=prune_every)
    uvicorn.run(create_app(settings, tuning), host="127.0.0.1", port=settings.port, log_config=None, access_log=False)


# -- the traffic -----------------------------------------------------------------------------------------------


class Traffic:
    """Deliveries in the soak's mix, and the follow-ups of failures (a retry command, then a Success)."""

    def __init__(self, signer: PartooSigner, deliveries: int, response_url: str, rate: float, seed: int = 12) -> None:
        self.signer = signer
        self.rate = rate  # deliveries per second; 0: as fast as the bot answers
        self.started = time.monotonic()
        self.remaining = deliveries
        self.response_url = response_url
        self.random = random.Random(seed)
        self.next_id = 50_000_001
        self.follow_ups: deque[tuple[float, str, int]] = deque()  # (due, "retry" or "delivered", message id)
        self.sent = 0
        self.failures = 0
        self.retried = 0

    def next_request(self) -> tuple[str, bytes, dict[str, str]] | None:
        """(path, body, headers) of the next request, or None when every delivery was sent."""
        if self.follow_ups and self.follow_ups[0][0] <= time.monotonic():
            _due, action, message_id = self.follow_ups.popleft()
            if action == "retry":
                self.follow_ups.append((time.monotonic() + 2.0, "delivered", message_id))
                body, headers = signed_command(str(message_id), self.response_url)
                return "/slack/events", body, headers
            return self._delivery(message_id, "Success")
        if self.remaining <= 0:
            return None if not self.follow_ups else ("/healthz", b"", {})
        if self.rate and time.monotonic() < self.started + self.sent / self.rate:
            return "/healthz", b"", {}  # ahead of the pace: wait
        self.remaining -= 1
        message_id, self.next_id = self.next_id, self.next_id + 1
        draw = self.random.random()
        if draw < FAILED_SHARE:
            self.failures += 1
            if self.random.random() < RETRIED_SHARE:
                self.retried += 1
                self.follow_ups.append((time.monotonic() + 2.0, "retry", message_id))
            return self._delivery(message_id, "Failed")
        return self._delivery(message_id, "Sending" if draw < (1 + FAILED_SHARE) / 2 else "Success")

    def _delivery(self, message_id: int, status: str) -> tuple[str, bytes, dict[str, str]]:
        self.sent += 1
        body = json_body(message_updated_event(message_id, status=status, conversation_id=message_id // 7))
        return "/partoo/webhook", body, self.signer.headers(body)


async def _sender(client: httpx.AsyncClient, traffic: Traffic, answered: dict[str, int]) -> None:
    while (request := traffic.next_request()) is not None:
        path, body, headers = request
        if path == "/healthz":  # nothing due yet (the pace, or follow-ups only)
            await asyncio.sleep(0.02)
            continue
        try:
            response = await client.post(path, content=body, headers=headers)
            verdict = response.json().get("status", str(response.status_code)) if path != "/slack/events" else "ok"
            key = f"{response.status_code} {verdict}"
        except (httpx.HTTPError, ValueError) as error:
            key = type(error).__name__
        answered[key] = answered.get(key, 0) + 1


# -- measurements ----------------------------------------------------------------------------------------------


async def _database_mib(database_url: str) -> float:
    if database_url.startswith("sqlite"):
        path = sqlite_path(database_url)
        files = [path, path.with_name(path.name + "-wal")]
        return sum(file.stat().st_size for file in files if file.exists()) / 2**20
    rows = await read_only_query_async(database_url, "SELECT pg_database_size(current_database())")
    return int(rows[0][0]) / 2**20


async def _rows(database_url: str) -> dict[str, int]:
    query = "SELECT " + ", ".join(f"(SELECT count(*) FROM {table})" for table in TABLES)
    counts = (await read_only_query_async(database_url, query))[0]
    return dict(zip(TABLES, (int(count) for count in counts), strict=True))


async def _sampler(
    soak: Soak, database_url: str, pid: int, traffic: Traffic, every: float, done: asyncio.Event
) -> None:
    started = time.monotonic()
    while True:
        sample = Sample(
            seconds=round(time.monotonic() - started, 1),
            sent=traffic.sent,
            database_mib=round(await _database_mib(database_url), 2),
            rss_mib=round(rss_mib(pid), 1),
            rows=await _rows(database_url),
        )
        soak.samples.append(sample)
        say(
            f"soak {sample.seconds:>6.0f} s: {sample.sent:,} sent, database {sample.database_mib:.1f} MiB, "
            f"RSS {sample.rss_mib:.0f} MiB, rows {sample.rows}"
        )
        if done.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every)


async def _drive(soak: Soak, base_url: str, database_url: str, pid: int, traffic: Traffic, every: float) -> None:
    done = asyncio.Event()
    sampler = asyncio.create_task(_sampler(soak, database_url, pid, traffic, every, done))
    started = time.monotonic()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) for _ in range(SENDERS)]
    try:
        await asyncio.gather(*(_sender(client, traffic, soak.answered) for client in clients))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    soak.seconds = time.monotonic() - started
    # A whole retention period (and two prunes) after the last delivery, what is left is what retention keeps.
    await asyncio.sleep(soak.retention_seconds + 2 * soak.prune_every + every)
    done.set()
    await sampler


def run(kind: str, deliveries: int, rate: float, retention_seconds: float, prune_every: float, every: float) -> Soak:
    soak = Soak(
        database=kind, deliveries=deliveries, rate=rate, retention_seconds=retention_seconds, prune_every=prune_every
    )
    signer = PartooSigner()
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as workdir,
        slack_fake() as slack,
        partoo_fake(latency=0.05) as partoo,
        database(kind, Path(workdir)) as database_url,
    ):
        environment = {
            **bot_environment(slack, partoo, database_url, signer),
            "PYTHONPATH": str(REPO),
            "LOG_FORMAT": "json",
        }
        command = [
            sys.executable,
            "-m",
            "bench.soak",
            "--serve",
            f"--retention-seconds={retention_seconds}",
            f"--prune-every={prune_every}",
        ]
        started = start_ours(environment, Path(workdir), command=command)
        with running(started) as process:
            traffic = Traffic(signer, deliveries, slack.response_url("soak"), rate)
            asyncio.run(_drive(soak, process.url, database_url, process.process.pid, traffic, every))
            soak.failures, soak.retried = traffic.failures, traffic.retried
    return soak


# -- output ----------------------------------------------------------------------------------------------------


def draw(soak: Soak, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [sample.seconds / 60 for sample in soak.samples]
    figure, (size_axis, rows_axis, rss_axis) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    size_axis.plot(minutes, [s.database_mib for s in soak.samples], color="tab:blue")
    size_axis.set_ylabel("database (MiB)")
    size_axis.set_ylim(bottom=0)
    sent_axis = size_axis.twinx()
    sent_axis.plot(minutes, [s.sent / 1000 for s in soak.samples], color="tab:gray", linestyle=":")
    sent_axis.set_ylabel("deliveries sent (thousands, dotted)")
    sent_axis.set_ylim(bottom=0)
    for table in TABLES:
        rows_axis.plot(minutes, [s.rows[table] for s in soak.samples], label=table)
    rows_axis.set_ylabel("rows")
    rows_axis.legend(fontsize="small", ncol=2)
    rss_axis.plot(minutes, [s.rss_mib for s in soak.samples], color="tab:red")
    rss_axis.set_ylabel("bot RSS (MiB)")
    rss_axis.set_ylim(bottom=0)
    rss_axis.set_xlabel("minutes")
    figure.suptitle(
        f"Soak on {soak.database}: {soak.deliveries:,} signed deliveries, retention {soak.retention_seconds:g} s"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def section(soak: Soak, png: Path, note: str = "") -> str:
    """The Markdown of the soak's figures, for docs/benchmarks.md."""
    samples = soak.samples
    peak = max(samples, key=lambda s: s.database_mib)
    last = samples[-1]
    half = [s for s in samples if s.sent >= soak.deliveries / 2 and s.seconds <= soak.seconds + samples[0].seconds]
    mid = half[0] if half else last
    rate = soak.deliveries / soak.seconds if soak.seconds else 0.0
    answered = ", ".join(f"{key}: {count:,}" for key, count in sorted(soak.answered.items()))
    rows_line = ", ".join(f"{table} {count:,}" for table, count in last.rows.items())
    return "\n".join(
        [
            START_MARKER,
            "## Soak: bounded space under months of traffic",
            "",
            f"`python -m bench.soak --deliveries {soak.deliveries} --rate {soak.rate:g} --database {soak.database}` "
            f"(retention {soak.retention_seconds:g} s instead of days, pruned every {soak.prune_every:g} s). "
            f"{soak.deliveries:,} signed deliveries in {soak.seconds / 60:.1f} min ({rate:,.0f}/s), "
            f"{soak.failures:,} of them `Failed` (alerts and digests), {soak.retried:,} of those retried and then "
            "delivered; the rest `Sending`/`Success` of messages that never failed. Answers: "
            f"{answered}.",
            "",
            f"![database size, rows and RSS over the soak]({_link(png)})",
            "",
            "| | database | bot RSS |",
            "|---|---|---|",
            f"| half the deliveries sent ({mid.sent:,}) | {mid.database_mib:.1f} MiB | {mid.rss_mib:.0f} MiB |",
            f"| all sent, peak | {peak.database_mib:.1f} MiB | {max(s.rss_mib for s in samples):.0f} MiB |",
            f"| end (a retention period later) | {last.database_mib:.1f} MiB | {last.rss_mib:.0f} MiB |",
            "",
            f"Rows left at the end: {rows_line} (`webhook_intake` is one row per minute of the last hour, at most 62).",
            *(["", note] if note else []),
            "",
            "How to read it: rows about alerts and retries accumulate for one retention period, then each prune "
            "removes what aged out, so counts and size level off. `webhook_events` holds only events not applied "
            "yet and those of alerts and retries: the `Success` of a message that never failed is deleted as it is "
            "applied, and `Sending` is not stored at all. On SQLite the size includes the WAL file (SQLite "
            "checkpoints it at about 4 MiB), most of the total at this scale; on PostgreSQL it is "
            "`pg_database_size`, which autovacuum keeps from growing by reusing the space of deleted rows.",
            END_MARKER,
        ]
    )


def _link(png: Path) -> str:
    """The image's path as docs/benchmarks.md links it (relative to docs/ when it is there)."""
    try:
        return png.resolve().relative_to(REPO / "docs").as_posix()
    except ValueError:
        return png.as_posix()


def write_section(text: str, path: Path) -> None:
    current = path.read_text() if path.exists() else ""
    if START_MARKER in current and END_MARKER in current:
        before, rest = current.split(START_MARKER, 1)
        after = rest.split(END_MARKER, 1)[1]
        path.write_text(before + text + after)
    else:
        path.write_text(current.rstrip("\n") + "\n\n" + text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=DEFAULT_DELIVERIES)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="deliveries per second (0: as fast as the bot answers)"
    )
    parser.add_argument("--retention-seconds", type=float, default=60.0)
    parser.add_argument("--prune-every", type=float, default=10.0)
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--png", type=Path, default=PNG)
    parser.add_argument("--report", type=Path, default=REPORT, help="the Markdown file whose SOAK section is written")
    parser.add_argument("--json", type=Path, default=None, help="also write every sample to this JSON file")
    parser.add_argument("--note", default="", help="a sentence about this run for the report (e.g. the machine)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the bot process of the soak
    arguments = parser.parse_args(argv)
    if arguments.serve:
        serve(arguments.retention_seconds, arguments.prune_every)
        return 0
    soak = run(
        arguments.database,
        arguments.deliveries,
        arguments.rate,
        arguments.retention_seconds,
        arguments.prune_every,
        arguments.sample_every,
    )
    # The samples first: a run takes long, and a missing plotting library must not lose it.
    if arguments.json:
        arguments.json.write_text(json.dumps(asdict(soak), indent=2))
    draw(soak, arguments.png)
    write_section(section(soak, arguments.png, arguments.note), arguments.report)
    say(f"soak done: {arguments.png} and {arguments.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
