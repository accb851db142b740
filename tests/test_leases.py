"""The lease primitive on its own: a claim renewed while its work runs, lost to a takeover, given back when stopped."""

from __future__ import annotations

import asyncio

import pytest

from bot.platform.leases import ClaimLost, while_claimed
from tests.waiting import eventually


async def test_work_stopped_mid_call_gives_its_claim_back() -> None:
    given_back: list[str] = []
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()  # a Slack call that never answers

    async def renew() -> bool:
        return True

    async def give_back() -> None:
        given_back.append("released")

    task = asyncio.create_task(while_claimed(work(), renew, 60.0, give_back=give_back))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert given_back == ["released"]


async def test_a_renewal_that_finds_the_claim_taken_over_cancels_the_work() -> None:
    cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def renew() -> bool:
        return False  # another replica holds it now

    with pytest.raises(ClaimLost):
        await while_claimed(work(), renew, 0.01)
    await eventually(cancelled.is_set)
