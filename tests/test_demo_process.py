"""`python -m bot demo` as a user runs it: no configuration, one URL, the page served, a clean stop."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.demo_runs import running_demo
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

ALERTS = "CALERTS"
OPS = "COPS"


def test_demo_needs_no_configuration_and_serves_the_page(tmp_path: Path) -> None:
    with running_demo(tmp_path, env={}) as demo:
        assert re.findall(r"https?://\S+", demo.process.stdout()) == [demo.url]
        # The URL is the last line, where the eye falls.
        assert demo.process.stdout().splitlines()[-1] == f"partoo-retry demo: open {demo.url}"

        page = demo.get("/")
        assert page.status_code == 200
        assert "<title>partoo-retry demo</title>" in page.text
        for asset in ("/static/demo.js", "/static/blockkit.js", "/static/demo.css"):
            assert demo.get(asset).status_code == 200, asset

        state = demo.state()
        assert [c["name"] for c in state["channels"]][:2] == ["partoo-alerts", "ops"]
        assert {p["id"]: p["may_retry"] for p in state["people"]} == {"UALICE": True, "UBOB": True, "UCAROL": False}

        # The real bot answers: a failure reported by the simulated Partoo becomes an alert with a Retry button.
        assert demo.post("/demo/partoo", {"control": "fail"}).status_code == 200
        alert = wait_until(lambda: demo.channel_messages(ALERTS), timeout=20, message="no alert posted")[0]
        assert "failed" in alert["text"]
        assert any(block["type"] == "actions" for block in alert["blocks"])

        # A quiet terminal: the bot's lines went to its log file, none of them to the terminal.
        bot_log = demo.bot_log()
        assert "partoo-retry 0.1.0 started" in bot_log
        assert "uvicorn" not in bot_log  # "Uvicorn running on <the bot's port>" would only mislead
        assert "auto-vacuum" not in bot_log  # a new file is switched in milliseconds: nothing to report
        assert demo.process.stderr() == ""
        started = demo.process.stdout()

        assert demo.process.stop(signal.SIGTERM) == 0
        assert "Traceback" not in demo.process.logs()
        # On the way out, the URL once more: the first may have scrolled away.
        assert demo.process.stdout() == f"{started}partoo-retry demo stopped (it was at {demo.url}).\n"
    # Its database lived in a temporary folder: nothing is left where it ran.
    assert sorted(p.name for p in demo.process.directory.iterdir()) == ["stderr.log", "stdout.log"]


def test_demo_ignores_real_credentials_and_dotenv(tmp_path: Path) -> None:
    real = {
        "SLACK_BOT_TOKEN": "xoxb-real-token-never-used-4411",
        "SLACK_SIGNING_SECRET": "real-signing-secret-never-used-4412",
        "PARTOO_API_KEY": "real-partoo-key-never-used-4413",
        "DATABASE_URL": f"sqlite:///{tmp_path}/real.db",
        # Bolt switches to an OAuth install flow by itself when it sees these two.
        "SLACK_CLIENT_ID": "1234.5678",
        "SLACK_CLIENT_SECRET": "real-client-secret-never-used-4414",
        # A proxy nobody answers on: loopback calls sent through it would fail.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    # The demo's working directory is below tmp_path, where python-dotenv would find this file.
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN=xoxb-dotenv-token-4415\nDATABASE_URL=sqlite:///{tmp_path}/dotenv.db\n"
    )

    with running_demo(tmp_path, env=real) as demo:
        demo.post("/demo/partoo", {"control": "fail"})
        failed = wait_until(lambda: demo.state()["partoo"]["failed"], timeout=20, message="no failure")[0]
        wait_until(lambda: demo.channel_messages(ALERTS), timeout=20, message="no alert posted")
        demo.post("/demo/message", {"user": "UBOB", "channel": OPS, "text": f"/partoo-retry {failed['id']}"})

        def thread_of_alert() -> list[dict[str, object]]:
            replies: list[dict[str, object]] = demo.channel_messages(ALERTS)[0]["replies"]
            return replies

        # Slack accepted the demo's token and Partoo its key: the outcome is reported in the alert's thread.
        reply = wait_until(thread_of_alert, timeout=20, message="no outcome in the alert's thread")[0]
        assert "Partoo accepted the retry" in str(reply["text"])

        bot_log = demo.bot_log()
        assert "Partoo retry" in bot_log  # the flows were logged, in the file the demo named
        assert demo.process.stop(signal.SIGINT) == 0
        logs = demo.process.logs() + bot_log
    assert not (tmp_path / "real.db").exists()
    assert not (tmp_path / "dotenv.db").exists()
    for value in [*real.values(), "xoxb-dotenv-token-4415"]:
        if "never-used" in value or "dotenv" in value:
            assert value not in logs
