"""Every Slack listener of the bot, attached to one Bolt app, each in a module of this package:

- `/partoo-retry`: bot.slack.command
- the Retry and "Retry all" buttons: bot.slack.clicks
- the buttons of a `/partoo-retry failed …` plan: bot.slack.plan_clicks
- Stop, on a many-message retry's progress message: bot.slack.stop_clicks
- the App Home tab: bot.slack.home
- the message shortcut "Retry Partoo messages": bot.slack.shortcut
- silences: the alert's menu, its modal, `/partoo-retry silences` and End now: bot.slack.silence_listeners

Who may retry is checked once, by one listener middleware (bot.slack.authorization) on the command and the buttons.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncApp

from bot.domain.access import AccessPolicy
from bot.platform.authz import Authorizer
from bot.retries.service import RetryService
from bot.slack import clicks, command, home, plan_clicks, shortcut, silence_listeners, stop_clicks
from bot.slack.authorization import authorization
from bot.slack.replies import AfterAck


def register(
    app: AsyncApp,
    service: RetryService,
    alert_clicks: clicks.AlertClicks,
    app_home: home.AppHome,
    authorizer: Authorizer,
    policy: AccessPolicy,
    on_error: Callable[[Exception], Awaitable[None]],
    after_ack: AfterAck,
    silencing: silence_listeners.Silencing | None = None,
) -> None:
    """Attach every listener; the app answers Slack when a listener returns (process_before_response): for
    the command and clicks that is once their request is durable; App Home visits are answered at once and
    published after (a Bolt lazy listener).

    `on_error` gets every listener's failure, from Bolt and from the App Home's publishing alike.
    """
    listing = silencing.listing if silencing is not None else None
    command.register(app, service, authorization(authorizer, policy, applies=command.asks_to_retry), after_ack, listing)
    clicks.register(app, alert_clicks, authorization(authorizer, policy), after_ack)
    plan_clicks.register(app, service, authorization(authorizer, policy), after_ack)
    stop_clicks.register(app, service, authorization(authorizer, policy), after_ack)
    home.register(app, app_home, on_error)
    shortcut.register(app, service, authorizer, policy, after_ack)
    if silencing is not None:
        silence_listeners.register(app, silencing, authorization(authorizer, policy), authorizer, policy, after_ack)
    app.error(on_error)
