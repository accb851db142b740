"""Slack's rules for message and view content, as the fake Slack enforces them.

Each `blocks` or `view` is parsed with slack_sdk's models and validated with `.validate_json()`, then checked
against the documented Block Kit limits those models skip (nested elements, fields, button values, unique ids).
A refusal is described the way Slack describes it: an error code and messages ending in a JSON pointer, such as
`must be less than 3001 characters [json-pointer:/blocks/0/text/text]`.

The numbers are Slack's (docs.slack.dev, "Block Kit" reference pages and chat.postMessage), written here on
purpose and never imported from `bot/`: a fake that shared the bot's constants would accept the bot's mistakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block, BlockElement
from slack_sdk.models.views import View

# -- Slack's documented limits --------------------------------------------------------------------------------

MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
MESSAGE_TEXT_MAX = 40_000  # top-level `text`; beyond it chat.postMessage answers msg_too_long
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 3000
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
BUTTON_URL_MAX = 3000
ACTION_ID_MAX = 255
BLOCK_ID_MAX = 255
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30
MODAL_TITLE_MAX = 24

# Slack's error codes for refused content.
INVALID_BLOCKS = "invalid_blocks"
INVALID_BLOCKS_FORMAT = "invalid_blocks_format"
MSG_TOO_LONG = "msg_too_long"
# The views.* methods report a bad view as bad arguments, with the same pointer messages.
INVALID_ARGUMENTS = "invalid_arguments"

_TEXT_TYPES = ("plain_text", "mrkdwn")
_BUTTON_STYLES = ("primary", "danger")


@dataclass(frozen=True)
class Refusal:
    """Why Slack would refuse a message or view: its error code and one message per problem."""

    error: str
    errors: tuple[str, ...] = ()

    def api_answer(self) -> dict[str, Any]:
        """The Web API body Slack answers with (HTTP 200, `ok: false`)."""
        answer: dict[str, Any] = {"ok": False, "error": self.error}
        if self.errors:
            if self.error == INVALID_BLOCKS:
                answer["errors"] = list(self.errors)  # the views.* methods give only the messages below
            answer["response_metadata"] = {"messages": [f"[ERROR] {message}" for message in self.errors]}
        return answer


def message_refusal(params: Mapping[str, Any]) -> Refusal | None:
    """What Slack answers to a message with these params (`text`, `blocks`), or None when it accepts it."""
    text = params.get("text")
    if isinstance(text, str) and len(text) > MESSAGE_TEXT_MAX:
        return Refusal(MSG_TOO_LONG)
    if "blocks" not in params or params["blocks"] is None:
        return None
    blocks = params["blocks"]
    if not isinstance(blocks, list):
        # A string here is JSON the fake could not parse: Slack cannot read it as blocks either.
        return Refusal(INVALID_BLOCKS_FORMAT)
    checker = _Checker()
    checker.blocks(blocks, "/blocks", MESSAGE_MAX_BLOCKS)
    return Refusal(INVALID_BLOCKS, tuple(checker.errors)) if checker.errors else None


def view_refusal(view: object) -> Refusal | None:
    """What the views.* methods answer to this view, or None when Slack accepts it."""
    checker = _Checker()
    if not isinstance(view, dict):
        checker.fail("/view", "expected an object")
        return Refusal(INVALID_ARGUMENTS, tuple(checker.errors))
    kind = view.get("type")
    if kind not in ("home", "modal"):
        checker.fail("/view/type", "must be one of home, modal")
    if kind == "modal":
        checker.text_object(view.get("title"), "/view/title", MODAL_TITLE_MAX, plain_only=True)
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        checker.fail("/view/blocks", "expected an array")
    else:
        checker.blocks(blocks, "/view/blocks", VIEW_MAX_BLOCKS)
    if not checker.errors:
        # slack_sdk's own view rules (title, submit, close, private_metadata, callback_id lengths).
        checker.sdk(lambda: View(**view).validate_json(), "/view")
    return Refusal(INVALID_ARGUMENTS, tuple(checker.errors)) if checker.errors else None


@dataclass
class _Checker:
    """Walks one message or view, collecting Slack-style messages; ids must be unique across all of it."""

    errors: list[str] = field(default_factory=list)
    action_ids: set[str] = field(default_factory=set)
    block_ids: set[str] = field(default_factory=set)

    def fail(self, pointer: str, message: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def sdk(self, validate: Any, pointer: str) -> None:
        """Run a slack_sdk parse/validate step, turning what it raises into a message at `pointer`."""
        try:
            validate()
        except (SlackObjectFormationError, TypeError, ValueError, AttributeError, KeyError) as error:
            self.fail(pointer, str(error) or type(error).__name__)

    def blocks(self, blocks: list[Any], pointer: str, most: int) -> None:
        if len(blocks) > most:
            self.fail(pointer, f"no more than {most} items allowed")
        for index, block in enumerate(blocks):
            self.block(block, f"{pointer}/{index}")

    def block(self, block: object, pointer: str) -> None:
        if not isinstance(block, dict):
            self.fail(pointer, "expected an object")
            return
        before = len(self.errors)
        self.unique_id(block.get("block_id"), f"{pointer}/block_id", BLOCK_ID_MAX, self.block_ids, "block_id")
        kind = block.get("type")
        if kind == "section":
            self.section(block, pointer)
        elif kind == "header":
            self.text_object(block.get("text"), f"{pointer}/text", HEADER_TEXT_MAX, plain_only=True)
        elif kind == "context":
            self.context(block, pointer)
        elif kind == "actions":
            self.elements(block.get("elements"), f"{pointer}/elements", ACTIONS_ELEMENTS_MAX)
        if len(self.errors) > before:
            return  # one precise message per problem is enough; slack_sdk would repeat it without a pointer
        parsed: list[Block | None] = []
        self.sdk(lambda: parsed.append(Block.parse(block)), pointer)
        if parsed and parsed[0] is None:
            self.fail(f"{pointer}/type", f"unsupported block type {kind!r}")
        elif parsed and parsed[0] is not None:
            self.sdk(parsed[0].validate_json, pointer)

    def section(self, block: dict[str, Any], pointer: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            self.fail(pointer, "must provide either text or fields")
        if text is not None:
            self.text_object(text, f"{pointer}/text", SECTION_TEXT_MAX)
        if fields is not None:
            if not isinstance(fields, list) or not fields:
                self.fail(f"{pointer}/fields", "expected a non-empty array")
            else:
                if len(fields) > SECTION_FIELDS_MAX:
                    self.fail(f"{pointer}/fields", f"no more than {SECTION_FIELDS_MAX} items allowed")
                for index, item in enumerate(fields):
                    self.text_object(item, f"{pointer}/fields/{index}", SECTION_FIELD_TEXT_MAX)
        if block.get("accessory") is not None:
            self.element(block["accessory"], f"{pointer}/accessory")

    def context(self, block: dict[str, Any], pointer: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.fail(f"{pointer}/elements", "expected a non-empty array")
            return
        if len(elements) > CONTEXT_ELEMENTS_MAX:
            self.fail(f"{pointer}/elements", f"no more than {CONTEXT_ELEMENTS_MAX} items allowed")
        for index, element in enumerate(elements):
            if isinstance(element, dict) and element.get("type") == "image":
                continue
            self.text_object(element, f"{pointer}/elements/{index}", CONTEXT_TEXT_MAX)

    def elements(self, elements: object, pointer: str, most: int) -> None:
        if not isinstance(elements, list) or not elements:
            self.fail(pointer, "expected a non-empty array")
            return
        if len(elements) > most:
            self.fail(pointer, f"no more than {most} items allowed")
        for index, element in enumerate(elements):
            self.element(element, f"{pointer}/{index}")

    def element(self, element: object, pointer: str) -> None:
        if not isinstance(element, dict):
            self.fail(pointer, "expected an object")
            return
        before = len(self.errors)
        self.unique_id(element.get("action_id"), f"{pointer}/action_id", ACTION_ID_MAX, self.action_ids, "action_id")
        if element.get("type") == "button":
            self.text_object(element.get("text"), f"{pointer}/text", BUTTON_TEXT_MAX, plain_only=True)
            self.string(element.get("value"), f"{pointer}/value", BUTTON_VALUE_MAX)
            self.string(element.get("url"), f"{pointer}/url", BUTTON_URL_MAX)
            style = element.get("style")
            if style is not None and style not in _BUTTON_STYLES:
                self.fail(f"{pointer}/style", f"must be one of {', '.join(_BUTTON_STYLES)}")
        if element.get("confirm") is not None:
            self.confirm(element["confirm"], f"{pointer}/confirm")
        if len(self.errors) > before:
            return
        parsed: list[Any] = []
        self.sdk(lambda: parsed.append(BlockElement.parse(element)), pointer)
        if parsed and parsed[0] is None:
            self.fail(f"{pointer}/type", f"unsupported element type {element.get('type')!r}")
        elif parsed and parsed[0] is not None:
            self.sdk(parsed[0].validate_json, pointer)

    def confirm(self, confirm: object, pointer: str) -> None:
        if not isinstance(confirm, dict):
            self.fail(pointer, "expected an object")
            return
        self.text_object(confirm.get("title"), f"{pointer}/title", CONFIRM_TITLE_MAX, plain_only=True)
        self.text_object(confirm.get("text"), f"{pointer}/text", CONFIRM_TEXT_MAX)
        self.text_object(confirm.get("confirm"), f"{pointer}/confirm", CONFIRM_BUTTON_MAX, plain_only=True)
        self.text_object(confirm.get("deny"), f"{pointer}/deny", CONFIRM_BUTTON_MAX, plain_only=True)

    def text_object(self, value: object, pointer: str, most: int, *, plain_only: bool = False) -> None:
        if not isinstance(value, dict):
            self.fail(pointer, "expected a text object")
            return
        allowed = ("plain_text",) if plain_only else _TEXT_TYPES
        if value.get("type") not in allowed:
            self.fail(f"{pointer}/type", f"must be one of {', '.join(allowed)}")
        text = value.get("text")
        if not isinstance(text, str):
            self.fail(f"{pointer}/text", "expected a string")
        elif not text:
            self.fail(f"{pointer}/text", "must be more than 0 characters")
        elif len(text) > most:
            self.fail(f"{pointer}/text", f"must be less than {most + 1} characters")

    def string(self, value: object, pointer: str, most: int) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            self.fail(pointer, "expected a string")
        elif len(value) > most:
            self.fail(pointer, f"must be less than {most + 1} characters")

    def unique_id(self, value: object, pointer: str, most: int, seen: set[str], name: str) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not value:
            self.fail(pointer, "expected a non-empty string")
            return
        if len(value) > most:
            self.fail(pointer, f"must be less than {most + 1} characters")
        if value in seen:
            self.fail(pointer, f"{name} {value!r} is used more than once")
        seen.add(value)
