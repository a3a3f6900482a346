"""`schoolhealth`: the one console script, with subcommands.

Settings are built once here (lazily, per command) and passed explicitly; heavy modules are
imported inside the commands so `schoolhealth --help` is instant and needs nothing running.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from services.settings import Settings

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

    from services.stack import Stack, StackError

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
    from services.stack import Stack, StackError

    try:
        Stack(_settings()).down()
    except StackError as error:
        raise _fail(str(error)) from error
    console.print("stack down")


@stack_app.command("status")
def stack_status() -> None:
    """Say whether Kafka and PostgreSQL answer, their versions, and whether TimescaleDB is there."""
    from services.stack import Stack

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
    """Classify JSON lines from stdin; one JSON line out per line in, in order."""
    from models.classify import RecordError, classify_record

    if kind not in ("growth", "vision", "survey"):
        raise _fail(f"unknown kind {kind!r}: expected growth, vision or survey", 2)
    failures = 0
    out = sys.stdout
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise RecordError(f"line {number}: expected a JSON object")
            result: dict[str, object] = classify_record(kind, record)  # type: ignore[arg-type]
        except json.JSONDecodeError as error:
            failures += 1
            result = {"error": f"not JSON: {error.msg} at column {error.colno}", "line": number}
        except ValueError as error:
            failures += 1
            result = {"error": str(error), "line": number}
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
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

    from services.migrate import migrate
    from services.stack import bootstrap_database

    settings = _settings()
    superuser_dsn = os.environ.get("SCHOOLHEALTH_PG_SUPERUSER_DSN")
    if not superuser_dsn:
        raise _fail("set SCHOOLHEALTH_PG_SUPERUSER_DSN to a superuser connection string")
    import psycopg

    with psycopg.connect(superuser_dsn) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() is not None
    bootstrap_database(settings, superuser_dsn, timescaledb=available)
    applied = migrate(settings)
    console.print(f"database ready; migrations applied now: {', '.join(applied) or 'none'}")


@app.command("migrate")
def migrate_command() -> None:
    """Apply pending schema migrations (the worker also does this at start)."""
    from services.migrate import MigrationError, migrate

    try:
        applied = migrate(_settings())
    except MigrationError as error:
        raise _fail(str(error)) from error
    console.print(f"migrations applied now: {', '.join(applied) or 'none (up to date)'}")


@topics_app.command("create")
def topics_create() -> None:
    """Create the Kafka topics with explicit partition counts (auto-creation is off)."""
    from services.topics import create_topics

    for name, partitions in sorted(create_topics(_settings()).items()):
        typer.echo(f"{name}: {partitions} partition(s)")


@app.command("worker")
def worker(loglevel: Annotated[str, typer.Option(help="faust log level")] = "warning") -> None:
    """Run one stream worker (migrations, topics, then the ingest agent); start one per core."""
    from services.worker import run_worker

    run_worker(_settings(), loglevel=loglevel)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
