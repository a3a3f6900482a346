"""Integration fixtures: a fresh database and topic prefix per test, and real worker processes.

Every test that uses `isolated` runs twice: on plain PostgreSQL, and on TimescaleDB (the database
the design names) when the machine has it; the TimescaleDB run is skipped, with the reason, where
the extension is not installed or the cluster does not preload it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from services.devtools.stack import Postgres
from services.platform.database import bootstrap_database
from services.platform.migrate import migrate
from services.platform.settings import Settings
from services.platform.topics import create_topics
from tests.processes import ChildProcess

BACKENDS = ("postgresql", "timescaledb")


@pytest.fixture(scope="session")
def timescaledb_missing(stack: Settings) -> str | None:
    """Why the shared cluster cannot create TimescaleDB databases, or None when it can."""
    with psycopg.connect(Postgres(stack)._superuser_dsn()) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
    if available is None:
        return "TimescaleDB is not installed on this machine: plain PostgreSQL only"
    if preload is None or "timescaledb" not in str(preload[0]):
        return "TimescaleDB is installed but the cluster does not preload it: run `schoolhealth stack up`"
    return None


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, timescaledb_missing: str | None) -> str:
    """The database backend of this run of the test: 'postgresql' or 'timescaledb'."""
    if request.param == "timescaledb" and timescaledb_missing:
        pytest.skip(timescaledb_missing)
    return str(request.param)


@pytest.fixture
def isolated(stack: Settings, unique: str, backend: str) -> Iterator[Settings]:
    """Settings for a database and topics of this test alone, migrated and created, on `backend`."""
    settings = stack.model_copy(update={"pg_database": f"schoolhealth_t_{unique}", "topic_prefix": f"t{unique}."})
    superuser = Postgres(stack)._superuser_dsn()
    bootstrap_database(settings, superuser, timescaledb=backend == "timescaledb")
    migrate(settings)
    create_topics(settings)
    yield settings
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(settings.pg_database)))


def worker_environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.as_environment()}


class WorkerProcess(ChildProcess):
    """A real `schoolhealth worker` process; its output goes to a log file for the failure report."""

    def __init__(self, settings: Settings, log: Path, *, environment: Mapping[str, str] | None = None) -> None:
        super().__init__(settings, log, ["worker"], environment=environment)


@pytest.fixture
def start_worker(isolated: Settings, tmp_path: Path) -> Iterator[Callable[[], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(isolated, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill(signal.SIGTERM)


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str,
             workers: list[WorkerProcess] | None = None) -> None:
    """Poll `predicate`; fail with the workers' logs on timeout or as soon as every worker died."""
    deadline = time.monotonic() + timeout
    problem = f"timed out after {timeout:.0f}s"
    while time.monotonic() < deadline:
        if predicate():
            return
        if workers and not any(worker.alive() for worker in workers):
            problem = "every worker exited"
            break
        time.sleep(0.25)
    detail = "".join(f"\n--- {w.log}\n{w.log.read_text(errors='replace')[-3000:]}" for w in workers or [])
    raise AssertionError(f"{problem} waiting for {what}{detail}")


def count(settings: Settings, query: str) -> int:
    try:
        with psycopg.connect(settings.pg_dsn("admin"), connect_timeout=3) as conn:
            row = conn.execute(query).fetchone()
    except psycopg.OperationalError:
        return -1
    return int(row[0]) if row else 0
