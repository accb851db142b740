"""Who may retry, checked in one place: a Bolt listener middleware on the command and on both buttons.

A refused request never reaches its listener, so nothing is queued and Partoo is never called. The
policy itself (RETRY_ALLOWED_USERS, _USERGROUPS, _CHANNELS) is applied by bot.platform.authz.Authorizer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_bolt.response import BoltResponse

from bot.domain.access import AccessPolicy
from bot.platform.authz import Authorizer, Verdict
from bot.retries import messages
from bot.slack.replies import ephemeral

Middleware = Callable[..., Awaitable[BoltResponse | None]]


def asker(body: dict[str, Any]) -> tuple[str, str]:
    """(user id, channel id) of a slash command or a click on a message's button."""
    if "command" in body:
        return str(body.get("user_id", "")), str(body.get("channel_id", ""))
    user_id = str((body.get("user") or {}).get("id", ""))
    channel_id = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", ""))
    return user_id, channel_id


def authorization(
    authorizer: Authorizer, policy: AccessPolicy, *, applies: Callable[[dict[str, Any]], bool] = lambda body: True
) -> Middleware:
    """A listener middleware that lets through only who may retry where; `applies` exempts read-only asks."""

    async def authorize(
        body: dict[str, Any], ack: AsyncAck, respond: AsyncRespond, next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        if not applies(body):
            await next_()
            return None
        verdict = await authorizer.check(*asker(body))
        if verdict is Verdict.ALLOWED:
            await next_()
            return None
        refusal = ephemeral(
            messages.not_allowed(policy) if verdict is Verdict.DENIED else messages.authorization_unavailable()
        )
        if "command" in body:
            return await ack(**refusal)
        # A click's HTTP answer is not shown to anyone: the refusal goes through its response_url.
        answer = await ack()
        await respond(**refusal, replace_original=False)
        return answer

    return authorize
