"""Slack listeners: the thin layer above both features (verify, parse, ask, answer; never decide)."""
