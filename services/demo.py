"""`schoolhealth demo`: the whole platform on a synthetic province, end to end, with one command.

It brings the local stack up, generates a province, imports it through the school doctors'
importer into Kafka, lets real worker processes and the alert service stream it into the archive,
trains the screening models, shows the counsellors' queues, publishes the latest school year,
writes the annual report and the dashboards, and says where to look.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from models.synthetic import ProvinceSpec
from models.topics import INPUT_TOPICS, INTERVENTION_ALERTS
from services.settings import Settings

IMPORT_ORDER = ("schools", "roster", "records", "vision", "bmi", "survey")


@dataclass(slots=True, kw_only=True)
class DemoReport:
    out_dir: Path
    students: int
    steps: list[tuple[str, float]] = field(default_factory=list)
    events_published: int = 0
    rows_rejected_by_importer: int = 0
    archive_counts: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    headline: dict[str, float | None] = field(default_factory=dict)
    year: int = 0
    revision: int = 0
    report_path: Path | None = None
    dashboards: list[Path] = field(default_factory=list)
    model_cards: list[Any] = field(default_factory=list)
    queues: list[dict[str, Any]] = field(default_factory=list)


class _Step:
    def __init__(self, console: Console, report: DemoReport, title: str) -> None:
        self.console, self.report, self.title = console, report, title

    def __enter__(self) -> _Step:
        self.started = time.monotonic()
        self.console.rule(f"[bold]{self.title}")
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.started
        self.report.steps.append((self.title, elapsed))
        if exc[0] is None:
            self.console.print(f"[green]done[/green] {self.title} in {elapsed:.1f}s")


def _spawn(settings: Settings, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "services.cli", *args],
                            env={**os.environ, **settings.as_environment()},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def _archive_counts(settings: Settings) -> dict[str, int]:
    tables = ("archive.students", "archive.student_history", "archive.vision_screenings",
              "archive.growth_screenings", "archive.survey_results", "ops.dead_letters")
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        return {table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
                for table in tables}


def _wait_until_drained(settings: Settings, groups: list[tuple[str, list[str]]],
                        processes: list[subprocess.Popen[bytes]], on_progress: Callable[[int], None],
                        timeout: float = 1800) -> None:
    from services.topics import consumer_lag

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise RuntimeError("a worker or the alert service exited; see the logs in the demo folder")
        lag = sum(consumer_lag(settings, group, topics) for group, topics in groups)
        on_progress(lag)
        if lag == 0:
            return
        time.sleep(1.0)
    raise RuntimeError(f"the pipeline did not catch up within {timeout:.0f}s")


def run_demo(settings: Settings, *, students: int, out_dir: Path, workers: int = 2, seed: int = 20251,
             console: Console | None = None) -> DemoReport:
    console = console or Console(stderr=True)
    started = time.monotonic()
    report = DemoReport(out_dir=out_dir, students=students)
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs"
    logs.mkdir(exist_ok=True)

    with _Step(console, report, "1. local stack: Apache Kafka and PostgreSQL"):
        from services.migrate import migrate
        from services.stack import Stack
        from services.topics import create_topics

        stack = Stack(settings)
        stack.up()
        for component in stack.status():
            console.print(f"  {component.name}: {component.detail}")
        migrate(settings)
        create_topics(settings)

    province = out_dir / "province"
    with _Step(console, report, f"2. synthetic province: {students:,} students, school years 2022-2025"):
        from services.synthetic_files import write_province

        stats = write_province(ProvinceSpec(students=students, seed=seed), province)
        console.print(f"  {stats.counties} counties, {stats.schools} schools; rows: "
                      + ", ".join(f"{kind} {count:,}" for kind, count in stats.rows.items()))

    processes: list[subprocess.Popen[bytes]] = []
    try:
        with _Step(console, report, f"3. stream workers ({workers}) and the alert service"):
            processes += [_spawn(settings, ["worker"], logs / f"worker-{n}.log") for n in range(workers)]
            processes.append(_spawn(settings, ["alerts", "serve"], logs / "alerts.log"))
            console.print(f"  logs in {logs}")

        with _Step(console, report, "4. school doctors' import: CSV → validated events → Kafka"):
            from services.importer import KafkaPublisher, import_file

            publisher = KafkaPublisher(settings)
            try:
                columns = (TextColumn("  {task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[rate]:>8,.0f} rows/s"), TimeElapsedColumn())
                with Progress(*columns, console=console) as progress:
                    for kind in IMPORT_ORDER:
                        path = province / f"{kind}.csv"
                        total = max(0, sum(1 for _ in path.open(encoding="utf-8")) - 1)
                        task = progress.add_task(kind, total=total, rate=0.0)
                        kind_started = time.monotonic()

                        def tick(task: Any = task, kind_started: float = kind_started) -> None:
                            progress.advance(task)
                            done = progress.tasks[task].completed
                            if done % 1000 == 0:
                                progress.update(task, rate=done / max(time.monotonic() - kind_started, 1e-6))

                        summary = import_file(settings, kind, path, publisher=publisher, on_row=tick,
                                              report_path=out_dir / f"{kind}.rejected.csv")
                        progress.update(task, completed=total, rate=total / max(summary.seconds, 1e-6))
                        if kind != "schools":
                            report.events_published += summary.accepted
                        report.rows_rejected_by_importer += len(summary.rejected)
            finally:
                publisher.close()
            console.print(f"  {report.events_published:,} events published; "
                          f"{report.rows_rejected_by_importer:,} rows rejected (reports in {out_dir})")

        with _Step(console, report, "5. pipeline catching up: worker lag → 0, alerts consumed"):
            from services.alerts import alert_consumer_group

            groups = [(settings.consumer_group, [settings.topic(t) for t in INPUT_TOPICS]),
                      (alert_consumer_group(settings), [settings.topic(INTERVENTION_ALERTS)])]
            with Progress(TextColumn("  backlog"), TextColumn("{task.fields[lag]:>9,} messages"),
                          TimeElapsedColumn(), console=console) as progress:
                task = progress.add_task("lag", total=None, lag=0)
                _wait_until_drained(settings, groups, processes,
                                    lambda lag: progress.update(task, lag=lag))
            report.archive_counts = _archive_counts(settings)
            report.dead_letters = report.archive_counts.pop("ops.dead_letters")
            for table, count in report.archive_counts.items():
                console.print(f"  {table}: {count:,} rows")
            console.print(f"  dead letters: {report.dead_letters:,}")
    finally:
        _stop(processes)

    with _Step(console, report, "6. screening models: train from the archive, score students"):
        from services.screening import score_students, train_all

        report.model_cards = train_all(settings, out_dir=out_dir / "models", truth_csv=province / "truth.csv")
        for card in report.model_cards:
            console.print(f"  {_card_line(card)}")
        scored = score_students(settings)
        console.print(f"  {scored:,} students scored with the active models")

    with _Step(console, report, "7. counsellors' and school doctors' queues"):
        from services.alerts import queue_summary

        report.queues = queue_summary(settings)
        queue_table = Table("school", "county", "urgent", "high", "medium", "low", "unacknowledged", "escalated")
        for row in report.queues[:15]:
            queue_table.add_row(*(str(row.get(k, "")) for k in ("school_id", "county_id", "urgent", "high", "medium",
                                                           "low", "unacknowledged", "escalated")))
        console.print(queue_table)
        if len(report.queues) > 15:
            console.print(f"  … and {len(report.queues) - 15} more schools")

    report.year = 2025
    with _Step(console, report, f"8. annual metrics: refresh, publish school year {report.year}"):
        from services.metrics import headline_indicators, publish_year

        # Publishing refreshes the rollups first.
        report.revision = publish_year(settings, report.year)
        report.headline = headline_indicators(settings, report.year)
        for name, value in report.headline.items():
            console.print(f"  {name}: {'suppressed' if value is None else f'{100 * value:.1f}%'}")

    with _Step(console, report, "9. annual report and Grafana dashboards"):
        from services.dashboards import build_dashboards
        from services.report import write_report

        report.report_path = write_report(settings, report.year, out_dir / "report")
        report.dashboards = build_dashboards(out_dir / "dashboards")
        console.print(f"  report: {report.report_path}")
        console.print(f"  dashboards: {', '.join(p.name for p in report.dashboards)}")

    wall = time.monotonic() - started
    console.rule("[bold]schoolhealth demo finished")
    console.print(f"wall time {wall:.0f}s; {report.events_published:,} events streamed through Kafka; "
                  f"published revision {report.revision} of {report.year}")
    console.print(f"look at: {report.report_path} (annual report), {out_dir / 'models'} (model cards), "
                  f"{out_dir / 'dashboards'} (Grafana JSON), `schoolhealth student KEY` (one archive), "
                  "`schoolhealth api` (alert queue API, OpenAPI at /docs)")
    report.steps.append(("total", wall))
    return report


def _card_line(card: Any) -> str:
    name = getattr(card, "name", "model")
    metrics = getattr(card, "metrics", None) or {}
    overall = metrics.get("overall", metrics) if isinstance(metrics, dict) else {}
    auc = overall.get("roc_auc") if isinstance(overall, dict) else None
    return f"{name}: ROC AUC {auc:.3f}" if isinstance(auc, float) else f"{name}: trained"
