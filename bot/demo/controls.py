"""The control panel's knobs: each a button on the page that changes what the simulated Partoo does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.demo.partoo_sim import (
    OUTAGE_FAILURES,
    OUTAGE_SECONDS,
    RATE_LIMIT_SECONDS,
    Conversation,
    NextRetries,
    SimulatedPartoo,
)

# The setup issues of the "channel with a setup problem" scenario: the one Partoo documents, and one it
# could add without notice, which the bot must show as Partoo spells it (its <, & and * stay as they are).
SETUP_ISSUES = ("facebook_no_page_linked", "page_token_<expired>_&_*renew*")


@dataclass(frozen=True)
class Control:
    """One knob of the page's control panel: a button that changes what the simulated Partoo does."""

    id: str
    group: str
    label: str
    help: str
    act: Callable[[SimulatedPartoo], object]


# The page draws its control panel from this table.
CONTROLS = (
    Control("fail", "Failures", "A message fails", "A random customer, channel and content", lambda p: p.fail_one()),
    Control(
        "closed",
        "Failures",
        "A message fails in a closed conversation",
        "WhatsApp, after the customer's 24-hour window: the bot's check says a retry cannot reach them",
        lambda p: p.fail_one(Conversation("Closed"), partner="Whatsapp"),
    ),
    Control(
        "setup_problem",
        "Failures",
        "A message fails on a channel with a setup problem",
        "Facebook with no page linked, and an issue the bot does not know: it shows it as Partoo spells it",
        lambda p: p.fail_one(Conversation(issues=list(SETUP_ISSUES)), partner="Facebook"),
    ),
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
