"""The control panel's knobs: each a button on the page that changes what the simulated Partoo does, or asks the
bot for something it offers its operators (the weekly report, now)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.demo.customers import BUSINESS_NAMES
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


# The business whose failures the silence scenario repeats: the one README's silence example names.
SILENCED_BUSINESS = 1042
SILENCED_NAME = BUSINESS_NAMES[SILENCED_BUSINESS][0]


class ReportOnDemand(Protocol):
    """What the bot offers to post the weekly report at once (bot.reports.poster.ReportPoster)."""

    async def post_now(self) -> str | None: ...


@dataclass(frozen=True)
class Knobs:
    """What the controls act on: the simulated Partoo, and the operations of the running bot they may ask for."""

    partoo: SimulatedPartoo
    report: ReportOnDemand


@dataclass(frozen=True)
class Control:
    """One knob of the page's control panel: a button that changes what the simulated Partoo does, or asks the
    bot for something. `act` may return an awaitable (asking the bot); the page awaits it before answering."""

    id: str
    group: str
    label: str
    help: str
    act: Callable[[Knobs], object]


# The page draws its control panel from this table.
CONTROLS = (
    Control(
        "fail", "Failures", "A message fails", "A random customer, channel and content", lambda k: k.partoo.fail_one()
    ),
    Control(
        "closed",
        "Failures",
        "A message fails in a closed conversation",
        "WhatsApp, after the customer's 24-hour window: the bot's check says a retry cannot reach them",
        lambda k: k.partoo.fail_one(Conversation("Closed"), partner="Whatsapp"),
    ),
    Control(
        "setup_problem",
        "Failures",
        "A message fails on a channel with a setup problem",
        "Facebook with no page linked, and an issue the bot does not know: it shows it as Partoo spells it",
        lambda k: k.partoo.fail_one(Conversation(issues=list(SETUP_ISSUES)), partner="Facebook"),
    ),
    Control(
        "business",
        "Failures",
        f"A message of {SILENCED_NAME} fails",
        "On its Facebook, each time: silence the business from its alert's ⋯ menu, and the next ones are held back",
        lambda k: k.partoo.fail_one(partner="Facebook", business_id=SILENCED_BUSINESS),
    ),
    Control(
        "outage",
        "Failures",
        "A WhatsApp outage",
        f"{OUTAGE_FAILURES} messages fail within {OUTAGE_SECONDS:g} seconds",
        lambda k: k.partoo.outage(),
    ),
    Control(
        NextRetries.DELIVERED,
        "Next retries",
        "are delivered",
        "Partoo accepts them, then reports them delivered",
        lambda k: k.partoo.set_next_retries(NextRetries.DELIVERED),
    ),
    Control(
        NextRetries.FAIL_AGAIN,
        "Next retries",
        "fail again",
        "Partoo accepts them, then reports them failed again",
        lambda k: k.partoo.set_next_retries(NextRetries.FAIL_AGAIN),
    ),
    Control(
        NextRetries.TIME_OUT,
        "Next retries",
        "time out",
        "Partoo answers only after the bot stopped waiting (it then delivers them)",
        lambda k: k.partoo.set_next_retries(NextRetries.TIME_OUT),
    ),
    Control(
        "rate_limit",
        "Partoo",
        f"answers 429 for {RATE_LIMIT_SECONDS:g} s",
        "Every call is rate limited; the bot waits Retry-After and paces every retry",
        lambda k: k.partoo.rate_limit(),
    ),
    Control(
        "report",
        "The bot",
        "Post the weekly report now",
        "The seven days up to now, in #partoo-retry-log (otherwise posted each Monday at 09:00 UTC)",
        lambda k: k.report.post_now(),
    ),
)
