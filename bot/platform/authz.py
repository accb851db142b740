"""Who may retry: RETRY_ALLOWED_USERS, RETRY_ALLOWED_USERGROUPS and RETRY_ALLOWED_CHANNELS."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.access import AccessPolicy
from bot.platform.slack import classify

log = logging.getLogger(__name__)

# Membership changes rarely; a short cache keeps a burst of clicks from hammering usergroups.users.list.
MEMBERSHIP_CACHE_SECONDS = 60.0


class Verdict(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    # A user group could not be looked up: refuse, since retrying messages customers is not undoable.
    UNVERIFIABLE = "unverifiable"


class Authorizer:
    """Checks a Slack user and channel against the access policy."""

    def __init__(
        self,
        policy: AccessPolicy,
        client: AsyncWebClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.client = client
        self.clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    async def check(self, user_id: str, channel_id: str) -> Verdict:
        if self.policy.channels and channel_id not in self.policy.channels:
            return Verdict.DENIED
        if not self.policy.restricts_people or user_id in self.policy.users:
            return Verdict.ALLOWED
        unverifiable = False
        for group_id in sorted(self.policy.usergroups):
            members = await self._group_members(group_id)
            if members is None:
                unverifiable = True
            elif user_id in members:
                return Verdict.ALLOWED
        return Verdict.UNVERIFIABLE if unverifiable else Verdict.DENIED

    async def _group_members(self, group_id: str) -> frozenset[str] | None:
        cached = self._members.get(group_id)
        if cached and self.clock() - cached[0] < MEMBERSHIP_CACHE_SECONDS:
            return cached[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            log.warning("could not list members of user group %s: %s", group_id, classify(error).error)
            return None
        except Exception as error:
            log.warning("could not list members of user group %s: %s", group_id, type(error).__name__)
            return None
        members = frozenset(response.get("users") or [])
        self._members[group_id] = (self.clock(), members)
        return members
