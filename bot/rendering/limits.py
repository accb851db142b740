"""Slack's documented limits on what a message or view may hold (api.slack.com/reference/block-kit).

Builders size what they post with these; the test suite's fake Slack keeps its own copy, so that a mistake
here is caught there rather than shared.
"""

from __future__ import annotations

MAX_BLOCKS = 50  # a message
MAX_VIEW_BLOCKS = 100  # App Home and modals
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
MESSAGE_TEXT = 40_000  # top-level `text`; longer is refused as msg_too_long
# Modals (views.open) and their inputs.
VIEW_TITLE = 24
PRIVATE_METADATA = 3000
CHECKBOX_OPTIONS = 10  # options in one checkbox group
OPTION_TEXT = 75  # an option's text, and its description
