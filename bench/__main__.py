"""`python -m bench`: run every benchmark and write docs/benchmarks.md (see that file for what each measures)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench import ack, bulk, bulk_plan, flood, memory, report, webhooks
from bench.common import REPO, as_jsonable, postgres_available, say

ALL = ("ack", "webhooks", "bulk", "flood", "memory")
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run partoo-retry's benchmarks against fake Slack and Partoo on loopback, beside a naive bot.",
    )
    parser.add_argument(
        "--only",
        default=",".join(ALL),
        help=f"comma-separated benchmarks to run, of {', '.join(ALL)} (default: all)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL runs")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"the Markdown file to write (default: {DEFAULT_OUTPUT.relative_to(REPO)} for a full run, none otherwise)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    chosen = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}", file=sys.stderr)
        return 2
    full = set(chosen) == set(ALL)
    output = arguments.output or (DEFAULT_OUTPUT if full else None)

    postgres_note = "skipped with --no-postgres"
    postgres = not arguments.no_postgres
    if postgres:
        problem = postgres_available()
        if problem:
            postgres, postgres_note = False, f"no usable server on 127.0.0.1:5432 ({problem})"
            say(f"PostgreSQL runs skipped: {postgres_note}")

    command = "python -m bench" + (
        "" if argv is None and len(sys.argv) == 1 else " " + shlex.join(sys.argv[1:] if argv is None else argv)
    )
    started_at, began, load_before = report.started_now(), time.perf_counter(), report.load_average()
    say(f"benchmarks: {', '.join(chosen)}; PostgreSQL {'on' if postgres else 'off'}")
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="partoo-bench-") as directory:
        workdir = Path(directory)
        if "ack" in chosen:
            results["ack"] = ack.run(workdir, postgres=postgres)
        if "webhooks" in chosen:
            results["webhooks"] = webhooks.run(workdir, postgres=postgres)
        if "bulk" in chosen:
            results["bulk"] = bulk.run(workdir, postgres=postgres)
            results["bulk_plan"] = bulk_plan.run(workdir, postgres=postgres)
        if "flood" in chosen:
            results["flood"] = flood.run(workdir, postgres=postgres)
        if "memory" in chosen:
            results["memory"], results["starts"] = memory.run(workdir)
    seconds = time.perf_counter() - began
    say(f"done in {seconds / 60:.1f} minutes")

    if arguments.json:
        arguments.json.write_text(json.dumps(as_jsonable(results), indent=2))
        say(f"raw figures written to {arguments.json}")
    if output is not None:
        if not full:
            print("--output needs a full run (every benchmark); nothing written", file=sys.stderr)
            return 2
        run = report.Run(
            command=command,
            started=started_at,
            seconds=seconds,
            postgres=postgres,
            postgres_note=postgres_note,
            acks=results["ack"],  # type: ignore[arg-type]
            bulks=results["bulk"],  # type: ignore[arg-type]
            plan_bulks=results["bulk_plan"],  # type: ignore[arg-type]
            memories=results["memory"],  # type: ignore[arg-type]
            starts=results["starts"],  # type: ignore[arg-type]
            webhooks=results["webhooks"],  # type: ignore[arg-type]
            flood=results["flood"],  # type: ignore[arg-type]
            load_before=load_before,
            load_after=report.load_average(),
        )
        report.write(run, output)
        say(f"figures written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
