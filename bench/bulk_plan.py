"""Benchmark 3, from a filter: 600 failures learnt from Partoo's webhooks, one plan, one click on its Retry.

The bot gets `PARTOO_RATE_LIMIT_PER_MINUTE=300` and a webhook key. It learns of 600 failures the way it does
in production: signed `message_updated` deliveries with status `Failed`, spread over `CONVERSATIONS`
conversations that FakePartoo reports open (so every failure can be retried). Once its alerter has stored
them (and its diagnosis has checked their conversations), ONE `/partoo-retry failed since 1h` asks for a
plan; the plan's "Retry N that can succeed" button is clicked with a signed `block_actions` payload, as
Slack sends it. The clock starts when the click is sent.

Measured from the click: the last call Partoo receives (FakePartoo's records), every request finished and
the batch's summary posted (the bot's database); 429s from Partoo; each id sent exactly once. On Slack's
side: the progress message (posted when, with Stop), how often it was updated in place (`chat.update`
calls on it, and the shortest gap between two), every `chat.update` of the run in any 60 s against Slack's
Tier 3 (about 50 a minute per workspace), and 429s from FakeSlack, which enforces about one
`chat.postMessage` a second per channel with bursts of 3 (it does not limit `chat.update`).

Before each retry the bot checks its conversation (a verdict made before the click does not count), at one
Partoo call per conversation for the whole bulk: those calls take slots of the same 300 a minute, so the
floor is (600 + conversations checked) calls at 300 a minute.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.bulk import GOAL_FACTOR, IDS, RATE, Progress, partoo_figures
from bench.common import (
    WEBHOOK_PATH,
    database,
    fakes,
    fresh_ids,
    ours_environment,
    raw_clients,
    raw_pool,
    read_only_query_async,
    request_bytes,
    running,
    say,
    signed_command,
    start_ours,
    timed_post,
)
from bot.retries.messages import STOP_ACTION_ID
from bot.retries.plan_messages import PLAN_RETRY_ACTION_ID
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import CHANNEL, SIGNING_SECRET, USER
from tests.processes import BotProcess
from tests.signing import PartooSigner, block_actions_body, json_body, message_updated_event, slack_signature_headers

# 600 failures in 20 conversations of one business's WhatsApp channel: 30 failed messages each.
CONVERSATIONS = 20
FIRST_CONVERSATION = 900_001
FILTER = "failed since 1h"
SENDERS = 10
# Slack's Tier 3 (chat.update): about 50 calls a minute per workspace.
TIER3_PER_MINUTE = 50
STORED_TIMEOUT = 60.0
CHECKED_TIMEOUT = 60.0
PLAN_TIMEOUT = 30.0


@dataclass
class PlanBulkResult:
    database: str
    count: int  # failures reported, and the plan's filter matched
    plan_retry: int  # N on the plan's "Retry N that can succeed"
    plan_seconds: float  # from the command to the plan in Slack
    verdicts_before_click: int  # alerts whose conversation the diagnosis had checked when Retry was clicked
    click_ack: float  # the click's HTTP answer, seconds
    calls: int  # retry calls Partoo received
    ids_sent: int
    rate_limited: int  # 429s Partoo answered, retries and checks alike
    duplicates: int
    missing: int
    accepted: int
    first_call: float  # seconds from the click
    last_call: float
    max_in_any_minute: int  # retries and conversation checks, as Partoo counts them
    checks: int  # conversation checks Partoo received from the click on
    finished: float | None = None
    summarized: float | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    progress_posted: float | None = None  # the progress message, from the click
    progress_has_stop: bool = False
    progress_updates: int = 0  # chat.update calls on the progress message, its summary included
    progress_gap_min: float | None = None  # the shortest time between two progress updates (not the summary)
    updates_max_minute: int = 0  # every chat.update of the run (both channels) in any 60 s
    slack_posts: int = 0
    slack_rate_limited: int = 0
    slack_refusals: int = 0

    @property
    def floor(self) -> float:
        """Every call the bulk made to Partoo (retries and the checks in front of them) at RATE a minute."""
        return (self.count + self.checks) / RATE * 60

    @property
    def paced(self) -> bool:
        """The last call within 5 % of the floor."""
        return self.last_call <= self.floor * GOAL_FACTOR

    @property
    def clean(self) -> bool:
        """No 429 from Partoo or Slack, each id sent once, and the progress message posted with Stop."""
        return (
            self.rate_limited == 0
            and self.slack_rate_limited == 0
            and not self.duplicates
            and not self.missing
            and self.progress_has_stop
        )

    @property
    def goal_met(self) -> bool:
        return self.paced and self.clean


def _failure_requests(signer: PartooSigner, port: int, ids: list[int]) -> list[bytes]:
    requests = []
    for number, message_id in enumerate(ids):
        event = message_updated_event(message_id, conversation_id=FIRST_CONVERSATION + number % CONVERSATIONS)
        body = json_body(event)
        requests.append(request_bytes("POST", WEBHOOK_PATH, port, body, signer.headers(body)))
    return requests


async def _count(url: str, query: str) -> int:
    ((count,),) = await read_only_query_async(url, query)
    return int(count)


async def _wait_for(url: str, query: str, wanted: int, seconds: float) -> int:
    """The query's count once it reaches `wanted`, or after `seconds`, whichever comes first."""
    deadline = time.monotonic() + seconds
    while True:
        count = await _count(url, query)
        if count >= wanted or time.monotonic() >= deadline:
            return count
        await asyncio.sleep(0.25)


def _max_in_window(times: list[float], seconds: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def _slack_figures(slack: FakeSlack, started_mono: float) -> dict[str, Any]:
    posts = [call for call in slack.calls_to("chat.postMessage") if call.params.get("channel") == CHANNEL]
    root = next((call for call in posts if "from a plan" in str(call.params.get("text", ""))), None)
    figures: dict[str, Any] = {
        "slack_posts": len(slack.calls_to("chat.postMessage")),
        "slack_rate_limited": slack.rate_limited_count,
        "slack_refusals": len(slack.refusals),
        "updates_max_minute": _max_in_window([call.at for call in slack.calls_to("chat.update")], 60.0),
    }
    if root is None or not root.response.get("ok"):
        return figures
    ts = root.response["ts"]
    updates = sorted(
        call.at
        for call in slack.calls_to("chat.update")
        if call.params.get("channel") == CHANNEL and call.params.get("ts") == ts
    )
    # The last update is the summary, made as soon as everything is done; the others are progress, paced.
    gaps = [later - earlier for earlier, later in itertools.pairwise(updates[:-1])]
    figures |= {
        "progress_posted": root.at - started_mono,
        "progress_has_stop": STOP_ACTION_ID in str(root.params.get("blocks")),
        "progress_updates": len(updates),
        "progress_gap_min": min(gaps) if gaps else None,
    }
    return figures


async def _ask_for_plan(client: httpx.AsyncClient, slack: FakeSlack) -> tuple[dict[str, Any], float]:
    body, headers = signed_command(FILTER, slack.response_url("plan"))
    asked = time.monotonic()
    await client.post("/slack/events", content=body, headers=headers)
    deadline = asked + PLAN_TIMEOUT
    while not slack.responses("plan"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no plan within {PLAN_TIMEOUT} s")
        await asyncio.sleep(0.05)
    return slack.responses("plan")[0], time.monotonic() - asked


def _retry_button(plan: dict[str, Any]) -> tuple[str, int]:
    for block in plan.get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == PLAN_RETRY_ACTION_ID:
                found = re.search(r"Retry (\d+)", element["text"]["text"])
                return str(element["value"]), int(found.group(1)) if found else 0
    raise RuntimeError(f"the plan offers no Retry: {plan.get('text')}")


async def _drive(
    process: BotProcess, slack: FakeSlack, partoo: FakePartoo, url: str, signer: PartooSigner, ids: list[int]
) -> PlanBulkResult:
    async with raw_clients(process.port, SENDERS) as clients:
        answers = await raw_pool(clients, _failure_requests(signer, process.port, ids))
    stored = sum(1 for status in answers.statuses if status == 200)
    alerts = await _wait_for(url, "SELECT count(*) FROM alerts", len(ids), STORED_TIMEOUT)
    checked = await _wait_for(url, "SELECT count(*) FROM alerts WHERE verdict IS NOT NULL", len(ids), CHECKED_TIMEOUT)
    say(f"    {stored} failures answered stored, {alerts} alerts, {checked} with their conversation checked")
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=process.url, limits=limits, timeout=30.0) as client:
        plan, plan_seconds = await _ask_for_plan(client, slack)
        value, retryable = _retry_button(plan)
        say(f"    plan shown after {plan_seconds:.2f} s: Retry {retryable} that can succeed")
        body = block_actions_body(
            action_id=PLAN_RETRY_ACTION_ID,
            value=value,
            user_id=USER,
            channel_id=CHANNEL,
            response_url=slack.response_url("retry"),
        )
        headers = slack_signature_headers(SIGNING_SECRET, body)
        started_wall, started_mono = time.time(), time.monotonic()
        click_ack, _status = await timed_post(client, body, headers)
    progress = Progress(url)
    done, summarized, last_finished, last_summary = await progress.until_done(
        partoo, len(ids), 1, started_mono, checks=True
    )
    await asyncio.sleep(3.0)  # a last progress update or reply may still be on its way to Slack
    figures = partoo_figures(partoo, ids, started_mono)
    figures["max_in_any_minute"] = partoo.max_calls_in_any_window(60.0, with_checks=True)
    complete = done >= len(ids) and summarized >= 1
    return PlanBulkResult(
        database="postgresql" if url.startswith("postgres") else "sqlite",
        count=len(ids),
        plan_retry=retryable,
        plan_seconds=plan_seconds,
        verdicts_before_click=checked,
        click_ack=click_ack,
        checks=sum(1 for call in partoo.conversation_calls if call.at >= started_mono),
        finished=(last_finished - started_wall) if complete and last_finished else None,
        summarized=(last_summary - started_wall) if complete and last_summary else None,
        outcomes=await progress.outcomes(),
        **figures,
        **_slack_figures(slack, started_mono),
    )


def run_ours(workdir: Path, db: str, count: int = IDS) -> PlanBulkResult:
    say(f"  ours on {db}: {count} failures as webhooks, one plan, one click; {RATE} calls/min (about 2 minutes)")
    ids = fresh_ids(count)
    signer = PartooSigner()
    with fakes(partoo_rate=RATE) as (slack, partoo), database(db, workdir) as url:
        environment = ours_environment(
            slack, partoo, url, PARTOO_RATE_LIMIT_PER_MINUTE=str(RATE), PARTOO_WEBHOOK_PUBLIC_KEY=signer.public_pem
        )
        with running(start_ours(environment, workdir)) as process:
            result = asyncio.run(_drive(process, slack, partoo, url, signer, ids))
    say(
        f"    last Partoo call {_s(result.last_call)} ({result.last_call / result.floor:.3f}x the"
        f" {result.floor:.1f} s floor of {count} retries and {result.checks} checks); all finished"
        f" {_s(result.finished)}, summary {_s(result.summarized)}; Partoo 429s {result.rate_limited};"
        f" ids sent once {result.ids_sent - result.duplicates}/{count}, twice or more {result.duplicates};"
        f" progress message {_s(result.progress_posted)} (Stop: {result.progress_has_stop}),"
        f" {result.progress_updates} updates in place; Slack 429s {result.slack_rate_limited}"
    )
    return result


def _s(value: float | None) -> str:
    return "not within the time limit" if value is None else f"after {value:.1f} s"


def run(workdir: Path, *, postgres: bool) -> list[PlanBulkResult]:
    say(f"3b. bulk retry from a filter: {IDS} failures, one plan, one click, {RATE} calls/min")
    results = [run_ours(workdir, "sqlite")]
    if postgres:
        results.append(run_ours(workdir, "postgresql"))
    return results
