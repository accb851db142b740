"""Who may retry: users, user groups and channels (empty means no restriction)."""

from __future__ import annotations

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
