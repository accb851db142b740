"""Schema 0009 (2026-12-05): businesses, the names and cities conversation checks learned."""

from __future__ import annotations

from tests.upgrade_fixtures import Row, r0008


def rows(now: float) -> list[Row]:
    # The business of the earlier fixtures' alerts (a webhook's integer id, as text), a business whose id
    # Partoo spelled as a string, and one Partoo gave no name for.
    return [
        *r0008.rows(now),
        Row("businesses", "bistrot", {"id": "42", "name": "Le Bistrot", "city": "Paris", "seen_at": now - 1500.0}),
        Row(
            "businesses",
            "hex_id",
            {"id": "5f3a9c0e1d2b4a6f8e7d6c5b", "name": "Chez Marcel", "city": None, "seen_at": now - 900.0},
        ),
        Row("businesses", "unnamed", {"id": "1187", "name": None, "city": None, "seen_at": now - 300.0}),
    ]
