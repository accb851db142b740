"""Partoo's limit holds even when calls leave late: no 60 s ever sees more calls than PARTOO_RATE_LIMIT_PER_MINUTE.

Partoo counts the calls it receives in any minute. The bot hands out slots 60 s / limit apart (a little wider),
but a retry stores its attempt between its slot and its call, and on a loaded machine that commit can take
seconds: calls then leave in a bunch, later than their slots, while the calls after them leave on time. The
model is Partoo's own count: the arrival times of every call, and no 60 s window holding more than the limit.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.platform.database import create_engine, migrate
from bot.platform.pace import SAFETY_MARGIN, SharedPace
from tests.fakes.partoo import most_in_any_window

LIMIT = 300
WINDOW = 60.0
INTERVAL = WINDOW / LIMIT * SAFETY_MARGIN


class VirtualTime:
    """A clock that moves only when someone sleeps: the test runs minutes of pacing in milliseconds."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


async def _arrivals(database_url: str, late: Callable[[int], float], *, retake: bool) -> list[tuple[float, float]]:
    """Send 700 calls one slot after another; call `n` is held up `late(n)` seconds after its slot; (slot, arrival).

    A held-up call runs on its own clock (the others go on meanwhile), so its lateness does not delay them.
    """
    engine = create_engine(database_url)
    await migrate(engine)
    time = VirtualTime()
    own = VirtualTime()
    pace = SharedPace(engine, LIMIT, clock=time.clock, sleep=time.sleep)
    held_up = SharedPace(engine, LIMIT, clock=own.clock, sleep=own.sleep)
    arrivals: list[tuple[float, float]] = []
    try:
        for n in range(700):
            slot = await pace.wait_for_slot()
            own.now = slot + late(n)
            while retake and held_up.is_late(slot):  # as the worker does: a new slot rather than a late call
                slot = await held_up.wait_for_slot()
            arrivals.append((slot, own.now))
    finally:
        await engine.dispose()
    return arrivals


def _bunched(n: int) -> float:
    # Twice in the run, the bot stalls for 30 slots (about 6 s) and the 30 calls held up leave together at its end.
    return next(((start + 30 - n) * INTERVAL for start in (100, 500) if start <= n < start + 30), 0.0)


async def test_calls_held_up_after_their_slots_never_overrun_partoos_minute(database_url: str) -> None:
    calls = await _arrivals(database_url, _bunched, retake=True)

    assert len(calls) == 700
    assert most_in_any_window((arrived for _, arrived in calls), WINDOW) <= LIMIT


async def test_the_model_sees_the_overrun_a_bot_that_calls_late_would_cause(database_url: str) -> None:
    # Without taking new slots, the same bunches put more than the limit into one minute: the check above bites.
    calls = await _arrivals(database_url, _bunched, retake=False)

    assert most_in_any_window((arrived for _, arrived in calls), WINDOW) > LIMIT


async def test_calls_a_moment_late_keep_their_slots(database_url: str) -> None:
    calls = await _arrivals(database_url, lambda n: 0.4, retake=True)

    assert [round(arrived - slot, 6) for slot, arrived in calls] == [0.4] * 700
