"""Alembic environment: migrations run inside the connection the bot hands over (see database.py)."""

from __future__ import annotations

from alembic import context

from bot.platform.models import Base

connection = context.config.attributes["connection"]
# render_as_batch lets ALTER-style migrations work on SQLite too.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
