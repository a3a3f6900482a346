"""`schoolhealth demo`: the whole platform on a synthetic province, end to end, with one command.

It brings the local stack up, generates a province, imports it through the school doctors'
importer into Kafka, lets real worker processes and the alert service stream it into the archive,
trains the screening models, shows the counsellors' queues, publishes the latest school year,
writes the annual report and the dashboards, and says where to look.
"""

from __future__ import annotations

import csv
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.table import Table

from models.importing import COLUMNS
from models.synthetic import ProvinceSpec
from models.topics import INPUT_TOPICS, INTERVENTION_ALERTS
from services.platform.processes import spawn_command, stop_processes
from services.platform.safe_csv import SafeCsvWriter
from services.platform.settings import Settings

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
    example_student: str | None = None


def _rule(console: Console, title: str) -> None:
    """A section rule: the terminal's width, or 100 columns in a log (the console does not wrap there)."""
    console.print(Rule(title), width=None if console.is_terminal else 100)


class _Step:
    def __init__(self, console: Console, report: DemoReport, title: str) -> None:
        self.console, self.report, self.title = console, report, title

    def __enter__(self) -> _Step:
        self.started = time.monotonic()
        _rule(self.console, f"[bold]{self.title}")
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.started
        self.report.steps.append((self.title, elapsed))
        if exc[0] is None:
            self.console.print(f"[green]done[/green] {self.title} in {elapsed:.1f}s")


def _archive_counts(settings: Settings) -> dict[str, int]:
    tables = ("archive.students", "archive.student_history", "archive.vision_screenings",
              "archive.growth_screenings", "archive.survey_results", "archive.fitness_results", "ops.dead_letters")
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        return {table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
                for table in tables}


def _wait_until_drained(settings: Settings, groups: list[tuple[str, list[str]]],
                        processes: list[subprocess.Popen[bytes]], on_progress: Callable[[int], None],
                        timeout: float = 1800) -> None:
    from services.platform.topics import consumer_lag

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


def _recreate_database(settings: Settings, stack: Any) -> None:
    """Drop and recreate the local stack's database, so a rerun starts from an empty archive."""
    from psycopg import sql

    from services.platform.database import bootstrap_database

    superuser = stack.postgres._superuser_dsn()
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(settings.pg_database)))
    bootstrap_database(settings, superuser, timescaledb=stack.postgres.timescaledb_available(
        stack.postgres.ensure_binaries()))


def run_demo(settings: Settings, *, students: int, out_dir: Path, workers: int = 2, seed: int = 20251,
             reset: bool = True, console: Console | None = None) -> DemoReport:
    console = console or Console(stderr=True)
    started = time.monotonic()
    report = DemoReport(out_dir=out_dir, students=students)
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs"
    logs.mkdir(exist_ok=True)

    with _Step(console, report, "1. local stack: Apache Kafka and PostgreSQL"):
        from services.devtools.stack import Stack
        from services.platform.migrate import migrate
        from services.platform.topics import create_topics

        stack = Stack(settings)
        stack.up()
        for component in stack.status():
            console.print(f"  {component.name}: {component.detail}")
        if reset:
            _recreate_database(settings, stack)
            console.print(f"  database {settings.pg_database} recreated (synthetic demo data only)")
        migrate(settings)
        create_topics(settings)

    province = out_dir / "province"
    with _Step(console, report, f"2. synthetic province: {students:,} students, school years 2022-2025"):
        from services.devtools.synthetic_files import write_province

        # At least three counties, so the county table and drill-down have something to compare.
        counties = max(3, students // 4000)
        stats = write_province(ProvinceSpec(students=students, seed=seed, counties=counties), province)
        console.print(f"  {stats.counties} counties, {stats.schools} schools; rows: "
                      + ", ".join(f"{kind} {count:,}" for kind, count in stats.rows.items()))

    processes: list[subprocess.Popen[bytes]] = []
    try:
        with _Step(console, report, f"3. stream workers ({workers}) and the alert service"):
            processes += [spawn_command(settings, ["worker"], log=logs / f"worker-{n}.log") for n in range(workers)]
            processes.append(spawn_command(settings, ["alerts", "serve"], log=logs / "alerts.log"))
            console.print(f"  logs in {logs}")

        with _Step(console, report, "4. school doctors' import: CSV → validated events → Kafka"):
            from services.intake.importer import import_file
            from services.platform.kafka import KafkaPublisher

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

        with _Step(console, report, "4b. PE teachers' national fitness upload sheets (国家学生体质健康标准) → Kafka"):
            _import_fitness_sheets(settings, province, out_dir, report, console)

        with _Step(console, report, "5. pipeline catching up: worker lag → 0, alerts consumed"):
            from services.alerts.service import alert_consumer_group

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
            from services.platform.timescaledb import columnstore_closed_school_years

            columnstore = columnstore_closed_school_years(settings)
            if columnstore is not None:
                console.print(f"  TimescaleDB: closed school years into the columnstore (job run now): "
                              f"{columnstore.chunks_in_columnstore} of {columnstore.chunks} archive chunks")

        with _Step(console, report, "6. screening models: train from the archive, score students"):
            from services.screening_models.service import score_students, train_all

            report.model_cards = train_all(settings, out_dir=out_dir / "models", truth_csv=province / "truth.csv")
            for card in report.model_cards:
                console.print(f"  {_card_line(card)}")
            scored = score_students(settings)
            console.print(f"  {scored:,} students scored with the active models")

        with _Step(console, report, "7. this week's screening day: PHQ-A surveys answered today"):
            day = out_dir / "screening-day.csv"
            rows = write_screening_day(province / "roster.csv", day, today=date.today(), seed=seed)
            summary = import_file(settings, "survey", day, report_path=out_dir / "screening-day.rejected.csv")
            report.events_published += summary.accepted
            console.print(f"  {rows:,} surveys imported ({len(summary.rejected)} rejected); waiting for alerts")
            with Progress(TextColumn("  backlog"), TextColumn("{task.fields[lag]:>9,} messages"),
                          TimeElapsedColumn(), console=console) as progress:
                task = progress.add_task("lag", total=None, lag=0)
                _wait_until_drained(settings, groups, processes,
                                    lambda lag: progress.update(task, lag=lag))
    finally:
        stop_processes(processes)

    with _Step(console, report, "8. counsellors' and school doctors' queues"):
        from services.alerts.service import queue_summary

        report.queues = queue_summary(settings)
        if report.queues:
            _show_counsellor_queue(settings, report.queues[0]["school_id"], console)
        queue_table = Table("school", "county", "urgent", "high", "medium", "low", "unacknowledged", "escalated")
        for row in report.queues[:15]:
            queue_table.add_row(*(str(row.get(k, "")) for k in ("school_id", "county_id", "urgent", "high", "medium",
                                                           "low", "unacknowledged", "escalated")))
        console.print(queue_table)
        if len(report.queues) > 15:
            console.print(f"  … and {len(report.queues) - 15} more schools")

    report.year = 2025
    with _Step(console, report, f"9. annual metrics: refresh, publish school year {report.year}"):
        from services.reporting.metrics import headline_indicators, publish_year

        # Publishing refreshes the rollups first.
        report.revision = publish_year(settings, report.year)
        report.headline = headline_indicators(settings, report.year)
        for name, value in report.headline.items():
            console.print(f"  {name}: {'suppressed' if value is None else f'{100 * value:.1f}%'}")

    with _Step(console, report, "10. annual report and Grafana dashboards"):
        from services.reporting.dashboards import build_dashboards
        from services.reporting.report import write_report

        report.report_path = write_report(settings, report.year, out_dir / "report")
        english = write_report(settings, report.year, out_dir / "report", language="en")
        console.print(f"  report in English: {english}")
        report.dashboards = build_dashboards(out_dir / "dashboards")
        console.print(f"  report: {report.report_path}")
        console.print(f"  dashboards: {', '.join(p.name for p in report.dashboards)}")

    report.example_student = example_student_key(settings)
    wall = time.monotonic() - started
    _rule(console, "[bold]schoolhealth demo finished")
    console.print(f"wall time {wall:.0f}s; {report.events_published:,} events streamed through Kafka; "
                  f"published revision {report.revision} of {report.year}")
    console.print(f"look at: {report.report_path} (annual report), {out_dir / 'models'} (model cards), "
                  f"{out_dir / 'dashboards'} (Grafana JSON), "
                  "`schoolhealth api` (API, OpenAPI at /docs; web pages at /web/login, see the README)")
    if report.example_student:
        # soft_wrap: the whole key on one line, so it can be copied.
        console.print(f"one student's archive: schoolhealth student {report.example_student}", soft_wrap=True)
    report.steps.append(("total", wall))
    return report


FITNESS_YEARS = (2024, 2025)


def _import_fitness_sheets(settings: Settings, province: Path, out_dir: Path, report: DemoReport,
                           console: Console) -> None:
    """Generate each school's upload sheets (the last two school years) and import them through Kafka."""
    from services.devtools.fitness_synthetic_files import write_fitness_sheets
    from services.intake.fitness_exchange import import_upload_sheet
    from services.platform.kafka import KafkaPublisher

    files = write_fitness_sheets(province, out_dir / "fitness", school_years=FITNESS_YEARS)
    publisher = KafkaPublisher(settings)
    accepted = rejected = 0
    try:
        for number, sheet in enumerate(files.sheets):
            summary = import_upload_sheet(
                settings, sheet.path, school_id=sheet.school_id, measured_on=sheet.measured_on,
                screener=f"pe-{sheet.school_id[-4:]}", attempt=sheet.attempt, publisher=publisher,
                report_path=out_dir / "fitness" / f"{sheet.path.stem}.rejected.csv")
            accepted += summary.accepted
            rejected += len(summary.rejected)
            if number == 0:
                console.print(f"  school {sheet.school_id}'s upload sheet for {sheet.school_year} ({sheet.path.name}): "
                              f"{summary.accepted:,} students accepted, {len(summary.rejected)} rejected")
    finally:
        publisher.close()
    report.events_published += accepted
    console.print(f"  {len(files.sheets)} sheets from every school, {accepted:,} tests published, {rejected} rows "
                  f"rejected; generator's truth in {files.truth}")


def example_student_key(settings: Settings) -> str | None:
    """A student with both kinds of screening on record, for the demo's last line (full key)."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        row = conn.execute(
            "SELECT g.student_key FROM archive.growth_screenings g"
            " WHERE EXISTS (SELECT 1 FROM archive.vision_screenings v WHERE v.student_key = g.student_key)"
            " ORDER BY g.student_key LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def _card_line(card: Any) -> str:
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    line = (f"{card.name} v{card.version}: test year {card.test_year}, n={card.test.n}, ROC AUC "
            f"{number(card.test.roc_auc)}, PR AUC {number(card.test.pr_auc)} (prevalence "
            f"{card.test.prevalence:.3f}), Brier {number(card.test.brier)}")
    if card.true_risk is not None:
        line += f"; true-risk AUC {number(card.true_risk.roc_auc)}"
    return line


def write_screening_day(roster_csv: Path, out: Path, *, today: date, seed: int, limit: int = 800) -> int:
    """PHQ-A answers dated `today` for pupils aged 10-15 from the roster (synthetic, seeded).

    About 4% answer item 9 above zero, so the counsellors' queues fill the way a real screening
    day would; the rows go through the importer like any school's file.
    """
    rng = random.Random(seed + today.toordinal())  # noqa: S311 - synthetic answers, not secrets
    written = 0
    with roster_csv.open(encoding="utf-8") as source, out.open("w", newline="", encoding="utf-8") as target:
        writer = SafeCsvWriter(target)
        writer.writerow(COLUMNS["survey"])
        for row in csv.DictReader(source):
            age_days = (today - date.fromisoformat(row["birth_date"])).days
            if not 10 * 365 <= age_days <= 15 * 365:
                continue
            mood = rng.random() ** 2.5  # most pupils low, a few high
            answers = [min(3, int(rng.random() * 4 * mood + rng.random() * 0.6)) for _ in range(8)]
            answers.append(rng.choice((1, 2)) if rng.random() < 0.04 else 0)
            writer.writerow([row["school_id"], row["student_number"], row["sex"], row["birth_date"],
                             today.isoformat(), "phq-a", "1", ";".join(map(str, answers))])
            written += 1
            if written >= limit:
                break
    return written


def _show_counsellor_queue(settings: Settings, school_id: str, console: Console) -> None:
    """Ask the real API, as a counsellor of one school, for their queue (row-level security applies)."""
    import httpx

    from services.access.users import add_user
    from services.server import create_api
    from services.server.thread import serve_in_thread

    user = f"demo-counsellor-{school_id}-{int(time.time())}"
    token = add_user(settings, user, "counsellor", schools=[school_id])
    headers = {"Authorization": f"Bearer {token}"}
    with serve_in_thread(create_api(settings)) as base:
        response = httpx.get(f"{base}/alerts", headers=headers, timeout=30)
        response.raise_for_status()
        queue = response.json()
        unauthenticated = httpx.get(f"{base}/alerts", timeout=30).status_code
        console.print(f"  counsellor {user} sees {len(queue)} alert(s) of school {school_id} through the API "
                      f"(without a token: HTTP {unauthenticated}); the first:")
        for alert in queue[:5]:
            student = str(alert.get("student_key"))[:12]
            deadline = datetime.fromisoformat(str(alert.get("ack_deadline"))).astimezone(settings.zone)
            console.print(f"    {alert.get('priority')} {alert.get('concern')} student {student}… "
                          f"state {alert.get('state')}, acknowledge by {deadline:%Y-%m-%d %H:%M} "
                          f"({settings.school_timezone})")
        if queue:
            # The counsellor works the first alert; the finding becomes a depression label at the next training.
            first = f"{base}/alerts/{queue[0]['alert_id']}"
            httpx.post(f"{first}/acknowledge", headers=headers, timeout=30).raise_for_status()
            done = httpx.post(f"{first}/resolve", headers=headers, json={"outcome": "support_in_school"}, timeout=30)
            done.raise_for_status()
            console.print(f"  the counsellor acknowledges and resolves the first one: {done.json()['state']}, "
                          f"outcome {done.json()['outcome']} (a label for the next depression model)")
        ranking = httpx.get(f"{base}/risk", headers=headers, params={"model": "depression", "limit": 5}, timeout=30)
        ranking.raise_for_status()
        console.print("  their review-first list from the depression model (GET /risk, audited):")
        for row in ranking.json():
            console.print(f"    {row['rank']}. student {row['student_key'][:12]}… risk {row['score']:.2f} "
                          f"({row['open_alerts']} open alert(s))")
