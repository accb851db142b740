"""`app_manifest.yaml` against the code, so that the Slack app and the bot cannot drift apart.

The app is built (never started) with the Bolt registration methods wrapped, so the test sees every
command and event the bot listens to whichever module registers it. Web API calls are found by reading
the syntax tree of `bot/` (comments and docstrings do not count), and mapped to scopes by a table.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from re import Pattern
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.routing import Route

import bot
from bot.app import create_app
from bot.config import load_settings
from bot.domain.commands import COMMAND
from bot.retries.shortcut_messages import SHORTCUT_CALLBACK_ID

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = ROOT / "app_manifest.yaml"
BOT_SOURCES = Path(bot.__file__).resolve().parent

# Bot scopes each Web API method needs (https://api.slack.com/methods). A method the code calls that is
# missing here fails the test: look its scopes up and add it.
SCOPES_OF_METHOD: dict[str, frozenset[str]] = {
    "chat_postMessage": frozenset({"chat:write"}),
    "chat_update": frozenset({"chat:write"}),
    "chat_postEphemeral": frozenset({"chat:write"}),
    "chat_getPermalink": frozenset(),
    "usergroups_users_list": frozenset({"usergroups:read"}),
    "views_publish": frozenset(),
    "views_open": frozenset(),
    # `check` describes the alert and log channels, public (channels:read) or private (groups:read).
    "conversations_info": frozenset({"channels:read", "groups:read"}),
    "auth_test": frozenset(),
    # Called with the app-level token, whose scope (connections:write) is not a bot scope.
    "apps_connections_open": frozenset(),
}
# Bot scopes each Events API event needs to be delivered.
SCOPES_OF_EVENT: dict[str, frozenset[str]] = {
    "app_home_opened": frozenset(),
}
# Scopes no method table can show: `commands` for slash commands and shortcuts; `chat:write.public` so that posts reach
# public channels the bot was never invited to (a command's channel, SLACK_ALERT_CHANNEL, SLACK_LOG_CHANNEL).
COMMANDS_SCOPE = "commands"
PUBLIC_POSTING_SCOPE = "chat:write.public"

# Bolt registration methods, by what they register. Interactive ones need interactivity enabled.
EVENT_METHODS = ("event",)
MESSAGE_METHODS = ("message",)
COMMAND_METHODS = ("command",)
SHORTCUT_METHODS = ("shortcut", "global_shortcut", "message_shortcut")
INTERACTIVE_METHODS = (
    "action",
    "block_action",
    "attachment_action",
    "dialog_submission",
    "dialog_cancellation",
    "view",
    "view_submission",
    "view_closed",
    "options",
    "block_suggestion",
    "dialog_suggestion",
    *SHORTCUT_METHODS,
)
RECORDED_METHODS = (*EVENT_METHODS, *MESSAGE_METHODS, *COMMAND_METHODS, *INTERACTIVE_METHODS)


@dataclass
class Registrations:
    """What the bot registered on its Bolt app: (method name, first argument) in call order."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    def of(self, *methods: str) -> list[Any]:
        return [argument for method, argument in self.calls if method in methods]


@dataclass(frozen=True)
class BuiltApp:
    app: Starlette
    registrations: Registrations


def _recording(method: str, original: Callable[..., Any], registrations: Registrations) -> Callable[..., Any]:
    signature = inspect.signature(original)

    def register(self: AsyncApp, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        first = list(bound.arguments.values())[1]  # the argument after self: event, command, constraints
        registrations.calls.append((method, first))
        return original(self, *args, **kwargs)

    return register


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltApp:
    """The Starlette app built from a minimal configuration, with every Bolt registration recorded."""
    database = tmp_path_factory.mktemp("manifest") / "unused.db"
    environment = {
        "SLACK_BOT_TOKEN": "xoxb-manifest-test",
        "SLACK_SIGNING_SECRET": "manifest-test-secret",
        "PARTOO_API_KEY": "manifest-test-key",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    registrations = Registrations()
    with pytest.MonkeyPatch.context() as patch:
        for method in RECORDED_METHODS:
            patch.setattr(AsyncApp, method, _recording(method, getattr(AsyncApp, method), registrations))
        app = create_app(load_settings(environment))
    return BuiltApp(app, registrations)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST_PATH.read_text())
    assert isinstance(loaded, dict), "app_manifest.yaml must be a mapping"
    return loaded


def request_urls(manifest: dict[str, Any]) -> dict[str, str]:
    """Every URL Slack sends requests to, by where it is in the manifest."""
    urls = {
        f"slash command {command['command']}": command["url"]
        for command in manifest["features"].get("slash_commands", [])
    }
    settings = manifest["settings"]
    for section in ("interactivity", "event_subscriptions"):
        for key in ("request_url", "message_menu_options_url"):
            if key in settings.get(section, {}):
                urls[f"settings.{section}.{key}"] = settings[section][key]
    return urls


def manifest_events(manifest: dict[str, Any]) -> set[str]:
    return set(manifest["settings"].get("event_subscriptions", {}).get("bot_events", []))


def registered_events(registrations: Registrations) -> set[str]:
    events = set()
    for constraint in registrations.of(*EVENT_METHODS):
        event_type = constraint.get("type") if isinstance(constraint, dict) else constraint
        if not isinstance(event_type, str):
            kind = "a regular expression" if isinstance(event_type, Pattern) else repr(event_type)
            pytest.fail(f"app.event({kind}): cannot tell which events to subscribe to; name them")
        events.add(event_type)
    return events


def web_api_methods() -> set[str]:
    """Names of the Web API methods of slack_sdk's client, e.g. chat_postMessage."""
    return {
        name
        for name, member in vars(AsyncWebClient).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }


def called_methods(sources: Path = BOT_SOURCES) -> dict[str, set[str]]:
    """Web API methods named in the code under `sources` (attributes or exact strings), and where.

    Both spellings count: `client.chat_update(...)`, `getattr(client, "chat_update")` and
    `api_call("chat.update")`.
    """
    methods = web_api_methods()
    dotted = {name.replace("_", "."): name for name in methods}
    found: dict[str, set[str]] = {}
    for path in sorted(sources.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            name: str | None = None
            if isinstance(node, ast.Attribute) and node.attr in methods:
                name = node.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value if node.value in methods else dotted.get(node.value)
            if name is not None:
                found.setdefault(name, set()).add(str(path.relative_to(sources.parent)))
    return found


def uses_commands_scope(registrations: Registrations) -> bool:
    """Slash commands and shortcuts (global and message) both need the `commands` scope."""
    return bool(registrations.of(*COMMAND_METHODS, *SHORTCUT_METHODS))


def required_scopes(methods: set[str], events: set[str], commands: bool) -> set[str]:
    unknown = sorted(methods - SCOPES_OF_METHOD.keys())
    assert not unknown, f"add the bot scopes of {unknown} to SCOPES_OF_METHOD"
    unknown = sorted(events - SCOPES_OF_EVENT.keys())
    assert not unknown, f"add the bot scopes of events {unknown} to SCOPES_OF_EVENT"
    scopes: set[str] = set()
    for method in methods:
        scopes |= SCOPES_OF_METHOD[method]
    for event in events:
        scopes |= SCOPES_OF_EVENT[event]
    if commands:
        scopes.add(COMMANDS_SCOPE)
    if "chat:write" in scopes:
        scopes.add(PUBLIC_POSTING_SCOPE)
    return scopes


# -- the manifest itself ---------------------------------------------------------------------------------


def test_manifest_is_a_version_2_manifest_for_http_mode(manifest: dict[str, Any]) -> None:
    assert manifest["_metadata"]["major_version"] == 2
    assert set(manifest) <= {"_metadata", "display_information", "features", "oauth_config", "settings"}
    display = manifest["display_information"]
    assert 1 <= len(display["name"]) <= 35
    assert 1 <= len(display["description"]) <= 140
    assert display["background_color"].startswith("#")
    assert len(display["background_color"]) in (4, 7)
    int(display["background_color"][1:], 16)
    assert 1 <= len(manifest["features"]["bot_user"]["display_name"]) <= 80
    for command in manifest["features"]["slash_commands"]:
        assert set(command) <= {"command", "url", "description", "usage_hint", "should_escape"}
        assert command["command"].startswith("/")
        assert 2 <= len(command["command"]) <= 32
        assert 1 <= len(command["description"]) <= 2000
        assert 1 <= len(command.get("usage_hint", "x")) <= 1000
    for shortcut in manifest["features"].get("shortcuts", []):
        assert set(shortcut) == {"name", "type", "callback_id", "description"}, shortcut
        assert shortcut["type"] in ("global", "message")
        assert 1 <= len(shortcut["name"]) <= 24
        assert 1 <= len(shortcut["callback_id"]) <= 255
        assert 1 <= len(shortcut["description"]) <= 150
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False, "HTTP mode: Slack must POST to the request URLs"
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    urls = request_urls(manifest)
    assert urls
    # One public origin: the bot serves every Slack request on the same host.
    assert len({urlsplit(url)[:2] for url in urls.values()}) == 1, urls
    for where, url in urls.items():
        assert urlsplit(url).scheme == "https", f"{where}: Slack only calls https URLs"


def test_the_usage_hint_names_every_subcommand(manifest: dict[str, Any]) -> None:
    (command,) = manifest["features"]["slash_commands"]
    for word in ("status", "log", "help"):
        assert word in command["usage_hint"].split(), command["usage_hint"]


# -- against the code ------------------------------------------------------------------------------------


def test_the_slash_command_is_the_one_the_bot_handles(manifest: dict[str, Any], built: BuiltApp) -> None:
    declared = [command["command"] for command in manifest["features"]["slash_commands"]]
    assert declared == [COMMAND]
    assert set(built.registrations.of(*COMMAND_METHODS)) == set(declared)


def test_every_request_url_is_a_post_route_of_the_app(manifest: dict[str, Any], built: BuiltApp) -> None:
    routes = {route.path: route.methods or set() for route in built.app.routes if isinstance(route, Route)}
    for where, url in request_urls(manifest).items():
        path = urlsplit(url).path
        assert path in routes, f"{where} {url}: the app has no route {path} (routes: {sorted(routes)})"
        assert "POST" in routes[path], f"{where}: {path} does not accept POST"


def test_bot_events_are_the_events_the_app_listens_to(manifest: dict[str, Any], built: BuiltApp) -> None:
    assert not built.registrations.of(*MESSAGE_METHODS), (
        "app.message() needs message.channels / message.groups / message.im events and their history "
        "scopes in the manifest; extend this test"
    )
    assert manifest_events(manifest) == registered_events(built.registrations)


def test_the_home_tab_is_enabled_exactly_when_the_bot_publishes_it(manifest: dict[str, Any], built: BuiltApp) -> None:
    home_tab = manifest["features"]["app_home"]["home_tab_enabled"]
    assert home_tab == ("app_home_opened" in registered_events(built.registrations))
    assert home_tab == ("views_publish" in called_methods())


def test_interactivity_is_enabled_when_the_bot_has_interactive_listeners(
    manifest: dict[str, Any], built: BuiltApp
) -> None:
    interactive = built.registrations.of(*INTERACTIVE_METHODS)
    if interactive:
        assert manifest["settings"]["interactivity"]["is_enabled"] is True, interactive
    declared = {shortcut["callback_id"] for shortcut in manifest["features"].get("shortcuts", [])}
    shortcuts = built.registrations.of(*SHORTCUT_METHODS)
    registered = {s.get("callback_id") if isinstance(s, dict) else s for s in shortcuts}
    assert registered == declared


def test_the_message_shortcut_is_declared_as_the_bot_handles_it(manifest: dict[str, Any], built: BuiltApp) -> None:
    declared = {shortcut["callback_id"]: shortcut for shortcut in manifest["features"].get("shortcuts", [])}
    assert SHORTCUT_CALLBACK_ID in declared
    shortcut = declared[SHORTCUT_CALLBACK_ID]
    assert shortcut["type"] == "message"
    assert shortcut["name"] == "Retry Partoo messages"
    assert SHORTCUT_CALLBACK_ID in built.registrations.of("message_shortcut")
    # A message shortcut opens a modal (views.open, no extra scope) and needs `commands`.
    assert "views_open" in called_methods()
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]


def test_the_scan_finds_the_calls_it_must_find() -> None:
    # Guards the scanner itself: the bot certainly posts messages, so finding nothing means it is broken.
    assert "chat_postMessage" in called_methods()


def test_called_methods_reads_code_not_comments(tmp_path: Path) -> None:
    package = tmp_path / "sample"
    package.mkdir()
    (package / "module.py").write_text(
        '"""Posts with chat.postMessage."""\n'
        "# client.views_open(...) is not called\n"
        "async def go(client):\n"
        "    await client.chat_update(channel='C', ts='1')\n"
        "    await client.api_call('usergroups.users.list')\n"
        "    return getattr(client, 'views_publish')\n"
    )
    assert set(called_methods(package)) == {"chat_update", "usergroups_users_list", "views_publish"}


def test_scopes_cover_every_web_api_method_the_code_calls(manifest: dict[str, Any], built: BuiltApp) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    calls = called_methods()
    for method, files in sorted(calls.items()):
        missing = SCOPES_OF_METHOD.get(method, frozenset()) - scopes
        assert not missing, f"{method} (called in {sorted(files)}) needs {sorted(missing)}"
    needed = required_scopes(
        set(calls), registered_events(built.registrations), uses_commands_scope(built.registrations)
    )
    assert needed <= scopes, f"missing scopes: {sorted(needed - scopes)}"


def test_no_scope_is_requested_that_the_code_does_not_need(manifest: dict[str, Any], built: BuiltApp) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes)), "a scope is listed twice"
    needed = required_scopes(
        set(called_methods()),
        registered_events(built.registrations),
        uses_commands_scope(built.registrations),
    )
    unused = set(scopes) - needed
    assert not unused, f"scopes the code does not use (each one makes installing harder): {sorted(unused)}"
