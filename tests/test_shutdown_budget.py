"""The shutdown budget: one deadline, counted from the first stop signal, shared by every stage."""

from __future__ import annotations

from bot.platform.shutdown import ShutdownBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_deadline_counts_from_the_first_signal_and_a_second_does_not_extend_it() -> None:
    clock = Clock()
    budget = ShutdownBudget(25, clock=clock)
    budget.start()
    clock.now += 10
    budget.start()  # a second SIGTERM

    assert budget.remaining() == 15
    assert budget.remaining(keep=3) == 12


def test_stages_share_what_is_left_and_it_never_goes_negative() -> None:
    clock = Clock()
    budget = ShutdownBudget(8, clock=clock)
    budget.start()
    clock.now += 6  # e.g. HTTP requests and Partoo calls took six seconds
    assert budget.remaining(keep=3) == 0
    assert budget.remaining() == 2
    clock.now += 5
    assert budget.remaining() == 0


def test_without_a_signal_the_budget_starts_when_the_shutdown_asks() -> None:
    clock = Clock()
    budget = ShutdownBudget(25, clock=clock)
    clock.now += 1000  # the process ran for a while; nothing was counted yet
    assert budget.remaining(keep=3) == 22
