"""Every Slack listener of the bot, attached to one Bolt app. Each lives with its feature:

- `/partoo-retry`: bot.retries.command_listener
- the Retry and "Retry all" buttons: bot.alerts.click
- the App Home tab: bot.retries.home
- the message shortcut "Retry Partoo messages": bot.retries.shortcut

Who may retry is checked once, by one listener middleware (bot.authorization) on the command and the buttons.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncApp

from bot.alerts import click
from bot.authorization import authorization
from bot.domain.access import AccessPolicy
from bot.platform.authz import Authorizer
from bot.retries import command_listener, home, shortcut
from bot.retries.service import RetryService


def register(
    app: AsyncApp,
    service: RetryService,
    clicks: click.AlertClicks,
    app_home: home.AppHome,
    authorizer: Authorizer,
    policy: AccessPolicy,
    on_error: Callable[[Exception], Awaitable[None]],
) -> None:
    """Attach every listener; the app answers Slack when a listener returns (process_before_response), or,
    for clicks and App Home visits, once their ack function did (Bolt lazy listeners).

    `on_error` gets every listener's failure, from Bolt and from the App Home's publishing alike.
    """
    command_listener.register(app, service, authorization(authorizer, policy, applies=command_listener.asks_to_retry))
    click.register(app, clicks, authorization(authorizer, policy), on_error)
    home.register(app, app_home, on_error)
    shortcut.register(app, service, authorizer, policy)
    app.error(on_error)
