"""Database fixtures shared by all tests.

- ``database_url``: run a test once against SQLite and once against PostgreSQL, on a database of its own
  already at this version's schema head (``tests/migrated_databases.py``): what a bot finds after its first start.
- ``sqlite_url`` / ``postgres_url``: an empty database, for tests of the first start, of upgrades, and of
  what only makes sense with PostgreSQL (several bot processes sharing a database). Tests using PostgreSQL
  are marked ``postgres`` automatically.

Locally, PostgreSQL tests are skipped when no server answers; with ``CI=true`` they fail instead, so CI
cannot go green without having run them. The database work itself lives in ``tests/databases.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.platform.database import create_engine, migrate
from bot.retries.store import RetryQueue
from tests.databases import (
    ReusableDatabases,
    postgres_server_url,
    probe_postgres_server,
    redact,
)
from tests.fakes import FakePartoo, FakeSlack
from tests.fakes.slack import EXPIRED_URL
from tests.harness import BOT_TOKEN, PARTOO_API_KEY, RunningBot, bot_environment, running_bot
from tests.migrated_databases import MigratedDatabases, copy_sqlite, migrated_sqlite_file
from tests.signing import PartooSigner
from tests.test_fencing import Clock


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture(autouse=True)
def _no_log_handler_left_on_a_closed_stream() -> Iterator[None]:
    """A test that configured logging onto its captured output must undo it (tests/logging_state.py).

    Otherwise the next test's log lines go to a closed file: "--- Logging error --- ValueError: I/O operation on
    closed file" in the middle of a passing run, far from the test that caused it. Autouse fixtures are set up
    first, so this check runs after capsys has closed its stream.
    """
    yield
    stale = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False)
    ]
    assert stale == [], f"the test left root log handlers writing to a closed stream: {stale}"


# Most of the suite's time is spent waiting (bot processes starting and stopping, the 30 s lease a SIGKILLed
# process leaves, Slack outages being waited out): on 2 cores, four workers kept the CPU 62 % busy (5 min 41 s)
# and six 76 % (4 min 45 s), so three workers per core (docs/test-suite.md). At most 8: each worker's bots hold
# PostgreSQL connections, and a server's default max_connections is 100.
MAX_WORKERS = 8


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    return min(3 * len(os.sched_getaffinity(0)), MAX_WORKERS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Lets `-m "not postgres"` deselect every test that needs the server, however it asks for it.
    for item in items:
        if {"postgres_url", "migrated_postgres_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
    # The longest tests go first, and `--dist load --maxschedchunk 1` hands tests out one at a time in this
    # order: each worker starts on a long one, and the short ones fill the gaps, instead of a worker finishing
    # alone on a long test it met last. Each worker holds one test in hand besides the one it runs (its first
    # two come together), so every long test is followed by a short one: two long tests in a row would run one
    # after the other on one worker (the two stateful tests did: 4 minutes of a 4 min 45 s suite).
    items.sort(key=_expected_seconds, reverse=True)
    long = [item for item in items if _expected_seconds(item) > 0]
    short = items[len(long) :]
    paired = [test for pair in zip(long, short, strict=False) for test in pair]
    items[:] = paired + long[len(paired) // 2 :] + short[len(paired) // 2 :]


def _expected_seconds(item: pytest.Item) -> float:
    """What a `long(seconds)` marker says a test takes alone on 2 cores (0 for the others; sorting is stable)."""
    marker = item.get_closest_marker("long")
    return float(marker.args[0]) if marker is not None else 0.0


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of a PostgreSQL server that answers and lets us create databases; probed once per session.

    A failing probe makes every test that needs PostgreSQL skip (locally) or fail (CI=true); pytest
    caches the outcome of a session fixture, so the ~2 s timeout is paid once.
    """
    url = postgres_server_url()
    problem = probe_postgres_server(url)
    if problem is not None:
        message = f"PostgreSQL not reachable at {redact(url)} ({problem}); set TEST_POSTGRES_URL"
        if _in_ci():
            pytest.fail(f"{message}. CI=true: PostgreSQL tests must run, not be skipped.", pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def postgres_databases(postgres_server: str) -> Iterator[ReusableDatabases]:
    """This pytest process's empty databases, dropped when it ends."""
    databases = ReusableDatabases(postgres_server)
    yield databases
    databases.drop_all()


@pytest.fixture
async def postgres_url(postgres_databases: ReusableDatabases) -> AsyncIterator[str]:
    """An empty PostgreSQL database (``postgresql://…/partoo_retry_test_…``) for this test alone."""
    async with postgres_databases.lend() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file (created on first connection)."""
    return f"sqlite:///{tmp_path}/partoo-retry.db"


@pytest.fixture(scope="session")
def migrated_postgres_databases(postgres_server: str) -> Iterator[MigratedDatabases]:
    """This pytest process's databases at the schema head, dropped when it ends."""
    databases = MigratedDatabases(postgres_server)
    yield databases
    databases.drop_all()


@pytest.fixture
async def migrated_postgres_url(migrated_postgres_databases: MigratedDatabases) -> AsyncIterator[str]:
    """A PostgreSQL database at the schema head with no rows but the migrations' own, for this test alone."""
    async with migrated_postgres_databases.lend() as url:
        yield url


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file at the schema head per pytest process, copied by ``migrated_sqlite_url``."""
    return migrated_sqlite_file(tmp_path_factory.mktemp("migrated"))


@pytest.fixture
def migrated_sqlite_url(migrated_sqlite_template: Path, tmp_path: Path) -> str:
    """A SQLite database file at the schema head, for this test alone."""
    return copy_sqlite(migrated_sqlite_template, tmp_path)


@pytest.fixture(
    params=[
        pytest.param("migrated_sqlite_url", id="sqlite"),
        pytest.param("migrated_postgres_url", marks=pytest.mark.postgres, id="postgresql"),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """A database of this test's own at the schema head, once per backend.

    Requested by name so a SQLite run never touches PostgreSQL. Not the empty ``sqlite_url`` /
    ``postgres_url`` a test may also ask for: those are other databases.
    """
    url: str = request.getfixturevalue(request.param)
    return url


@pytest.fixture(
    params=[
        pytest.param("sqlite_url", id="sqlite"),
        pytest.param("postgres_url", marks=pytest.mark.postgres, id="postgresql"),
    ]
)
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """An empty database (no schema yet), once per backend: for tests of a first start and of upgrades."""
    url: str = request.getfixturevalue(request.param)
    return url


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A fake Slack Web API on loopback that knows the bot's token.

    A test fails if the bot sent anything Slack would refuse (a block over a limit, a sixth post to a
    response_url), even when the bot only logged Slack's error: checking Slack's contract comes with every
    scenario test. Only an expired response_url is let through: time passing is not the bot's mistake.
    """
    with FakeSlack(bot_token=BOT_TOKEN, usergroups={"S0ONCALL": ["U777"]}) as fake:
        yield fake
    refused = [refusal for refusal in fake.refusals if refusal.error != EXPIRED_URL]
    assert refused == [], f"Slack would have refused: {refused}"


@pytest.fixture
def partoo() -> Iterator[FakePartoo]:
    """A fake Partoo API on loopback that knows the bot's key."""
    with FakePartoo(api_key=PARTOO_API_KEY) as fake:
        yield fake


@pytest.fixture
def signer() -> PartooSigner:
    """A generated Ed25519 key pair standing in for Partoo's."""
    return PartooSigner()


@pytest.fixture
def environment(slack: FakeSlack, partoo: FakePartoo, database_url: str, signer: PartooSigner) -> dict[str, str]:
    """The environment of a bot pointed at the fakes (once per database backend)."""
    return bot_environment(slack, partoo, database_url, signer)


@pytest.fixture
async def clocked_queue(database_url: str) -> AsyncIterator[tuple[RetryQueue, Clock]]:
    """The real retry queue on a migrated database, with a clock the test moves (leases expire at once)."""
    engine = create_engine(database_url)
    await migrate(engine)
    clock = Clock()
    yield RetryQueue(engine, clock=clock), clock
    await engine.dispose()


@pytest.fixture
async def bot(slack: FakeSlack, environment: dict[str, str]) -> AsyncIterator[RunningBot]:
    """The real ASGI app, started with its lifespan, reached through httpx."""
    async with running_bot(slack, environment) as running:
        yield running


# Debian's package, which the browser tests drive through Playwright (never Playwright's own download).
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium: browser tests skip locally without it, and fail when CI=true, like PostgreSQL's."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found (apt-get install chromium)"
        if _in_ci():
            pytest.fail(f"{message}. CI=true: browser tests must run, not be skipped.", pytrace=False)
        pytest.skip(message)
    return CHROMIUM
