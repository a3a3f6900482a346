"""`schoolhealth`: the one console script, with subcommands.

Settings are built once here (lazily, per command) and passed explicitly; heavy modules are
imported inside the commands so `schoolhealth --help` is instant and needs nothing running.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.platform.settings import Settings

app = typer.Typer(help="Student health monitoring: screenings through Kafka into the health archive.",
                  no_args_is_help=True, add_completion=False)
stack_app = typer.Typer(help="The local stack (Apache Kafka and PostgreSQL) without Docker.",
                        no_args_is_help=True)
app.add_typer(stack_app, name="stack")

console = Console(stderr=True)


def _settings() -> Settings:
    return Settings()


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@stack_app.command("up")
def stack_up() -> None:
    """Start Kafka and PostgreSQL (installing what is missing); idempotent."""
    import time

    from services.devtools.stack import Stack, StackError

    started = time.monotonic()
    stack = Stack(_settings())
    try:
        with console.status("starting PostgreSQL and Kafka"):
            stack.up()
    except StackError as error:
        raise _fail(str(error)) from error
    for component in stack.status():
        console.print(f"[green]up[/green] {component.name}: {component.detail}")
    console.print(f"stack up in {time.monotonic() - started:.1f}s")


@stack_app.command("down")
def stack_down() -> None:
    """Stop Kafka (controlled shutdown) and PostgreSQL (fast shutdown)."""
    from services.devtools.stack import Stack, StackError

    try:
        Stack(_settings()).down()
    except StackError as error:
        raise _fail(str(error)) from error
    console.print("stack down")


@stack_app.command("status")
def stack_status() -> None:
    """Say whether Kafka and PostgreSQL answer, their versions, and whether TimescaleDB is there."""
    from services.devtools.stack import Stack

    statuses = Stack(_settings()).status()
    for component in statuses:
        typer.echo(f"{component.name}: {'running' if component.running else 'stopped'} - {component.detail}")
    if not all(component.running for component in statuses):
        raise typer.Exit(3)


@stack_app.command("env")
def stack_env() -> None:
    """Print the settings as `export SCHOOLHEALTH_...` lines for a shell."""
    import shlex

    for name, value in _settings().as_environment().items():
        typer.echo(f"export {name}={shlex.quote(value)}")


@app.command("classify")
def classify(kind: Annotated[str, typer.Argument(help="growth, vision or survey")]) -> None:
    """Classify JSON lines from stdin: exactly one JSON line out per line in, in order, each
    with its input line number; a line that cannot be classified gets {"line": N, "error": ...}."""
    from models.classify import classify_line, read_lines

    if kind not in ("growth", "vision", "survey"):
        raise _fail(f"unknown kind {kind!r}: expected growth, vision or survey", 2)
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
        raise typer.Exit(1)


db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")


@db_app.command("init")
def db_init() -> None:
    """Create roles and database with SCHOOLHEALTH_PG_SUPERUSER_DSN (docker-compose), then migrate."""
    import os

    from services.platform.database import DatabaseSetupError, bootstrap_database
    from services.platform.migrate import MigrationError, migrate

    settings = _settings()
    superuser_dsn = os.environ.get("SCHOOLHEALTH_PG_SUPERUSER_DSN")
    if not superuser_dsn:
        raise _fail("set SCHOOLHEALTH_PG_SUPERUSER_DSN to a superuser connection string")
    import psycopg

    with psycopg.connect(superuser_dsn) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() is not None
    try:
        bootstrap_database(settings, superuser_dsn, timescaledb=available)
        applied = migrate(settings)
    except (DatabaseSetupError, MigrationError) as error:
        raise _fail(str(error)) from error
    console.print(f"database ready; migrations applied now: {', '.join(applied) or 'none'}")


@app.command("migrate")
def migrate_command() -> None:
    """Apply pending schema migrations (the worker also does this at start)."""
    from services.platform.migrate import MigrationError, migrate

    try:
        applied = migrate(_settings())
    except MigrationError as error:
        raise _fail(str(error)) from error
    console.print(f"migrations applied now: {', '.join(applied) or 'none (up to date)'}")


@topics_app.command("create")
def topics_create() -> None:
    """Create the Kafka topics with explicit partition counts (auto-creation is off)."""
    from services.platform.topics import create_topics

    for name, partitions in sorted(create_topics(_settings()).items()):
        typer.echo(f"{name}: {partitions} partition(s)")


@app.command("worker")
def worker(loglevel: Annotated[str, typer.Option(help="faust log level")] = "warning") -> None:
    """Run one stream worker (migrations, topics, then the ingest agent); start one per core."""
    from streams.worker import run_worker

    run_worker(_settings(), loglevel=loglevel)


audit_app = typer.Typer(help="Proofs for operators: what reached the archive.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("delivery")
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
            raise _fail(f"--since: not an ISO time: {since!r}") from error
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    audits = audit_delivery(_settings(), since=start)
    if as_json:
        for audit in audits:
            typer.echo(json.dumps(audit.as_dict(), ensure_ascii=False))
    else:
        table = Table("topic 主题", "produced 生产", "archived 归档", "dead-lettered 死信", "conflicting 冲突",
                      "missing 缺失", "alerts missing 预警缺失")
        for audit in audits:
            table.add_row(audit.topic, str(audit.produced), str(audit.archived), str(audit.dead_lettered),
                          str(audit.conflicting), str(audit.missing), f"{audit.alerts_missing}/{audit.alerts_expected}")
        Console().print(table)
    if any(audit.missing or audit.alerts_missing for audit in audits):
        console.print("[red]missing events: delivery is not complete[/red]")
        raise typer.Exit(1)


def _import_epilog() -> str:
    from models.importing import COLUMNS, expected_columns_text

    lines = ["Columns of each kind (header row; English or Chinese headings, any order):"]
    lines += [f"{kind}: {expected_columns_text(kind)}" for kind in COLUMNS]
    lines.append("Dates YYYY-MM-DD (2015/3/7, 2015年3月7日 too); sex male/female or 男/女; yes/no as 是/否, 1/0; "
                 "height in cm, weight in kg, acuity in 5-point notation (3.0..5.3).")
    return "\n\n".join(lines)


@app.command("import", epilog=_import_epilog())
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
        raise _fail(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}", 2)
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
            summary = import_file(_settings(), kind, file, dry_run=dry_run, report_path=report, on_row=on_row)
        except HeaderRejected as error:
            raise _fail(f"{file}: {error}. Expected columns: {expected_columns_text(kind)}", 2) from error
        except UnreadableFile as error:
            raise _fail(error.problem, 2) from error
        except FileRefused as error:
            raise _fail(f"{file}: {error.zh}\n{error.en}", 2) from error
        progress.update(task, completed=summary.rows, total=summary.rows,
                        rate=summary.rows / max(summary.seconds, 1e-6))
    verb = "validated" if dry_run else "accepted"
    console.print(f"{summary.rows:,} rows: {summary.accepted:,} {verb}, {len(summary.rejected):,} rejected"
                  f" in {summary.seconds:.1f}s" + ("" if dry_run else f"; {summary.published_messages:,} messages"))
    if summary.rejected:
        console.print(f"rejected rows and reasons: {summary.report_path}")
        raise typer.Exit(1)


@app.command("demo")
def demo(
    students: Annotated[int, typer.Option(help="size of the synthetic province")] = 4000,
    workers: Annotated[int, typer.Option(help="stream worker processes")] = 2,
    out: Annotated[Path, typer.Option(help="where the province, report, models and logs go")] = Path("out/demo"),
    reset: Annotated[bool, typer.Option(help="recreate the local database first (synthetic data only)")] = True,
) -> None:
    """Run the whole platform on a synthetic province: stack, import, stream, train, publish, report."""
    from services.devtools.demo import run_demo

    run_demo(_settings(), students=students, workers=workers, out_dir=out, reset=reset, console=console)


@app.command("student")
def student(key: Annotated[str, typer.Argument(
        help="the student's pseudonymous key (64 hex), or its unique beginning (at least 6 hex digits)")]) -> None:
    """Print one student's archive: status, school history and every screening over time."""
    import psycopg

    from services.students.archive_reader import AmbiguousKey, StudentNotFound, print_student

    settings = _settings()
    try:
        print_student(settings, key, out=typer.echo)
    except (StudentNotFound, AmbiguousKey) as error:
        raise _fail(str(error)) from error
    except psycopg.OperationalError as error:
        raise _fail(f"cannot reach the database at {settings.pg_host}:{settings.pg_port}/{settings.pg_database}; "
                    "is the stack running? (schoolhealth stack status)", 3) from error


bench_app = typer.Typer(help="Benchmarks (results as JSON under bench/results/).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("pipeline")
def bench_pipeline(
    events: Annotated[int, typer.Option(help="events in the run")] = 100_000,
    workers: Annotated[int, typer.Option(help="worker processes in the consumer group")] = 2,
    out: Annotated[Path, typer.Option(help="JSON result file")] = Path("bench/results/pipeline.json"),
) -> None:
    """Raw aiokafka, bare faust, raw COPY and end-to-end rates on the same events, with ratios."""
    from services.devtools.bench_pipeline import run_pipeline_bench

    with console.status(f"benchmarking {events:,} events with {workers} worker(s)"):
        result = run_pipeline_bench(_settings(), events=events, workers=workers, out=out)
    e2e = result["end_to_end"]
    for name in ("raw_aiokafka_consume", "bare_faust_count", "classify_in_process"):
        typer.echo(f"{name:>24}: {result[name]['events_per_second']:>10,.0f} events/s")
    typer.echo(f"{'raw_binary_copy':>24}: {result['raw_binary_copy']['rows_per_second']:>10,.0f} rows/s")
    cpu = ", ".join(f"{c:.0f}" for c in e2e["cpu_microseconds_per_event_per_process"])
    rss = ", ".join(f"{m:.0f}" for m in e2e["worker_peak_rss_mib"])
    typer.echo(f"{'end_to_end':>24}: {e2e['events_per_second']:>10,.0f} events/s "
               f"({workers} workers, CPU µs/event/process {cpu}, peak RSS MiB {rss})")
    for name, ratio in result["ratios"].items():
        typer.echo(f"{name:>28}: {ratio:.2f}")
    typer.echo(f"result: {out}")


def _register_extensions() -> None:
    """Areas with several commands keep them in their own module, each with `register(app)`."""
    import importlib

    for module in ("services.cli.alerts", "services.cli.screening", "services.cli.metrics", "services.cli.fitness"):
        try:
            importlib.import_module(module).register(app)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


_register_extensions()


def main() -> None:
    from services.platform.settings import UnsafeSettings

    try:
        app()
    except UnsafeSettings as refused:
        console.print(f"[red]error:[/red] {refused}")
        raise SystemExit(2) from None

