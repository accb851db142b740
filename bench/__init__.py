"""Benchmarks of partoo-retry against fake Slack and Partoo, beside a naive bot: `python -m bench`."""
