"""Making outside text safe for Slack mrkdwn, and small formatting helpers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.domain.businesses import Business

# The escapes `escape` writes; cutting one in half leaves text Slack shows as is ("&am").
_ENTITY = re.compile(r"&(?:amp|lt|gt);")


def escape(text: str) -> str:
    """Escape `&`, `<` and `>` so that outside text cannot mention, ping or hide links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote_code(text: str, limit: int = 200) -> str:
    """Outside text shown inside `code`: escaped, without backticks, shortened."""
    cleaned = escape(text.replace("`", "'").replace("\n", " "))
    return cleaned if len(cleaned) <= limit else cleaned[: _safe_cut(cleaned, limit)] + "…"


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut; never cut inside an entity (`<@U1>`, `&amp;`)."""
    if len(text) <= limit:
        return text
    return text[: _safe_cut(text, limit - 1)] + "…"


def _safe_cut(text: str, cut: int) -> int:
    """`cut`, moved back to the start of an entity it would split: half an entity renders as garbage or a link."""
    opening = text.rfind("<", 0, cut)
    closing = text.find(">", cut)
    if opening != -1 and ">" not in text[opening:cut] and closing != -1 and "<" not in text[cut:closing]:
        cut = opening
    ampersand = text.rfind("&", max(0, cut - 4), cut)
    entity = _ENTITY.match(text, ampersand) if ampersand != -1 else None
    if entity is not None and entity.end() > cut:
        cut = ampersand
    return cut


def business(shown: Business | None, limit: int = 80) -> str:
    """A business by its name ("Le Bistrot · Paris", escaped: Partoo's text) or, unnamed, by its id in code."""
    if shown is None:
        return "_unknown_"
    if shown.named:
        return escape(shorten(shown.label, limit))
    return f"`{quote_code(shown.id, limit)}`"


def user(user_id: str) -> str:
    return f"<@{user_id}>"


def channel(channel_id: str) -> str:
    return f"<#{channel_id}>"


def usergroup(usergroup_id: str) -> str:
    return f"<!subteam^{usergroup_id}>"


def when(timestamp: float) -> str:
    """A time each reader sees in their own time zone (Slack date formatting), with a UTC fallback."""
    fallback = datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} {{time}}|{fallback}>"


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
