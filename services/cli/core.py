"""The core commands: classify, db init, migrate, topics create, worker, audit delivery, import, student."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from services.cli.output import BAD_INPUT, FAILED, UNREACHABLE, console, fail, group, load_settings, out


def classify(kind: Annotated[str, typer.Argument(help="growth, vision or survey")]) -> None:
    """Classify JSON lines from stdin: exactly one JSON line out per line in, in order, each
    with its input line number; a line that cannot be classified gets {"line": N, "error": ...}."""
    from models.classify import classify_line, read_lines

    if kind not in ("growth", "vision", "survey"):
        raise fail(f"unknown kind {kind!r}: expected growth, vision or survey", BAD_INPUT)
    failures = 0
    out = sys.stdout.buffer
    for number, line in enumerate(read_lines(sys.stdin.buffer), start=1):
        result, classified = classify_line(kind, line, number)  # type: ignore[arg-type]
        failures += not classified
        # A lone surrogate (a JSON "\ud800" escape) becomes that escape again: still valid JSON.
        out.write((json.dumps(result, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace"))
    out.flush()
    if failures:
        console.print(f"{failures} line(s) rejected")
        raise typer.Exit(FAILED)


def db_init() -> None:
    """Create roles and database with SCHOOLHEALTH_PG_SUPERUSER_DSN (docker-compose), then migrate."""
    import os

    from services.platform.database import DatabaseSetupError, bootstrap_database
    from services.platform.migrate import MigrationError, migrate

    settings = load_settings()
    superuser_dsn = os.environ.get("SCHOOLHEALTH_PG_SUPERUSER_DSN")
    if not superuser_dsn:
        raise fail("set SCHOOLHEALTH_PG_SUPERUSER_DSN to a superuser connection string", BAD_INPUT)
    import psycopg

    with psycopg.connect(superuser_dsn) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() is not None
    try:
        bootstrap_database(settings, superuser_dsn, timescaledb=available)
        applied = migrate(settings)
    except (DatabaseSetupError, MigrationError) as error:
        raise fail(str(error)) from error
    console.print(f"database ready; migrations applied now: {', '.join(applied) or 'none'}")


def migrate_command() -> None:
    """Apply pending schema migrations (the worker also does this at start)."""
    from services.platform.migrate import MigrationError, migrate

    try:
        applied = migrate(load_settings())
    except MigrationError as error:
        raise fail(str(error)) from error
    console.print(f"migrations applied now: {', '.join(applied) or 'none (up to date)'}")


def topics_create() -> None:
    """Create the Kafka topics with explicit partition counts (auto-creation is off)."""
    from services.platform.topics import create_topics

    for name, partitions in sorted(create_topics(load_settings()).items()):
        typer.echo(f"{name}: {partitions} partition(s)")


def worker(loglevel: Annotated[str, typer.Option(help="faust log level")] = "warning") -> None:
    """Run one stream worker (migrations, topics, then the ingest agent); start one per core."""
    from streams.worker import run_worker

    run_worker(load_settings(), loglevel=loglevel)


def audit_delivery_command(
    since: Annotated[str | None, typer.Option(help="ISO time to start from (default: all retained)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
) -> None:
    """Per input topic: events produced, archived, dead-lettered, conflicting and missing; exit 1 if any is missing."""
    from datetime import UTC, datetime

    from rich.table import Table

    from services.pipeline.audit import audit_delivery

    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError as error:
            raise fail(f"--since: not an ISO time: {since!r}", BAD_INPUT) from error
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    audits = audit_delivery(load_settings(), since=start)
    if as_json:
        for audit in audits:
            typer.echo(json.dumps(audit.as_dict(), ensure_ascii=False))
    else:
        table = Table("topic 主题", "produced 生产", "archived 归档", "dead-lettered 死信", "conflicting 冲突",
                      "missing 缺失", "alerts missing 预警缺失")
        for audit in audits:
            table.add_row(audit.topic, str(audit.produced), str(audit.archived), str(audit.dead_lettered),
                          str(audit.conflicting), str(audit.missing), f"{audit.alerts_missing}/{audit.alerts_expected}")
        out.print(table)
    if any(audit.missing or audit.alerts_missing for audit in audits):
        raise fail("missing events: delivery is not complete")


def _import_epilog() -> str:
    from models.importing import COLUMNS, expected_columns_text

    lines = ["Columns of each kind (header row; English or Chinese headings, any order):"]
    lines += [f"{kind}: {expected_columns_text(kind)}" for kind in COLUMNS]
    lines.append("Dates YYYY-MM-DD (2015/3/7, 2015年3月7日 too); sex male/female or 男/女; yes/no as 是/否, 1/0; "
                 "height in cm, weight in kg, acuity in 5-point notation (3.0..5.3).")
    return "\n\n".join(lines)


def import_command(
    kind: Annotated[str, typer.Argument(help="schools, roster, records, vision, bmi or survey")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV (UTF-8 or GB18030) or XLSX")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only; publish and store nothing")] = False,
    report: Annotated[Path | None, typer.Option(help="where the per-row error report goes")] = None,
) -> None:
    """Validate a school doctor's file and publish its valid rows; rejected rows go to a report."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from models.importing import expected_columns_text
    from services.intake.importer import KINDS, FileRefused, HeaderRejected, UnreadableFile, import_file

    if kind not in KINDS:
        raise fail(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}", BAD_INPUT)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"),
               TextColumn("{task.fields[rate]:,.0f} rows/s"), TaskProgressColumn(), TimeElapsedColumn())
    import time

    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"importing {kind}", total=None, rate=0.0)
        started = time.monotonic()
        counter = [0]

        def on_row() -> None:
            counter[0] += 1
            if counter[0] % 500 == 0:
                elapsed = max(time.monotonic() - started, 1e-6)
                progress.update(task, completed=counter[0], rate=counter[0] / elapsed)

        try:
            summary = import_file(load_settings(), kind, file, dry_run=dry_run, report_path=report, on_row=on_row)
        except HeaderRejected as error:
            raise fail(f"{file}: {error}. Expected columns: {expected_columns_text(kind)}", BAD_INPUT) from error
        except UnreadableFile as error:
            raise fail(error.problem, BAD_INPUT) from error
        except FileRefused as error:
            raise fail(f"{file}: {error.zh}\n{error.en}", BAD_INPUT) from error
        progress.update(task, completed=summary.rows, total=summary.rows,
                        rate=summary.rows / max(summary.seconds, 1e-6))
    verb = "validated" if dry_run else "accepted"
    console.print(f"{summary.rows:,} rows: {summary.accepted:,} {verb}, {len(summary.rejected):,} rejected"
                  f" in {summary.seconds:.1f}s" + ("" if dry_run else f"; {summary.published_messages:,} messages"))
    if summary.rejected:
        console.print(f"rejected rows and reasons: {summary.report_path}")
        raise typer.Exit(FAILED)


def student(key: Annotated[str, typer.Argument(
        help="the student's pseudonymous key (64 hex), or its unique beginning (at least 6 hex digits)")]) -> None:
    """Print one student's archive: status, school history and every screening over time."""
    import psycopg

    from services.students.archive_reader import AmbiguousKey, StudentNotFound, print_student

    settings = load_settings()
    try:
        print_student(settings, key, out=typer.echo)
    except (StudentNotFound, AmbiguousKey) as error:
        raise fail(str(error)) from error
    except psycopg.OperationalError as error:
        raise fail(f"cannot reach the database at {settings.pg_host}:{settings.pg_port}/{settings.pg_database}; "
                    "is the stack running? (schoolhealth stack status)", UNREACHABLE) from error


def schemas_write() -> None:
    """Regenerate the JSON Schema files of the event contracts (models/schemas/*.json)."""
    from services.platform.event_schemas import write_schemas

    for path in write_schemas():
        typer.echo(f"wrote {path}")


def schemas_check() -> None:
    """Exit 1 if a JSON Schema file of the event contracts is stale."""
    from services.platform.event_schemas import stale_schema_files

    if stale_schema_files():
        raise fail("JSON Schema files are stale: run schoolhealth schemas write")


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
    app.command("migrate")(migrate_command)
    app.command("worker")(worker)
    app.command("import", epilog=_import_epilog())(import_command)
    app.command("student")(student)
    group(app, "db", "Database administration.").command("init")(db_init)
    group(app, "topics", "Kafka topics.").command("create")(topics_create)
    group(app, "audit", "Proofs for operators: what reached the archive.").command("delivery")(audit_delivery_command)
    schemas = group(app, "schemas", "JSON Schema files of the event contracts.")
    schemas.command("write")(schemas_write)
    schemas.command("check")(schemas_check)
