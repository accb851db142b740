"""Loopback fakes of Slack's Web API and Partoo's retry endpoint."""

from __future__ import annotations

from tests.fakes.partoo import ANY_MESSAGE, FakePartoo, PartooCall, Reply
from tests.fakes.server import FakeServer, Gate
from tests.fakes.slack import FakeSlack, SlackCall, SlackMessage

__all__ = [
    "ANY_MESSAGE",
    "FakePartoo",
    "FakeServer",
    "FakeSlack",
    "Gate",
    "PartooCall",
    "Reply",
    "SlackCall",
    "SlackMessage",
]
