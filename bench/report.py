"""Writing docs/benchmarks.md: what each benchmark does and how to run it, then one run's figures.

Everything is regenerated on each full run, except the analysis between the ANALYSIS markers, which is
written by people and carried over from the previous file.
"""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench import ack, bulk, flood, memory, webhooks
from bench.common import PARTOO_LATENCY, REPO, SLACK_DEADLINE, SLACK_LATENCY, Latencies, ms, ratio

ANALYSIS_START = "<!-- analysis: kept across runs; edit freely -->"
ANALYSIS_END = "<!-- end of analysis -->"
PACKAGES = (
    "slack-bolt",
    "slack-sdk",
    "starlette",
    "uvicorn",
    "httpx",
    "aiohttp",
    "SQLAlchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
)
ACK_GOAL = 0.050
MEMORY_GOAL_MIB = 100
START_GOAL = 2.0


@dataclass
class Run:
    command: str
    started: datetime
    seconds: float
    postgres: bool
    postgres_note: str
    acks: ack.AckResults
    bulks: list[bulk.BulkResult]
    memories: list[memory.MemoryResult]
    starts: list[memory.StartResult]
    webhooks: str
    flood: str
    load_before: str = ""
    load_after: str = ""


# -- the machine -------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _git(*arguments: str) -> str:
    try:
        return subprocess.run(
            ["git", *arguments], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _commit() -> str:
    commit = _git("rev-parse", "HEAD").strip() or "unknown"
    changed = [line[3:] for line in _git("status", "--porcelain").splitlines() if line]
    if not changed:
        return f"`{commit}`"
    return f"`{commit}` with uncommitted changes in {', '.join(sorted({path.split('/')[0] for path in changed}))}"


def _postgres_version() -> str:
    import asyncio

    import asyncpg

    from tests.databases import postgres_server_url

    async def read() -> str:
        connection = await asyncpg.connect(postgres_server_url(), timeout=5)
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    try:
        return asyncio.run(read())
    except Exception as error:
        return f"not reachable ({type(error).__name__})"


def _versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def machine_lines(run: Run) -> list[str]:
    cores = len(os.sched_getaffinity(0))
    return [
        "| | |",
        "|---|---|",
        f"| Date | {run.started:%Y-%m-%d %H:%M} UTC (the run took {run.seconds / 60:.1f} minutes) |",
        f"| Command | `{run.command}` (from the repository root, in its virtualenv) |",
        f"| Commit | {_commit()} |",
        f"| Machine | {cores} cores, {_cpu_model()}, {_memory_total()} memory, Linux {platform.release()} |",
        f"| Python | {platform.python_implementation()} {platform.python_version()} |",
        f"| Packages | {_versions()} |",
        f"| Databases | SQLite {sqlite3.sqlite_version}; PostgreSQL {_postgres_version()} on 127.0.0.1 |",
        f"| Load average | {run.load_before} before the run, {run.load_after} after (1, 5, 15 min) |",
        f"| Fakes | Slack answers every Web API call in {SLACK_LATENCY * 1000:.0f} ms; "
        f"Partoo answers every retry in {PARTOO_LATENCY:.0f} s |",
    ]


# -- the figures -------------------------------------------------------------------------------------------


def _goal(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def _seconds(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f} s"


def ack_lines(results: ack.AckResults) -> list[str]:
    lines = [
        f"Bursts of 1, 10 and 50 signed `/partoo-retry <id>` commands sent at once, {results.gap * 1000:.0f} ms"
        " apart; each command a message id never used before; Partoo answering every retry in"
        f" {results.partoo_latency:.0f} s. Latency is from sending the POST to reading the whole answer.",
        "",
        "| Bot | Database | At once | Commands | p50 | p99 | max | Not acknowledged | Over 3 s |"
        " Floor p50 / p99 | p99 goal (< 50 ms at 50) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for level in results.levels:
        floor = f"{ms(level.floor.p50)} / {ms(level.floor.p99)}" if level.floor else "—"
        goal = level.latencies.p99 < ACK_GOAL if level.concurrency == 50 and level.bot == "ours" else None
        lines.append(
            f"| {level.bot} | {level.database} | {level.concurrency} | {level.latencies.count} |"
            f" {ms(level.latencies.p50)} | {ms(level.latencies.p99)} | {ms(level.latencies.max)} |"
            f" {level.latencies.not_ok} | {level.latencies.over(SLACK_DEADLINE)} | {floor} | {_goal(goal)} |"
        )
    lines += ["", "Naive ÷ ours (how many times longer the naive bot takes to acknowledge, SQLite):", ""]
    lines += ["| At once | p50 | p99 | max |", "|---:|---:|---:|---:|"]
    for concurrency in ack.LEVELS:
        ours, naive = results.find("ours", concurrency), results.find("naive", concurrency)
        if ours and naive:
            lines.append(
                f"| {concurrency} | {ratio(naive.latencies.p50, ours.latencies.p50)} |"
                f" {ratio(naive.latencies.p99, ours.latencies.p99)} |"
                f" {ratio(naive.latencies.max, ours.latencies.max)} |"
            )
    cold = [f"{level.bot} {ms(level.first_request)}" for level in results.levels if level.concurrency == 1]
    cpu = [
        f"{level.database} {level.cpu_ms_per_command:.1f} ms at {level.concurrency}"
        for level in results.levels
        if level.cpu_ms_per_command is not None
    ]
    lines += [
        "",
        f"- First command after start (the first of {ack.WARMUP} warm-up commands for ours,"
        f" {ack.NAIVE_WARMUP} for the naive bot; not in the table): {', '.join(cold)}.",
        f"- Floor: `GET /healthz` of the same bot process in the same bursts (at most {ack.FLOOR_ROUNDS} of them),"
        " over the same client connections, before any command: what loopback, uvicorn and the load generator"
        " cost without Bolt or the database.",
        "- CPU time of the bot process during the timed bursts, per command (its background work included: root"
        f" messages, Partoo calls, outcome replies): {', '.join(cpu)}.",
        f"- The naive bot runs {', '.join(f'{r} bursts at {c}' for c, r in ack.NAIVE_ROUNDS.items())}: each answer"
        " waits for Partoo, so more would only make the run longer. 'Not acknowledged': a non-200 answer, or a"
        " 200 carrying a message instead of a bare acknowledgement; Bolt answers 404 when a listener has not"
        " called `ack()` within 3 s.",
    ]
    return lines


def bulk_lines(results: list[bulk.BulkResult]) -> list[str]:
    lines = [
        f"600 ids, `PARTOO_RATE_LIMIT_PER_MINUTE={bulk.RATE}`; FakePartoo allows {bulk.RATE} calls in any 60 s"
        f" and answers 429 past it, every answer after {PARTOO_LATENCY:.0f} s. Floor: 600 calls at"
        f" {bulk.RATE}/min = {bulk.FLOOR_SECONDS:.0f} s"
        f" (goal: within 5 %, {bulk.FLOOR_SECONDS * bulk.GOAL_FACTOR:.0f} s)."
        " Times are from the first command sent.",
        "",
        "| Bot | Database | How sent | Partoo calls | 429s | Ids sent once | Ids sent twice+ | Ids never sent |"
        " Ids accepted | Most calls in any 60 s | First call | Last call | Last call ÷ floor | All finished |"
        " Summaries posted |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        how = "6 commands x 100 ids" if result.bot == "ours" else f"600 commands x 1 id, {bulk.NAIVE_SENDERS} at a time"
        finished = result.finished if result.bot == "ours" else result.all_answered
        lines.append(
            f"| {result.bot} | {result.database} | {how} | {result.calls} | {result.rate_limited} |"
            f" {result.ids_sent - result.duplicates} | {result.duplicates} | {result.missing} | {result.accepted} |"
            f" {result.max_in_any_minute} | {_seconds(result.first_call)} | {_seconds(result.last_call)} |"
            f" {result.last_call_vs_floor:.3f} | {_seconds(finished)} | {_seconds(result.summarized)} |"
        )
    lines.append("")
    for result in results:
        if result.bot == "ours":
            goal = result.last_call <= bulk.FLOOR_SECONDS * bulk.GOAL_FACTOR and result.rate_limited == 0
            outcomes = ", ".join(f"{key} {count}" for key, count in sorted(result.outcomes.items()))
            lines.append(
                f"- ours on {result.database}: the 6 commands were acknowledged in {ms(result.acks.p50)} (median),"
                f" {ms(result.acks.max)} at most; outcomes in the bot's log: {outcomes}. Goal (within 5 % of the"
                f" floor, no 429): {_goal(goal)}."
            )
        else:
            lines.append(
                f"- naive: every id went to Partoo once, and the {result.rate_limited} answered 429 were never sent"
                f" again (the user is only told Partoo's answer); {result.acks.over(SLACK_DEADLINE)} of 600"
                f" commands were not acknowledged within Slack's 3 s (acknowledgement p50 {ms(result.acks.p50)},"
                f" max {ms(result.acks.max)}; {result.acks.not_ok} answered 404 by Bolt)."
            )
    lines += [
        "- 'All finished' for ours: the last request's `finished_at` in the bot's database; for the naive bot:"
        " the last command answered (its only record). 'Summaries posted': each batch's summary in its thread.",
        "- Partoo's window is a sliding 60 s, so a bot may send 300 at once and 300 more a minute later (last"
        " call near 60 s); the bot spreads its calls evenly instead (one every 60 s / 300 x 1.02), which is what"
        " the 120 s floor assumes and what survives a fixed-window or token-bucket limit as well.",
    ]
    return lines


def memory_lines(results: list[memory.MemoryResult], starts: list[memory.StartResult]) -> list[str]:
    steps = [sent for sent, _ in results[0].after]
    header = (
        "| Bot | Idle | " + " | ".join(f"After {s:,}" for s in steps) + " | Peak | Last reading | Goal (< 100 MiB) |"
    )
    lines = [
        "Resident memory (VmRSS, MiB) of the bot process: idle after start, after every 500 single-id commands"
        f" ({memory.OURS_SENDERS} senders for ours, {memory.NAIVE_SENDERS} for the naive bot, whose every"
        f" command waits {PARTOO_LATENCY:.0f} s for Partoo), then while it works through what the commands asked"
        f" (every 5 s for {memory.BACKLOG_SECONDS:.0f} s for ours, once after 5 s for the naive bot).",
        "",
        header,
        "|---|---:|" + "---:|" * len(steps) + "---:|---:|---|",
    ]
    for result in results:
        goal = result.peak < MEMORY_GOAL_MIB if result.bot == "ours" else None
        after = " | ".join(f"{mib:.1f}" for _, mib in result.after)
        lines.append(
            f"| {result.bot} | {result.idle:.1f} | {after} | {result.peak:.1f} | {result.final:.1f} | {_goal(goal)} |"
        )
    ours = results[0]
    growth = ours.after[-1][1] - ours.after[0][1]
    lines += [
        "",
        f"- Ours grew {growth:+.1f} MiB between {ours.after[0][0]:,} and {ours.after[-1][0]:,} commands;"
        f" backlog readings: {', '.join(f'{mib:.1f}' for _, mib in ours.backlog)} MiB. When the readings stopped:"
        f" {ours.backlog_note}.",
        f"- Naive ÷ ours, idle: {ratio(results[1].idle, ours.idle)}; peak: {ratio(results[1].peak, ours.peak)}.",
        "",
        "Start: from starting the process to the first `GET /readyz` answered 200 (ours), or to the first HTTP"
        " answer of any kind (the naive bot has no readiness route), polled every 5 ms.",
        "",
        "| Bot | Database | Median | All starts | Goal (< 2 s) |",
        "|---|---|---:|---|---|",
    ]
    for start in starts:
        goal = start.median < START_GOAL if start.bot == "ours" else None
        lines.append(
            f"| {start.bot} | {start.kind} | {start.median:.2f} s |"
            f" {', '.join(f'{s:.2f}' for s in start.seconds)} s | {_goal(goal)} |"
        )
    naive = [start for start in starts if start.bot == "naive"]
    if naive:
        lines += ["", f"- Ours (existing database) ÷ naive: {ratio(starts[1].median, naive[0].median)}."]
    return lines


def goals_lines(run: Run) -> list[str]:
    lines = ["| Goal | This run | |", "|---|---|---|"]
    level = run.acks.find("ours", 50)
    if level:
        lines.append(
            f"| Ack p99 < 50 ms at 50 at once (SQLite) | {ms(level.latencies.p99)} |"
            f" {_goal(level.latencies.p99 < ACK_GOAL)} |"
        )
    pg = [lvl for lvl in run.acks.levels if lvl.database == "postgresql"]
    for lvl in pg:
        lines.append(
            f"| Ack p99 < 50 ms at 50 at once (PostgreSQL) | {ms(lvl.latencies.p99)} |"
            f" {_goal(lvl.latencies.p99 < ACK_GOAL)} |"
        )
    worst = max(lvl.latencies.max for lvl in run.acks.levels if lvl.bot == "ours")
    lines.append(f"| Ack never near Slack's 3 s | max {ms(worst)} | {_goal(worst < 1.0)} |")
    lines.append(f"| {webhooks.TITLE}: 1,000 events/s on SQLite, p99 < 100 ms | not measured | — |")
    for result in run.bulks:
        if result.bot != "ours":
            continue
        lines.append(
            f"| Bulk 600 ids within 5 % of 120 s ({result.database}) | last call {_seconds(result.last_call)},"
            f" all finished {_seconds(result.finished)} |"
            f" {_goal(result.last_call <= bulk.FLOOR_SECONDS * bulk.GOAL_FACTOR)} |"
        )
        lines.append(
            f"| Bulk: zero 429s, each id once ({result.database}) | {result.rate_limited} 429s, {result.duplicates}"
            f" twice, {result.missing} never |"
            f" {_goal(result.rate_limited == 0 and not result.duplicates and not result.missing)} |"
        )
    lines.append(f"| {flood.TITLE}: zero Slack 429s | not measured | — |")
    ours = run.memories[0]
    lines.append(
        f"| Memory < 100 MiB and flat | idle {ours.idle:.1f}, peak {ours.peak:.1f} MiB |"
        f" {_goal(ours.peak < MEMORY_GOAL_MIB)} |"
    )
    for start in run.starts:
        if start.bot == "ours":
            lines.append(
                f"| Ready < 2 s ({start.kind}) | median {start.median:.2f} s | {_goal(start.median < START_GOAL)} |"
            )
    return lines


HEADER = """# Benchmarks

How fast partoo-retry answers Slack, how close it paces bulk retries to Partoo's rate limit, and how much
memory it needs, measured against a **naive bot** in one run on one machine. Benchmarks are not tests: CI
runs none of this and times nothing.

## Running them

From the repository root, in the project's virtualenv (`pip install -e '.[test]'`; the benchmarks use the
test suite's fakes):

    python -m bench

One command runs every benchmark (about 10 minutes on 2 cores) and rewrites this file. `python -m bench
--help` lists the options: `--only ack,bulk,memory` runs some of them and prints the figures without writing
this file unless `--output` is given; `--no-postgres` skips the PostgreSQL runs (they are skipped anyway when
no server answers on 127.0.0.1:5432); `--json FILE` also saves the raw figures.

Everything runs on loopback (127.0.0.1) on the one machine:

- **Fake Slack and fake Partoo** are the test suite's `FakeSlack` and `FakePartoo` (`tests/fakes/`), serving
  from threads of the benchmark process. Slack answers every Web API call after 50 ms; Partoo answers every
  retry after 2 s, and in benchmark 3 enforces 300 calls in any 60 s, answering 429 with `Retry-After` past it.
- **The bot** is started as users start it: `python -m bot` in its own process, configured by environment
  variables pointing at the fakes (`tests/processes.py`), on a new SQLite file or a new PostgreSQL database.
- **The naive bot** (`bench/naive_bot.py`) is the few-line Bolt `AsyncApp` most tutorials show, served by
  uvicorn through Bolt's Starlette adapter: its `/partoo-retry` listener calls Partoo with httpx *before*
  `ack()`, then posts Partoo's answer with `say`. It takes one id per command and has no queue, no pacing and
  no retry. It gets the same fakes and the same load.
- **The load** is signed Slack requests (`tests/signing.py`) sent over real HTTP by `httpx.AsyncClient`, one
  client with one keep-alive connection per simulated sender (one client shared by 50 concurrent requests
  spends more time in its own connection pool than the bot takes to answer). Latencies are
  `time.perf_counter()` around each request. The load generator shares the 2 cores with the bot, so each
  latency table also gives a *floor*: a trivial `GET /healthz` in the same pattern.

## The benchmarks

1. **Acknowledgement latency** of `/partoo-retry <id>`: bursts of 1, 10 and 50 commands sent at once, each for
   a new message id, while Partoo takes 2 s to answer; p50, p99 and max per level, a fresh bot per level.
   Goal: p99 under 50 ms at 50 at once, never near Slack's 3 s. (Retry clicks join when the alerts land.)
2. **Webhook intake**: sustained signed `message_updated` events per second answered 200 with the event
   stored, SQLite and PostgreSQL, with p99. Goal: 1,000 events/s on SQLite, p99 under 100 ms. Not yet
   available: `bench/webhooks.py` holds its place and says so when the run reaches it.
3. **Bulk retry** of 600 ids with `PARTOO_RATE_LIMIT_PER_MINUTE=300`: 6 commands of 100 ids; time from the
   first command to the last Partoo call and until every request is finished, against the 120 s floor (goal:
   within 5 %), 429s provoked (goal: none), each id sent exactly once; SQLite and PostgreSQL. The naive bot
   gets the 600 ids as single-id commands, 50 at a time.
4. **Flood**: 1,000 failures in 10 s; posts to the alert channel, Slack 429s (goal: none), time until all are
   visible. Not yet available: `bench/flood.py` holds its place and says so when the run reaches it.
5. **Memory and start**: resident memory idle and after 2,000 commands (goal: under 100 MiB and flat; the
   10,000 webhook events of the goal join with the webhook endpoint), and time from process start to
   `/readyz` 200, median of 5 starts (goal: under 2 s).
"""


def render(run: Run, previous: str | None) -> str:
    analysis = _previous_analysis(previous)
    parts = [
        HEADER,
        "## Results of the last run",
        "",
        *machine_lines(run),
        "",
        "### Goals",
        "",
        *goals_lines(run),
        "",
        "### 1. Acknowledgement latency",
        "",
        *ack_lines(run.acks),
        "",
        f"### {webhooks.TITLE}",
        "",
        f"Not measured: {run.webhooks}.",
        "",
        "### 3. Bulk retry of 600 ids at 300 calls a minute",
        "",
        *bulk_lines(run.bulks),
        "",
        f"### {flood.TITLE}",
        "",
        f"Not measured: {run.flood}.",
        "",
        "### 5. Memory and start",
        "",
        *memory_lines(run.memories, run.starts),
        "",
    ]
    if not run.postgres:
        parts += [f"PostgreSQL was not measured in this run: {run.postgres_note}.", ""]
    parts += ["## Analysis", "", ANALYSIS_START, analysis.strip(), ANALYSIS_END, ""]
    return "\n".join(parts)


def _previous_analysis(previous: str | None) -> str:
    if previous and ANALYSIS_START in previous and ANALYSIS_END in previous:
        return previous.split(ANALYSIS_START, 1)[1].split(ANALYSIS_END, 1)[0]
    return "No analysis written yet."


def write(run: Run, path: Path) -> None:
    previous = path.read_text() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(run, previous))


def describe(latencies: Latencies) -> str:
    return latencies.describe()


def started_now() -> datetime:
    return datetime.now(UTC)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
