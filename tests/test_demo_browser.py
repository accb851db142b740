"""The demo in a real browser: headless Chromium (Debian's) drives `python -m bot demo` through its page.

Screenshots go to pytest's temporary folder, or to DEMO_SCREENSHOTS when set; the README's images come from

    DEMO_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest tests/test_demo_browser.py
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.demo_runs import RunningDemo, running_demo
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The bot's loops, Partoo's delayed reports and a loaded CI machine: generous, never slept through.
STEP_TIMEOUT_MS = 30_000
OUTAGE_FAILURES = 240


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DEMO_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[RunningDemo]:
    with running_demo(tmp_path) as running:
        yield running


@pytest.fixture
def page(browser: Browser, demo: RunningDemo) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 720}, locale="en-GB")
    opened = context.new_page()
    opened.set_default_timeout(STEP_TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(demo.url)
    expect(opened.locator("#title")).to_contain_text("partoo-alerts")
    yield opened
    context.close()
    assert errors == [], "the page raised JavaScript errors"


def root_messages(page: Page) -> Locator:
    return page.locator("#conversation > .message")


def ephemeral(page: Page, text: str | re.Pattern[str]) -> Locator:
    return page.locator("#conversation .message.ephemeral").filter(has_text=text)


def count_before(label: str, locator: Locator) -> int:
    """The number written before `label` in what `locator` shows, or 0."""
    found = re.search(rf"(\d+) {label}", locator.inner_text())
    return int(found[1]) if found else 0


def test_an_alert_is_retried_from_its_button_and_commands_answer(
    page: Page, demo: RunningDemo, screenshots: Path
) -> None:
    page.get_by_role("button", name="A message fails", exact=True).click()
    alert = root_messages(page).filter(has_text="failed on")
    expect(alert).to_have_count(1, timeout=STEP_TIMEOUT_MS)
    message_id = re.search(r"Message\s+(\d+)", alert.inner_text())
    assert message_id, alert.inner_text()
    retry = alert.get_by_role("button", name="Retry", exact=True)

    # Carol may not retry; the refusal is hers alone.
    page.select_option("#person", "UCAROL")
    retry.click()
    refusal = ephemeral(page, "You may not retry")
    expect(refusal).to_be_visible(timeout=STEP_TIMEOUT_MS)
    page.select_option("#person", "UALICE")
    expect(refusal).to_have_count(0, timeout=STEP_TIMEOUT_MS)

    # A double click sends two signed clicks: one retry, and the second is told it is under way (or, when the
    # first was answered already, that Partoo accepted it): either way, nothing is sent twice.
    retry.dblclick()
    expect(ephemeral(page, re.compile(r"already (being )?retried"))).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(alert).to_contain_text("Delivered after retry by @Alice Martin", timeout=STEP_TIMEOUT_MS)
    expect(alert.locator(".meta").first).to_contain_text("(edited)")
    expect(retry).to_have_count(0)
    thread = alert.locator(".thread .message")
    expect(thread).to_have_count(1)
    expect(thread).to_contain_text("Retried by @Alice Martin: Partoo accepted the retry")
    assert demo.state()["partoo"]["answers"] == {"200": 1}
    page.screenshot(path=screenshots / "alert-retried.png")

    page.locator('#channel-list [data-channel="COPS"]').click()
    composer = page.locator("#composer-text")
    composer.fill(f"/partoo-retry status {message_id[1]}")
    composer.press("Enter")
    status = page.locator("#conversation .message.ephemeral .bk-header", has_text=f"Partoo message {message_id[1]}")
    expect(status).to_be_visible(timeout=STEP_TIMEOUT_MS)
    composer.fill("/partoo-retry 1")
    composer.press("Enter")
    answer = root_messages(page).filter(has_text="asked to retry Partoo message 1.")
    expect(answer.locator(".thread")).to_contain_text("knows no such message", timeout=STEP_TIMEOUT_MS)
    expect(answer).to_contain_text("(edited)")
    page.screenshot(path=screenshots / "slash-commands.png")

    # As in Slack, answers only you could see are gone once the page is reloaded; the rest stays.
    page.reload()
    page.locator('#channel-list [data-channel="COPS"]').click()
    expect(root_messages(page).filter(has_text="asked to retry Partoo message 1.")).to_have_count(1)
    expect(page.locator("#conversation .message.ephemeral")).to_have_count(0)
    assert not any(m["ephemeral"] for c in demo.state()["channels"] for m in c["messages"])


@pytest.mark.long(20)
def test_an_outage_becomes_one_digest_retried_at_once_and_app_home_counts(
    page: Page, demo: RunningDemo, screenshots: Path
) -> None:
    digest = outage_reported(page, demo)
    alone = root_messages(page).count() - 1
    assert alone <= 5, f"{alone} separate alerts: the flood did not become a digest"
    in_digest = OUTAGE_FAILURES - alone

    digest.get_by_role("button", name=f"Retry all {in_digest}").click()
    expect(page.locator("#confirm")).to_contain_text(f"Retry all {in_digest} messages?")
    page.locator("#confirm-ok").click()
    expect(digest).to_contain_text("Retry all requested by @Alice Martin", timeout=STEP_TIMEOUT_MS)
    wait_until(
        lambda: count_before("delivered", digest) > 0,
        timeout=STEP_TIMEOUT_MS / 1000,
        message="no retry of the digest was delivered",
    )
    page.screenshot(path=screenshots / "digest-retry-all.png")

    page.locator("#nav-home").click()
    home = page.locator("#home")
    expect(home).to_contain_text("Partoo retries", timeout=STEP_TIMEOUT_MS)
    expect(home).to_contain_text(re.compile(rf"Today \(UTC\)\s*{in_digest} requested"))
    page.screenshot(path=screenshots / "app-home.png")


def test_a_conversation_no_retry_can_reach_shows_why_and_retry_anyway_asks_first(
    page: Page, demo: RunningDemo, screenshots: Path
) -> None:
    page.get_by_role("button", name="A message fails in a closed conversation").click()
    closed = root_messages(page).filter(has_text="24-hour WhatsApp window has passed")
    # The bot's own check of the conversation (GET /conversations/{id} on the simulated Partoo) finds it closed.
    expect(closed).to_contain_text("What to do: The customer must write first", timeout=STEP_TIMEOUT_MS)
    expect(closed.get_by_role("button", name="Retry", exact=True)).to_have_count(0)
    retry_anyway = closed.get_by_role("button", name="Retry anyway")

    page.get_by_role("button", name="A message fails on a channel with a setup problem").click()
    setup = root_messages(page).filter(has_text="The channel has setup problems in Partoo")
    expect(setup).to_contain_text("Facebook page not linked", timeout=STEP_TIMEOUT_MS)
    # An issue value the bot does not know is shown as Partoo spells it, nothing in it taken as markup.
    expect(setup.locator("code", has_text="page_token")).to_have_text("page_token_<expired>_&_*renew*")
    expect(setup.get_by_role("button", name="Retry", exact=True)).to_have_count(0)
    expect(setup.get_by_role("button", name="Retry anyway")).to_be_visible()

    retry_anyway.click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("Retry anyway?")
    expect(dialog).to_contain_text("the message will probably fail again")
    page.locator("#confirm-deny").click()
    expect(dialog).not_to_be_visible()
    assert "200" not in demo.state()["partoo"]["answers"], "a cancelled Retry anyway reached Partoo"

    retry_anyway.click()
    expect(dialog).to_be_visible()
    page.screenshot(path=screenshots / "alert-verdict.png")
    page.locator("#confirm-ok").click()
    # Partoo accepts it, and it fails again: the customer's window is still closed.
    expect(closed).to_contain_text("Failed again after retry by @Alice Martin", timeout=STEP_TIMEOUT_MS)
    assert demo.state()["partoo"]["answers"].get("200") == 1


def test_a_customers_message_is_retried_from_its_more_actions_menu(
    page: Page, demo: RunningDemo, screenshots: Path
) -> None:
    page.locator('#channel-list [data-channel="CSUPPORT"]').click()
    complaint = root_messages(page).filter(has_text="message 48024 never arrived")
    expect(complaint).to_have_count(1)
    expect(complaint.locator(".meta")).to_contain_text("Dana Leroy")

    complaint.hover()
    complaint.get_by_role("button", name="More actions").click()
    page.get_by_role("button", name="Retry Partoo messages").click()
    # The bot reads the message, finds the id, and opens its modal through views.open.
    modal = page.locator("#modal")
    expect(modal).to_be_visible()
    expect(modal.locator("#modal-title")).to_have_text("Retry Partoo messages")
    option = modal.locator(".bk-option", has_text="48024")
    expect(option).to_contain_text("no failure reported to the bot")
    expect(option.get_by_role("checkbox")).to_be_checked()
    page.screenshot(path=screenshots / "message-shortcut.png")

    modal.get_by_role("button", name="Retry selected").click()
    expect(modal).not_to_be_visible()
    thread = complaint.locator(".thread")
    expect(thread).to_contain_text("@Alice Martin asked to retry Partoo message 48024")
    expect(thread).to_contain_text("Partoo accepted the retry")
    assert demo.state()["partoo"]["answers"] == {"200": 1}


def test_the_layout_holds_at_900_pixels(browser: Browser, demo: RunningDemo, screenshots: Path) -> None:
    context = browser.new_context(viewport={"width": 900, "height": 720}, locale="en-GB")
    narrow = context.new_page()
    narrow.set_default_timeout(STEP_TIMEOUT_MS)
    narrow.goto(demo.url)
    for channel, name in (("CALERTS", "# partoo-alerts"), ("CRETRYLOG", "# partoo-retry-log")):
        narrow.locator(f'#channel-list [data-channel="{channel}"]').click()
        title = narrow.locator("#title strong")
        expect(title).to_have_text(name)
        # Shown whole: not cut by the "Acting as" menu beside it.
        assert title.evaluate("node => node.parentElement.scrollWidth <= node.parentElement.clientWidth + 1"), name
    panel = narrow.locator("#panel").bounding_box()
    main = narrow.locator("#main").bounding_box()
    assert panel is not None and main is not None
    assert panel["width"] <= 900 / 4, f"the side panel takes {panel['width']:.0f} of 900 px"
    assert main["width"] >= 900 / 2
    narrow.get_by_role("button", name="A message fails", exact=True).click()
    narrow.locator('#channel-list [data-channel="CALERTS"]').click()
    expect(root_messages(narrow).filter(has_text="failed on")).to_have_count(1, timeout=STEP_TIMEOUT_MS)
    narrow.screenshot(path=screenshots / "narrow-900px.png")
    context.close()


def outage_reported(page: Page, demo: RunningDemo) -> Locator:
    """Start the outage and wait until the bot has every failure (the digest, and those posted alone, count them)."""
    page.get_by_role("button", name="A WhatsApp outage").click()
    wait_until(
        lambda: demo.state()["partoo"]["webhooks_sent"] == OUTAGE_FAILURES,
        timeout=60,
        message="the outage was not reported",
    )
    digest = root_messages(page).filter(has_text="messages failed in the last minutes")
    expect(digest).to_have_count(1, timeout=STEP_TIMEOUT_MS)

    def all_reported() -> bool:
        # Failures are posted alone until they pile up; every later one joins the digest, re-rendered in place.
        return count_before("messages failed", digest) + root_messages(page).count() - 1 == OUTAGE_FAILURES

    wait_until(all_reported, timeout=STEP_TIMEOUT_MS / 1000, message="the digest never counted every failure")
    return digest


def same_message(page: Page, message: Locator) -> Locator:
    """`message`, whatever it comes to say (a locator filtered by text loses a message replaced in place)."""
    return page.locator(f'[id="{message.get_attribute("id")}"]')


def command(page: Page, text: str) -> None:
    composer = page.locator("#composer-text")
    composer.fill(text)
    composer.press("Enter")


@pytest.mark.long(25)
def test_after_an_outage_a_plan_is_retried_and_stopped_mid_run(
    page: Page, demo: RunningDemo, screenshots: Path
) -> None:
    outage_reported(page, demo)
    page.locator('#channel-list [data-channel="COPS"]').click()
    command(page, "/partoo-retry failed since 1h partner whatsapp")
    # The plan, only for Alice: what matches, grouped, and nothing sent yet.
    plan = ephemeral(page, "Nothing is sent yet")
    expect(plan).to_contain_text(f"{OUTAGE_FAILURES} failed message(s) in the last 1 hour, partner whatsapp")
    expect(plan).to_contain_text(f"{OUTAGE_FAILURES} can be retried")
    expect(plan.get_by_role("button", name="Cancel")).to_be_visible()
    assert demo.state()["partoo"]["retried_ids"] == []
    page.screenshot(path=screenshots / "bulk-plan.png")

    plan.get_by_role("button", name=f"Retry {OUTAGE_FAILURES} that can succeed").click()
    expect(ephemeral(page, f"Queued {OUTAGE_FAILURES} retries from the plan")).to_be_visible()
    progress = root_messages(page).filter(has_text="asked to retry the failed Partoo messages")
    expect(progress).to_contain_text("in the last 1 hour, partner whatsapp")

    # Paced at Partoo's rate (600 a minute in the demo), the run takes about half a minute: it counts up in place.
    def done() -> int:
        found = re.search(rf"(\d+)/{OUTAGE_FAILURES} done", progress.inner_text())
        return int(found[1]) if found else 0

    wait_until(lambda: done() > 0, timeout=STEP_TIMEOUT_MS / 1000, message="the progress never counted up")
    assert done() < OUTAGE_FAILURES, "the run ended before Stop could be pressed"
    progress.get_by_role("button", name="Stop").click()
    expect(page.locator("#confirm")).to_contain_text("Stop these retries?")
    page.locator("#confirm-ok").click()
    told = ephemeral(page, re.compile(r"Stopped \d+ retr"))
    expect(told).to_be_visible()
    found = re.search(r"Stopped (\d+) retr", told.inner_text())
    assert found, told.inner_text()
    stopped = int(found[1])
    assert 0 < stopped < OUTAGE_FAILURES

    # Those already on their way finish as sent; the progress message then sums up, the stopped ones included.
    expect(progress).to_contain_text(f"{OUTAGE_FAILURES}/{OUTAGE_FAILURES} done", timeout=STEP_TIMEOUT_MS)
    expect(progress).to_contain_text(f"{stopped} stopped")
    expect(progress.get_by_role("button", name="Stop")).to_have_count(0)
    page.mouse.move(0, 0)  # no hover menus in the picture

    def pictured_from_its_top() -> bool:
        # Its thread lists each stopped one below; the picture shows the message itself. Replies still arriving
        # redraw the channel: taken again until the message was still at the top once the picture was taken.
        progress.evaluate("node => node.scrollIntoView({block: 'start'})")
        page.screenshot(path=screenshots / "bulk-stopped.png")
        return bool(progress.evaluate("node => node.getBoundingClientRect().top < 100"))

    wait_until(pictured_from_its_top, timeout=STEP_TIMEOUT_MS / 1000, message="the progress message kept moving")

    # Partoo's own record: each message asked for at most once, and none of the stopped ones.
    sent = demo.state()["partoo"]["retried_ids"]
    assert len(sent) == len(set(sent)) == OUTAGE_FAILURES - stopped
    expect(progress).to_contain_text(f"{OUTAGE_FAILURES - stopped} accepted")


@pytest.mark.long(12)
def test_a_business_silenced_from_its_alert_is_summed_up_when_ended_and_the_report_is_posted_on_demand(
    page: Page, demo: RunningDemo, screenshots: Path
) -> None:
    fails = page.get_by_role("button", name="A message of Le Bistrot fails")
    fails.click()
    first = root_messages(page).filter(has_text="Le Bistrot")
    expect(first.get_by_role("button", name="Retry", exact=True)).to_be_visible(timeout=STEP_TIMEOUT_MS)
    alert = same_message(page, first)

    alert.get_by_role("button", name="More options").click()
    page.get_by_role("button", name="Silence this business…").click()
    modal = page.locator("#modal")
    expect(modal.locator("#modal-title")).to_have_text("Silence alerts")
    expect(modal).to_contain_text("Silence Le Bistrot · Paris")
    expect(modal.get_by_role("radio", name="1 hour")).to_be_checked()
    note = modal.get_by_role("textbox", name="Note")
    note.fill("Facebook page being relinked, on it")
    page.screenshot(path=screenshots / "silence-modal.png")
    # "Until the time chosen below" with no time: the bot's answer marks the field, what was typed stays.
    modal.get_by_role("radio", name="Until the time chosen below").check()
    modal.get_by_role("button", name="Silence", exact=True).click()
    expect(modal.locator(".modal-error")).to_have_text("Choose when the silence ends, or pick a duration above.")
    expect(modal.get_by_role("radio", name="Until the time chosen below")).to_be_checked()
    expect(note).to_have_value("Facebook page being relinked, on it")
    modal.get_by_role("radio", name="1 hour").check()
    modal.get_by_role("button", name="Silence", exact=True).click()
    expect(modal).not_to_be_visible()
    expect(alert).to_contain_text("Le Bistrot · Paris silenced by @Alice Martin until")
    expect(alert).to_contain_text("(Facebook page being relinked, on it)")

    # Its next failures are stored, checked and retryable, but not posted one by one.
    for _ in range(3):
        fails.click()
    wait_until(
        # An alert held is held again each time it changes (its conversation check answers): counted by message.
        lambda: len(set(re.findall(r"Partoo message (\d+) held back by silence", demo.bot_log()))) == 3,
        timeout=STEP_TIMEOUT_MS / 1000,
        message="the silence did not hold the next failures back",
    )
    expect(root_messages(page)).to_have_count(1)

    page.locator('#channel-list [data-channel="COPS"]').click()
    command(page, "/partoo-retry silences")
    listing = same_message(page, ephemeral(page, "1 active silence"))
    expect(listing).to_contain_text("Held back so far: 3 failures")
    listing.get_by_role("button", name="End now").click()
    expect(page.locator("#confirm")).to_contain_text("End this silence?")
    page.locator("#confirm-ok").click()
    expect(listing).to_contain_text("The silence of Le Bistrot · Paris is over")

    # Ended early, it is summed up at once, as at its end: one message, with Retry all.
    page.locator('#channel-list [data-channel="CALERTS"]').click()
    summary = root_messages(page).filter(has_text="While Le Bistrot · Paris was silenced: 3 failures")
    expect(summary).to_have_count(1, timeout=STEP_TIMEOUT_MS)
    expect(summary.get_by_role("button", name=re.compile(r"^Retry all"))).to_be_visible()
    expect(alert).not_to_contain_text("silenced by", timeout=STEP_TIMEOUT_MS)
    page.screenshot(path=screenshots / "silence-summary.png")

    page.get_by_role("button", name="Post the weekly report now").click()
    page.locator('#channel-list [data-channel="CRETRYLOG"]').click()
    report = root_messages(page).filter(has_text="Partoo retries: weekly report")
    expect(report).to_have_count(1, timeout=STEP_TIMEOUT_MS)
    expect(report).to_contain_text(re.compile(r"Failed messages\s*4 "))
    expect(report).to_contain_text("Le Bistrot · Paris: 4")
    page.screenshot(path=screenshots / "weekly-report.png")
