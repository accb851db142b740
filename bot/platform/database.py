"""Opening the database: URL translation, SQLite tuning, schema migrations on start, read-only access.

Alembic (with Mako, and Pygments when installed) costs several MiB of memory for as long as the process
lives, and most starts find the schema already at this version's head: it is imported only when a
migration has to run, or when `check` or `log export` asks.

Errors, from the general to the particular:

    SchemaError                 the schema is not the one this version of the code reads and writes
    ├── SchemaTooNewError       migrated by a newer version (never downgraded: run that version)
    ├── SchemaNotCurrentError   empty or older (the bot migrates it on start; a read-only tool refuses)
    └── SchemaUpgradeError      a SQLite upgrade stopped before changing anything (see sqlite_upgrade.py)
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.platform import sqlite_driver, sqlite_upgrade

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every replica that migrates one PostgreSQL database.
_MIGRATION_LOCK_KEY = 0x5A2700
# How long a SQLite write waits for another writer. Writes take milliseconds; a lock held longer means
# something is wrong, and a command is better refused clearly than left to hit Slack's 3-second deadline.
SQLITE_BUSY_SECONDS = 1.0
# How long a transaction may wait for this process's SQLite connection before it is refused.
SQLITE_QUEUE_SECONDS = 1.5
# PostgreSQL connections this process keeps open, and never more: a burst of commands queues for the pool
# instead of opening and closing overflow connections (a connect, TLS set-up and a cold statement cache each;
# `bench.profile --path ack --database postgresql` found about 14 % of the loop's busy time in it). Replicas
# multiply it: 4 replicas take 80 of PostgreSQL's default 100 connections.
POSTGRES_POOL_SIZE = 20


class SchemaError(RuntimeError):
    """The database schema is not the one this version knows; the message says what to do."""


class SchemaTooNewError(SchemaError):
    """The database was migrated by a newer version of the bot than this one."""


class SchemaNotCurrentError(SchemaError):
    """The database is empty or at an older revision, and the caller may not migrate it."""


class SchemaUpgradeError(SchemaError):
    """A SQLite upgrade could not be done safely (no copy aside, or rows it would orphan); nothing was changed."""


def async_database_url(url: str) -> str:
    """Translate the user's DATABASE_URL into the async driver URL SQLAlchemy needs."""
    if url.startswith("postgres://"):  # Heroku's spelling
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def display_database_url(url: str) -> str:
    """The URL without its password, for logs and `check`."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(url: str) -> AsyncEngine:
    """An async engine for DATABASE_URL; SQLite gets WAL and immediate write locks."""
    async_url = async_database_url(url)
    if async_url.startswith("sqlite"):
        # SQLite has one writer at a time. One shared connection makes this process's transactions queue
        # in order (fair, in asyncio) instead of racing in SQLite's busy-wait loop, where some writers
        # can starve for seconds under load. Other processes on the same file still use busy_timeout.
        arguments, options = SQLiteDialect_aiosqlite().create_connect_args(make_url(async_url))
        options["timeout"] = SQLITE_BUSY_SECONDS
        engine = create_async_engine(
            async_url,
            # One hand-off to the SQLite thread per statement (bot/platform/sqlite_driver.py).
            async_creator=lambda: sqlite_driver.connect(*arguments, **options),
            pool_size=1,
            max_overflow=0,
            pool_timeout=SQLITE_QUEUE_SECONDS,
        )
        _tune_sqlite(engine)
        return engine
    return create_async_engine(async_url, pool_pre_ping=True, pool_size=POSTGRES_POOL_SIZE, max_overflow=0)


def create_read_only_engine(url: str) -> AsyncEngine:
    """An engine that cannot change the database: no file is created, no table written, nothing migrated.

    SQLite opens the file read-only (a missing file is an error, not a new empty database); PostgreSQL
    sessions start with default_transaction_read_only, so any write fails instead of happening.
    """
    parsed = make_url(async_database_url(url))
    if parsed.drivername.startswith("sqlite"):
        path = Path(parsed.database or "").resolve()
        read_only = parsed.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"})
        return create_async_engine(read_only, poolclass=NullPool)
    return create_async_engine(
        parsed, poolclass=NullPool, connect_args={"server_settings": {"default_transaction_read_only": "on"}}
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers work while one writer writes; several processes may share the file.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads then writes can fail with "database is locked" when
        # another writer got in between; taking the write lock up front makes writers queue instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def _is_known(scripts: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if connection.dialect.name == "postgresql":
        # Replicas starting together must not run the same migration twice.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    current = MigrationContext.configure(connection).get_current_revision()
    scripts = ScriptDirectory(str(MIGRATIONS))
    if current is not None and not _is_known(scripts, current):
        raise SchemaTooNewError(
            f"The database schema is at revision {current}, which this version of partoo-retry does not "
            f"know (it knows up to {_head_revision()}). It was upgraded by a newer version: run that "
            "version, or restore a backup."
        )
    if current != _head_revision():
        log.info("migrating database schema from %s to %s", current or "empty", _head_revision())
        command.upgrade(_alembic_config(connection), "head")


def _known_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _stored_revision(connection: Connection) -> str | None:
    """The database's revision read with plain SQL (what Alembic would read), or None when unsure."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revisions = [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
    return revisions[0] if len(revisions) == 1 else None


_ASSIGNMENT = re.compile(r'^(revision|down_revision)\s*=\s*(?:"([^"]*)"|None)\s*$', re.MULTILINE)


def _head_on_disk() -> str | None:
    """This version's head revision read from the migration files without Alembic; None unless one linear head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = {name: value for name, value in _ASSIGNMENT.findall(script.read_text(encoding="utf-8"))}
        if "revision" not in found:
            continue
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to this version's head, or raise SchemaTooNewError."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_stored_revision)
    if current is not None and current == _head_on_disk():
        return  # already at head: the common start, done without importing Alembic
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
        return
    async with engine.connect() as connection:
        await connection.run_sync(_upgrade_sqlite, current)


def _upgrade_sqlite(connection: Connection, current: str | None) -> None:
    """SQLite's upgrade: a copy aside unless the database is new, then foreign keys off for the rebuilds."""
    try:
        if current is not None:
            # Read again by Alembic inside the upgrade's transaction; another process may migrate in between,
            # and then this copy is simply the last one before that process's migration.
            sqlite_upgrade.copy_aside(connection, current)
        sqlite_upgrade.upgrade_with_foreign_keys_off(connection, _upgrade)
    except sqlite_upgrade.UpgradeError as error:
        raise SchemaUpgradeError(str(error)) from error


async def require_current_schema(engine: AsyncEngine) -> None:
    """Raise a SchemaError unless the schema is exactly this version's head; reads only."""
    from alembic.script import ScriptDirectory

    current, head = await schema_status(engine)
    if current == head:
        return
    if current is None:
        raise SchemaNotCurrentError(
            "The database holds no partoo-retry schema (empty, or not the bot's database): check DATABASE_URL."
        )
    if not _is_known(ScriptDirectory(str(MIGRATIONS)), current):
        raise SchemaTooNewError(
            f"The database schema is at revision {current}, which this version of partoo-retry does not "
            f"know (it knows up to {head}). It was upgraded by a newer version: use that version."
        )
    raise SchemaNotCurrentError(
        f"The database schema is at revision {current}, older than this version's {head}. Start the bot "
        "once (it migrates on start), or use the version that wrote it."
    )


async def schema_status(engine: AsyncEngine) -> tuple[str | None, str]:
    """(the database's revision, this code's head revision)."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_known_revision)
    return current, _head_revision()
