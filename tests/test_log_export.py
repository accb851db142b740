"""`partoo-retry-bot log export`: an audit reads the database as it is and writes cells no spreadsheet runs."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.domain.outcomes import OutcomeKind
from bot.domain.retry_requests import BatchView, RequestView
from bot.platform.database import create_engine, migrate
from bot.retries import export
from tests.fakes import FakePartoo, FakeSlack
from tests.harness import bot_environment
from tests.upgrade_fixtures import migrate_to


async def _export(environment: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run the export the way an operator does; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "log",
        "export",
        "--since",
        "7d",
        env={"PATH": os.environ.get("PATH", ""), **environment},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _revision(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            has_table = await connection.run_sync(lambda sync: sync.dialect.has_table(sync, "alembic_version"))
            if not has_table:
                return None
            revision = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            return str(revision)
    finally:
        await engine.dispose()


async def test_export_refuses_an_older_schema_and_leaves_it_as_it_is(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, empty_database_url: str
) -> None:
    await migrate_to(empty_database_url, "0001")

    code, out, err = await _export(bot_environment(slack, partoo, empty_database_url), tmp_path)

    assert code != 0
    assert out == ""
    assert "0001" in err and "older" in err, err
    assert "Traceback" not in err
    assert await _revision(empty_database_url) == "0001"


async def test_export_refuses_a_newer_schema_and_leaves_it_as_it_is(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, database_url: str
) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    await engine.dispose()

    code, out, err = await _export(bot_environment(slack, partoo, database_url), tmp_path)

    assert code != 0
    assert out == ""
    assert "9999_from_the_future" in err
    assert await _revision(database_url) == "9999_from_the_future"


async def test_export_of_an_empty_database_creates_no_schema(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, postgres_url: str
) -> None:
    code, out, err = await _export(bot_environment(slack, partoo, postgres_url), tmp_path)

    assert code != 0
    assert out == ""
    assert "no partoo-retry schema" in err, err
    assert await _revision(postgres_url) is None


async def test_export_of_a_missing_sqlite_file_creates_no_file(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo
) -> None:
    missing = tmp_path / "nowhere" / "partoo-retry.db"
    (tmp_path / "nowhere").mkdir()

    code, out, err = await _export(bot_environment(slack, partoo, f"sqlite:///{missing}"), tmp_path)

    assert code != 0
    assert out == ""
    assert "cannot read its database" in err, err
    assert list((tmp_path / "nowhere").iterdir()) == []


async def test_export_reads_a_current_database_without_writing_to_it(
    tmp_path: Path, slack: FakeSlack, partoo: FakePartoo, database_url: str
) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    await engine.dispose()

    code, out, err = await _export(bot_environment(slack, partoo, database_url), tmp_path)

    assert code == 0, err
    assert out.strip() == ",".join(export.COLUMNS)


# -- CSV cells ---------------------------------------------------------------------------------------------


def _row(detail: str, requested_by: str = "U123") -> tuple[RequestView, BatchView]:
    request = RequestView(
        id=1,
        batch_id=1,
        message_id=4567,
        requested_by=requested_by,
        requested_at=1_700_000_000.0,
        state="done",
        attempts=1,
        first_attempt_at=1_700_000_000.0,
        in_flight_since=None,
        outcome=OutcomeKind.REFUSED,
        http_status=400,
        detail=detail,
        finished_at=1_700_000_001.0,
    )
    batch = BatchView(
        id=1,
        source="command",
        requested_by=requested_by,
        channel_id="C123",
        response_url=None,
        total=1,
        skipped=(),
        created_at=1_700_000_000.0,
        correlation_id="c1",
        root_channel=None,
        root_ts=None,
        uses_response_url=False,
        alert_message_id=None,
        digest_id=None,
        progress_shown=0,
        progress_shown_at=None,
        finished_at=None,
        summarized_at=None,
    )
    return request, batch


@pytest.mark.parametrize(
    "detail",
    ['=HYPERLINK("https://evil.example","click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"],
)
def test_csv_cells_never_start_a_formula(detail: str) -> None:
    out = io.StringIO()
    export.write([_row(detail, requested_by="@here")], "csv", out)

    (record,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert record["detail"] == "'" + detail
    assert record["requested_by"] == "'@here"
    assert record["message_id"] == "4567"
    assert record["requested_at"].startswith("2023-")


def test_json_lines_keep_the_text_as_it_was() -> None:
    out = io.StringIO()
    export.write([_row("=1+2")], "json", out)
    assert json.loads(out.getvalue())["detail"] == "=1+2"
