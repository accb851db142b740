"""Who may retry: users, user groups and channels (empty means no restriction)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class AccessPolicy:
    """Who may retry; an empty list means no restriction on that dimension."""

    users: frozenset[str] = frozenset()
    usergroups: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    @property
    def restricts_people(self) -> bool:
        return bool(self.users or self.usergroups)


def alert_channels_refused(
    policy: AccessPolicy, alert_channel: str | None, route_channels: Iterable[str]
) -> list[tuple[str, str]]:
    """(setting, channel) of every channel alerts go to where RETRY_ALLOWED_CHANNELS refuses every click.

    A Retry button is authorized by the channel it was clicked in, which is the alert's: an alert channel left
    out of the list gets buttons that nobody can ever use.
    """
    if not policy.channels:
        return []
    alerted = [("SLACK_ALERT_CHANNEL", alert_channel)] if alert_channel else []
    alerted += [("ALERT_ROUTES", channel) for channel in sorted(set(route_channels))]
    return [(setting, channel) for setting, channel in alerted if channel not in policy.channels]


def refused_buttons(setting: str, channel: str) -> tuple[str, str]:
    """(what is wrong, how to fix it) for an alert channel RETRY_ALLOWED_CHANNELS leaves out: the start-up log's
    warning and `check`'s line say the same."""
    return (
        f"{channel} ({setting}) is not in RETRY_ALLOWED_CHANNELS: every Retry and Retry all button posted there "
        "will be refused",
        f"add {channel} to RETRY_ALLOWED_CHANNELS",
    )
