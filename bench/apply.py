"""`python -m bench.apply`: how fast the alerter's store applies webhook events it has claimed.

In a flood the alerter must keep up with intake: every stored event is claimed, applied to its alert (or
opens one) and marked processed or dropped. This stores `--events` signed deliveries (two `Failed` for one
`Success`, each of its own message, as a flood looks) through the bot's own store, then claims and applies
them as the alerter does, and prints events applied per second and the CPU time per event. No HTTP, no
Slack: only the store, on a new SQLite file or a new PostgreSQL database.

    python -m bench.apply --database sqlite --events 3000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.common import database
from bot.alerts.store import AlertStore
from bot.failures.webhook_events import parse_event
from bot.platform.database import create_engine, migrate
from tests.signing import json_body, message_updated_event

ALERT_CHANNEL = "CALERTS"


async def applied_per_second(url: str, events: int) -> tuple[float, float]:
    """(events applied per second, CPU milliseconds per event) for `events` stored deliveries."""
    engine = create_engine(url)
    try:
        await migrate(engine)
        store = AlertStore(engine)
        deliveries = [
            parse_event(json_body(message_updated_event(100_000 + n, status="Success" if n % 3 == 0 else "Failed")))
            for n in range(events)
        ]
        await asyncio.gather(*(store.store_event(delivery) for delivery in deliveries))
        cpu, started = time.process_time(), time.perf_counter()
        applied = 0
        while claimed := await store.claim_events(30.0):
            await store.apply_claimed(claimed, lambda _stored: ALERT_CHANNEL)
            applied += len(claimed)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        return applied / elapsed, cpu / applied * 1000
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=3000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, database(arguments.database, Path(workdir)) as url:
        rate, cpu = asyncio.run(applied_per_second(url, arguments.events))
    print(f"{arguments.database}: {arguments.events} events applied at {rate:,.0f}/s, {cpu:.2f} ms of CPU each")


if __name__ == "__main__":
    main()
