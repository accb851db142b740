"""The control panel's knobs: each a button on the page that changes what the simulated Partoo does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.demo.partoo_sim import OUTAGE_FAILURES, OUTAGE_SECONDS, RATE_LIMIT_SECONDS, NextRetries, SimulatedPartoo


@dataclass(frozen=True)
class Control:
    """One knob of the page's control panel: a button that changes what the simulated Partoo does."""

    id: str
    group: str
    label: str
    help: str
    act: Callable[[SimulatedPartoo], object]


# The page draws its control panel from this table. Scenarios for the bot's conversation checks are one row
# each, e.g. `lambda p: p.fail_one(Conversation("Closed"))` or `Conversation(issues=["facebook_no_page_linked"])`;
# they are left out while the bot does not read conversations, since they would change nothing on the page.
CONTROLS = (
    Control("fail", "Failures", "A message fails", "A random customer, channel and content", lambda p: p.fail_one()),
    Control(
        "outage",
        "Failures",
        "A WhatsApp outage",
        f"{OUTAGE_FAILURES} messages fail within {OUTAGE_SECONDS:g} seconds",
        lambda p: p.outage(),
    ),
    Control(
        NextRetries.DELIVERED,
        "Next retries",
        "are delivered",
        "Partoo accepts them, then reports them delivered",
        lambda p: p.set_next_retries(NextRetries.DELIVERED),
    ),
    Control(
        NextRetries.FAIL_AGAIN,
        "Next retries",
        "fail again",
        "Partoo accepts them, then reports them failed again",
        lambda p: p.set_next_retries(NextRetries.FAIL_AGAIN),
    ),
    Control(
        NextRetries.TIME_OUT,
        "Next retries",
        "time out",
        "Partoo answers only after the bot stopped waiting (it then delivers them)",
        lambda p: p.set_next_retries(NextRetries.TIME_OUT),
    ),
    Control(
        "rate_limit",
        "Partoo",
        f"answers 429 for {RATE_LIMIT_SECONDS:g} s",
        "Every call is rate limited; the bot waits Retry-After and paces every retry",
        lambda p: p.rate_limit(),
    ),
)
