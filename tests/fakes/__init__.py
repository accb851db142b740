"""Loopback fakes of Slack's Web API and Socket Mode, and of Partoo's retry endpoint."""

from __future__ import annotations

from tests.fakes.partoo import ANY_MESSAGE, FakePartoo, PartooCall, Reply
from tests.fakes.server import FakeServer, Gate
from tests.fakes.slack import FakeSlack, SlackCall, SlackMessage, SlackRefusal
from tests.fakes.socket_mode import Ack, FakeSocketMode, payload_of

__all__ = [
    "ANY_MESSAGE",
    "Ack",
    "FakePartoo",
    "FakeServer",
    "FakeSlack",
    "FakeSocketMode",
    "Gate",
    "PartooCall",
    "Reply",
    "SlackCall",
    "SlackMessage",
    "SlackRefusal",
    "payload_of",
]
