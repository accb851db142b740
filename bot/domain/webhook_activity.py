"""How Partoo's webhooks are arriving, as the App Home, /readyz and the silence warning show it (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebhookActivity:
    """When the last signed Partoo delivery arrived (None: none yet) and how many arrived in the last hour."""

    last_at: float | None
    last_hour: int


# The two notices the silence watch posts in the alert channel.
SILENT = "silent"
BACK = "back"
