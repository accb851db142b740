"""A SQLite schema upgrade done the way SQLite documents it: a copy aside first, foreign keys off, checked after.

SQLite cannot alter most of a table in place, so Alembic's batch mode rebuilds it: a new table, the rows
copied, the old table dropped, the new one renamed. With foreign keys enforced, dropping a table that other
rows refer to (retry_batches, under retry_requests) fails, and the bot would never start on a database that
holds any history. SQLite's procedure for such changes ("Making Other Kinds Of Table Schema Changes", 12
steps, https://www.sqlite.org/lang_altertable.html) is: foreign keys off, outside any transaction (the pragma
is a no-op inside one); one transaction for the whole change; `PRAGMA foreign_key_check` before committing;
foreign keys back on. A check that finds a row the upgrade orphaned rolls everything back.

Before the first pending migration the file is copied aside with `VACUUM INTO` (a consistent snapshot, taken
while other processes may still read it), named after the revision it holds: `partoo-retry.db.schema-0002.bak`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

log = logging.getLogger(__name__)

_Violation = tuple[str, int | None, str]  # (table, rowid, referred table)


class UpgradeError(RuntimeError):
    """The upgrade could not be done safely; the database was left as it was before it."""


def backup_path(database: Path, revision: str) -> Path:
    """Where the copy of `database` taken at `revision` goes: beside it, named after the revision."""
    return database.with_name(f"{database.name}.schema-{revision}.bak")


def copy_aside(connection: Connection, revision: str) -> Path | None:
    """Copy the database file aside before it is migrated from `revision`; None for an in-memory database.

    Runs outside any transaction (VACUUM cannot run in one). The copy is written under a temporary name and
    renamed, so a crash midway never leaves a half copy under the name an operator would restore from.
    """
    _require_no_transaction(connection)
    database = _main_file(connection)
    if database is None:
        return None
    target = backup_path(database, revision)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)  # left by a crash during an earlier copy
    try:
        _driver_execute(connection, "VACUUM INTO ?", (str(partial),))
        os.replace(partial, target)
    except Exception as error:
        partial.unlink(missing_ok=True)
        raise UpgradeError(
            f"partoo-retry did not migrate {database}: copying it aside to {target} first failed "
            f"({type(error).__name__}: {error}). Free some disk space or make the directory writable, then start "
            "again; the database was not changed."
        ) from error
    log.info("copied the database at schema %s aside to %s before migrating it", revision, target)
    return target


def upgrade_with_foreign_keys_off(connection: Connection, upgrade: Callable[[Connection], None]) -> None:
    """Run `upgrade` in one transaction with foreign keys off, and commit only if it orphaned no row."""
    _require_no_transaction(connection)
    _driver_execute(connection, "PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            # Rows the database already held orphaned (from a version that did not enforce foreign keys)
            # are not this upgrade's doing: refusing to start over them would keep the bot down for good.
            already = _violations(connection)
            upgrade(connection)
            orphaned = sorted(set(_violations(connection)) - set(already), key=repr)
            if orphaned:
                raise UpgradeError(
                    "partoo-retry did not migrate the database: the upgrade would leave rows pointing at rows "
                    f"that no longer exist {_describe(orphaned)}. Nothing was changed; please report this "
                    "with the bot's version."
                )
        if already:
            log.warning("the database holds rows that point at missing rows: %s", _describe(already))
    finally:
        _driver_execute(connection, "PRAGMA foreign_keys=ON")


def _violations(connection: Connection) -> list[_Violation]:
    rows = _driver_execute(connection, "PRAGMA foreign_key_check")
    return [(str(row[0]), row[1], str(row[2])) for row in rows]


def _describe(violations: list[_Violation], limit: int = 5) -> str:
    shown = ", ".join(f"{table} row {rowid} -> {parent}" for table, rowid, parent in violations[:limit])
    more = f" and {len(violations) - limit} more" if len(violations) > limit else ""
    return f"({shown}{more})"


def _main_file(connection: Connection) -> Path | None:
    # SQLite says where the main database lives, whatever spelling the URL used; "" for memory or temp.
    for _seq, name, file in _driver_execute(connection, "PRAGMA database_list"):
        if name == "main" and file:
            return Path(file)
    return None


def _require_no_transaction(connection: Connection) -> None:
    # Both pragmas and VACUUM are silently ignored or refused inside a transaction: a caller's mistake.
    if connection.in_transaction():
        raise RuntimeError("this must run outside a transaction")


def _driver_execute(connection: Connection, sql: str, parameters: tuple[Any, ...] = ()) -> list[Any]:
    """Run `sql` on the driver's connection directly: through SQLAlchemy it would first begin a transaction."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, parameters)
        return list(cursor.fetchall() if cursor.description else [])
    finally:
        cursor.close()
