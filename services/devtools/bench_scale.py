"""`schoolhealth bench scale --students N`: what seeding, refreshing, publishing and reading cost at size N.

A fresh database is seeded with N students over four school years through the worker's path
(`services.devtools.seed`: the importer's validation, the classification, the archive writer; no
Kafka). Then it measures, one after another:

* seeding: events archived per second (generation of the CSV files excluded, reported apart);
* the full refresh (`schoolhealth refresh --full`) in seconds;
* one screening day of the newest school year (vision and growth for about 1 % of the events, through
  the archive writer) and the incremental refresh that takes it in, in seconds;
* publication of the newest school year (it runs a full refresh first), in seconds;
* the annual report of that year (`schoolhealth report`: the province's, then one county's);
* every dashboard panel's SQL as the Grafana role, once per value of each of its dashboard's
  variables (the others at their first value), as p50/p95 milliseconds;
* `schoolhealth student` (the CLI's lookup by a 12-digit key prefix) for a sample of students;
* the counsellor's queue (`GET /alerts`) and risk list (`GET /risk?model=depression`) through the
  API served in this process, as counsellors of a sample of schools (their tokens, their row-level
  security, their audit rows), p50/p95 milliseconds;
* bytes per event: the archive tables' total size (indexes and TOAST included; hypertables with
  their chunks) over the events in the registry, and for the measurement tables, closed school
  years against the open one.

Alerts come from the seeded events through the alert service's own rules and store
(`models.rules.evaluate_batch`, `services.alerts.service.apply_candidates`), as the alert service
would have opened them; their cost is reported apart from the seeding rate. Risk scores are
stand-ins (a hash of the student key) written for every student and model: training the models
is not what this measures, reading the ranking is.

On TimescaleDB the closed school years go into the columnstore right after seeding, before
anything is measured, since that is where they are in production: the job
`archive.columnstore_closed_school_years` converts every chunk that ended before the 1 September
opening the current school year; here "current" is the newest seeded year (2025, the year of the
screening day), so 2022-2024 are closed and 2025 is open, whatever today's date.

The JSON goes to `bench/results/scale_N.json`; the database is dropped afterwards unless `keep`.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
from psycopg import sql

from models.contracts import BmiScreening, VisionScreening
from models.pipeline import ProcessedMessages, classify_event
from models.rules import AlertCandidate, evaluate_batch
from models.synthetic import ProvinceSpec
from services.access.users import OPERATOR_IDENTITIES, add_user
from services.alerts.service import apply_candidates
from services.devtools.seed import ArchivePublisher, import_directory
from services.devtools.stack import Postgres
from services.devtools.synthetic_files import write_province
from services.pipeline.archive_writer import write_once
from services.platform.database import bootstrap_database
from services.platform.migrate import migrate
from services.platform.settings import Settings
from services.reporting import metrics
from services.reporting.dashboards import DASHBOARDS, JSON_DIR
from services.reporting.metrics import RefreshResult, publish_year, refresh_incremental, refresh_rollups
from services.reporting.report import write_report
from services.students.archive_reader import print_student

SCHOOL_YEARS = (2022, 2023, 2024, 2025)
ARCHIVE_TABLES = ("archive.vision_screenings", "archive.growth_screenings", "archive.survey_results",
                  "archive.fitness_results", "archive.student_history", "archive.students", "archive.event_ids")
MEASUREMENT_TABLES = ("archive.vision_screenings", "archive.growth_screenings", "archive.survey_results",
                      "archive.fitness_results")
_INTERVALS = {"1m": 60, "1h": 3600, "1d": 86400}
VALUES_PER_VARIABLE = 10
# Every panel over its variables' values, this many times (a dashboard is looked at again and again):
# with one pass, a panel with four values has four runs and its p95 is their maximum, the first
# (coldest) run as often as not. The first pass's maximum is reported beside the p95.
PANEL_PASSES = 3
LOOKUP_STUDENTS = 60
COUNSELLOR_SCHOOLS = 8
REQUESTS_PER_COUNSELLOR = 15
RISK_MODELS = ("depression", "myopia_onset", "overweight")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def expand_macros(query: str, variables: dict[str, str], start: str, end: str) -> str:
    """The raw SQL Grafana's PostgreSQL datasource sends for a panel (its time macros and variables)."""

    def group(match: re.Match[str]) -> str:
        seconds = _INTERVALS[match.group(3).strip().strip("'")]
        expression = f"floor(extract(epoch from {match.group(2).strip()})/{seconds})*{seconds}"
        return expression + (' AS "time"' if match.group(1) == "Alias" else "")

    query = re.sub(r"\$__timeGroup(Alias)?\(([^,]+),\s*([^)]+)\)", group, query)
    query = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m.group(1)} BETWEEN '{start}' AND '{end}'", query)
    query = query.replace("$__timeFrom()", f"'{start}'").replace("$__timeTo()", f"'{end}'")
    for name in sorted(variables, key=len, reverse=True):
        query = query.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    if "$" in query:
        raise ValueError(f"unexpanded macro or variable in panel SQL: {query}")
    return query


def _latency(spent: list[float]) -> dict[str, Any]:
    return {"runs": len(spent), "p50_ms": round(statistics.median(spent), 2),
            "p95_ms": round(_percentile(spent, 0.95), 2), "max_ms": round(max(spent), 2)}


def _panel_latencies(settings: Settings) -> dict[str, dict[str, Any]]:
    start, end = "2022-01-01T00:00:00Z", datetime.now(UTC).isoformat()
    found: dict[str, dict[str, Any]] = {}
    with psycopg.connect(settings.pg_dsn("grafana"), autocommit=True) as conn:
        for spec in DASHBOARDS:
            data = json.loads((JSON_DIR / f"{spec.uid}.json").read_text(encoding="utf-8"))
            options: dict[str, list[str]] = {}
            for variable in data.get("templating", {}).get("list", []):
                values = [str(r[0]) for r in conn.execute(variable["query"]).fetchall()]
                options[variable["name"]] = values[:VALUES_PER_VARIABLE] or [""]
            first = {name: values[0] for name, values in options.items()}
            combinations = [first] + [first | {name: value} for name, values in options.items()
                                      for value in values[1:]]
            timings: dict[str, list[float]] = {}
            for _ in range(PANEL_PASSES):
                for variables in combinations:
                    for panel in data["panels"]:
                        for target in panel["targets"]:
                            query = expand_macros(target["rawSql"], variables, start, end)
                            began = time.perf_counter()
                            conn.execute(query).fetchall()
                            timings.setdefault(f"{spec.uid}/{panel['title']}", []).append(
                                1000 * (time.perf_counter() - began))
            for name, spent in timings.items():
                # Every pass runs the same queries: the first pass is the first share of the runs.
                first_pass = spent[:len(spent) // PANEL_PASSES]
                found[name] = _latency(spent) | {"first_pass_max_ms": round(max(first_pass), 2)}
    return found


class _AlertingPublisher(ArchivePublisher):
    """The seeding publisher, plus the alerts each batch's surveys raise, opened by the alert service's store.

    The seeded rows are submitted today, years after they were answered, and the rules open no alert
    for an observation older than 180 days at submission (a bulk import of past years). A school
    submits its surveys the day they are answered: they are evaluated as if it had. Only the
    newest school year's surveys open alerts (the earlier years' would have been worked and
    closed); nobody works this year's, so every concern raised since September is still open.
    """

    def __init__(self, settings: Settings, now: datetime) -> None:
        super().__init__(settings)
        self._dsn = settings.pg_dsn("app")
        self._now = now
        self._since = date(SCHOOL_YEARS[-1], 9, 1)
        self.candidates = 0
        self.alert_seconds = 0.0

    def flush(self) -> None:
        began = time.perf_counter()
        on_the_day = ProcessedMessages(surveys=[
            replace(item, event=item.event.model_copy(update={
                "occurred_at": datetime.combine(item.event.answered_on, dt_time(10), tzinfo=UTC)}))
            for item in self._pending.surveys if item.event.answered_on >= self._since])
        candidates = evaluate_batch(on_the_day)
        self.alert_seconds += time.perf_counter() - began
        super().flush()
        if candidates:
            began = time.perf_counter()
            self.run(self._apply(candidates))
            self.alert_seconds += time.perf_counter() - began
            self.candidates += len(candidates)

    async def _apply(self, candidates: list[AlertCandidate]) -> None:
        async with await psycopg.AsyncConnection.connect(self._dsn) as conn, conn.transaction():
            await apply_candidates(conn, candidates, now=self._now)


def _stand_in_risk_scores(settings: Settings) -> int:
    """A score per student and model (a hash of the key, not a prediction), where the API reads the ranking."""
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        cursor = conn.execute(
            "INSERT INTO ml.risk_scores (student_key, school_id, model, version, score)"
            " SELECT s.student_key, s.school_id, m.model, 'bench-stand-in',"
            " (hashtext(s.student_key || m.model)::bigint + 2147483648) / 4294967296.0"
            " FROM archive.students s CROSS JOIN unnest(%s::text[]) AS m(model)", (list(RISK_MODELS),))
        return cursor.rowcount


def _student_lookups(settings: Settings) -> dict[str, Any]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        keys = [str(r[0]) for r in conn.execute(
            "SELECT student_key FROM archive.students ORDER BY md5(student_key) LIMIT %s", (LOOKUP_STUDENTS,))]
    lines = 0

    def discard(line: str) -> None:
        nonlocal lines
        lines += 1

    spent: list[float] = []
    for key in keys:
        began = time.perf_counter()
        print_student(settings, key[:12], out=discard)
        spent.append(1000 * (time.perf_counter() - began))
    return _latency(spent) | {"lines_printed": lines, "key_prefix_digits": 12}


def _counsellor_reads(settings: Settings) -> dict[str, Any]:
    """`GET /alerts` and `GET /risk` as counsellors of the schools with the most open alerts and a sample of others."""
    import httpx

    from services.server import create_api
    from services.server.thread import serve_in_thread

    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        busiest = [str(r[0]) for r in conn.execute(
            "SELECT school_id FROM alerts.alerts GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s",
            (COUNSELLOR_SCHOOLS // 2,))]
        others = [str(r[0]) for r in conn.execute(
            "SELECT school_id FROM archive.schools WHERE NOT school_id = ANY(%s) ORDER BY md5(school_id) LIMIT %s",
            (busiest, COUNSELLOR_SCHOOLS - len(busiest)))]
        open_alerts = conn.execute("SELECT count(*) FROM alerts.alerts").fetchone()
    schools = busiest + others
    # Users of this run: a kept database is measured again (--phase measure) with the earlier ones in it.
    run = uuid.uuid4().hex[:8]
    tokens = {school: add_user(settings, f"bench-counsellor-{run}-{school}", "counsellor", schools=[school])
              for school in schools}
    queue: list[float] = []
    risk: list[float] = []
    rows = {"queue": 0, "risk": 0}
    with serve_in_thread(create_api(settings)) as base, httpx.Client(base_url=base, timeout=60) as client:
        for token in tokens.values():
            headers = {"Authorization": f"Bearer {token}"}
            for path, params, spent, name in (("/alerts", {}, queue, "queue"),
                                               ("/risk", {"model": "depression"}, risk, "risk")):
                client.get(path, headers=headers, params=params).raise_for_status()  # warm the connection
                for _ in range(REQUESTS_PER_COUNSELLOR):
                    began = time.perf_counter()
                    response = client.get(path, headers=headers, params=params)
                    spent.append(1000 * (time.perf_counter() - began))
                    response.raise_for_status()
                rows[name] += len(response.json())
    return {"schools": len(schools), "alerts_in_database": int(open_alerts[0]) if open_alerts else 0,
            "queue": _latency(queue) | {"rows_returned_last": rows["queue"]},
            "risk_list": _latency(risk) | {"rows_returned_last": rows["risk"]}}


def _reports(settings: Settings, year: int) -> dict[str, Any]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        row = conn.execute("SELECT min(county_id) FROM archive.schools").fetchone()
    county = str(row[0]) if row and row[0] is not None else None
    found: dict[str, Any] = {}
    directory = Path(tempfile.mkdtemp(prefix="schoolhealth-scale-report-"))
    try:
        for name, area in (("province", None), ("county", county)):
            began = time.perf_counter()
            path = write_report(settings, year, directory / name, county=area)
            found[name] = {"seconds": round(time.perf_counter() - began, 2), "html_bytes": path.stat().st_size}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return found


def _has_timescaledb(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


def _pause_columnstore_job(conn: psycopg.Connection[Any]) -> None:
    """The scheduled columnstore job takes today's school year as the current one, so it would close
    the benchmark's open year (2025) too: paused in the benchmark's database, which plays 2025."""
    conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                 " WHERE proc_schema = 'archive' AND proc_name = 'columnstore_closed_school_years'")


def _columnstore_closed_years(settings: Settings, opened: date) -> dict[str, Any] | None:
    """What `archive.columnstore_closed_school_years` does, with the school year that `opened` began as current."""
    with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
        if not _has_timescaledb(conn):
            return None
        _pause_columnstore_job(conn)
        chunks = [str(r[0]) for r in conn.execute(
            "SELECT show_chunks(p.table_name, older_than => %s::date) FROM archive.time_partitioned p"
            " JOIN pg_class c ON c.oid = p.table_name JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN timescaledb_information.hypertables h"
            "   ON h.hypertable_schema = n.nspname AND h.hypertable_name = c.relname"
            " WHERE h.compression_enabled", (opened,)).fetchall()]
        began = time.perf_counter()
        for chunk in chunks:
            conn.execute("CALL convert_to_columnstore(%s::regclass, if_not_columnstore => true)", (chunk,))
            conn.execute("SELECT archive.index_columnstore_chunk(%s::regclass)", (chunk,))
        # Each closed school year's chunks merged into one (0119), as the job does.
        conn.execute("CALL archive.merge_closed_school_years(%s::date)", (opened,))
        merged = conn.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = 'archive'"
                              " AND is_compressed").fetchone()
        return {"opened": opened.isoformat(), "chunks": len(chunks),
                "chunks_after_merging": int(merged[0]) if merged else None,
                "seconds": round(time.perf_counter() - began, 2)}


def _bytes_by_school_year_state(settings: Settings) -> dict[str, Any]:
    """Bytes per event of the measurement tables: closed school years (columnstore) against the open one.

    On plain PostgreSQL a closed year is stored as an open one is: one figure, `all_years`.
    """
    found: dict[str, Any] = {}
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        timescale = _has_timescaledb(conn)
        closed = {"bytes": 0, "events": 0, "bytes_before_columnstore": 0}
        opened = {"bytes": 0, "events": 0}
        plain = {"bytes": 0, "events": 0}
        for table in MEASUREMENT_TABLES:
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
                continue
            hypertable = timescale and conn.execute(
                "SELECT 1 FROM timescaledb_information.hypertables WHERE format('%%I.%%I', hypertable_schema,"
                " hypertable_name) = %s", (table,)).fetchone() is not None
            if not hypertable:
                size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()
                rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()
                plain["bytes"] += int(size[0]) if size else 0
                plain["events"] += int(rows[0]) if rows else 0
                continue
            chunks = conn.execute(
                "SELECT format('%%I.%%I', d.chunk_schema, d.chunk_name), d.total_bytes, s.compression_status,"
                " s.before_compression_total_bytes, s.after_compression_total_bytes"
                " FROM chunks_detailed_size(%s::regclass) d"
                " LEFT JOIN chunk_compression_stats(%s::regclass) s USING (chunk_schema, chunk_name)",
                (table, table)).fetchall()
            for chunk, total, status, before, after in chunks:
                rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(chunk))).fetchone()
                events = int(rows[0]) if rows else 0
                if status == "Compressed":
                    closed["bytes"] += int(after or total or 0)
                    closed["bytes_before_columnstore"] += int(before or 0)
                    closed["events"] += events
                else:
                    opened["bytes"] += int(total or 0)
                    opened["events"] += events
        registry = conn.execute("SELECT pg_total_relation_size('archive.event_ids'), count(*)"
                                " FROM archive.event_ids").fetchone()
    if registry and registry[1]:
        found["registry_bytes_per_event"] = round(int(registry[0]) / int(registry[1]), 1)

    def per_event(part: dict[str, int]) -> dict[str, Any]:
        events = part["events"]
        return part | {"bytes_per_event": round(part["bytes"] / events, 1) if events else None} | (
            {"bytes_per_event_before_columnstore": round(part["bytes_before_columnstore"] / events, 1)
             if events else None} if "bytes_before_columnstore" in part else {})

    if timescale and (closed["events"] or opened["events"]):
        found["closed_years"] = per_event(closed)
        found["open_year"] = per_event(opened)
    if plain["events"]:
        found["all_years"] = per_event(plain)
    return found


@contextmanager
def _recording_refreshes(record: list[tuple[RefreshResult, float]]) -> Iterator[None]:
    """Record the full refresh `publish_year` runs first, with its seconds (publish returns only the revision)."""
    inner: Callable[[Settings], RefreshResult] = metrics.refresh_rollups

    def refresh(settings: Settings) -> RefreshResult:
        began = time.perf_counter()
        result = inner(settings)
        record.append((result, time.perf_counter() - began))
        return result

    with mock.patch.object(metrics, "refresh_rollups", refresh):
        yield


def _rollup_rows_written(settings: Settings) -> int:
    """Rows inserted and deleted so far in the student-years (each with its results, 0117) and the
    fitness observation rows (the statistics collector's counts; a refresh's connection reports them
    when it closes, so they are read after a pause)."""
    time.sleep(1.5)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        row = conn.execute("SELECT coalesce(sum(n_tup_ins + n_tup_del), 0) FROM pg_stat_user_tables"
                           " WHERE schemaname = 'metrics' AND relname IN ('student_years', 'fitness_observations')"
                           ).fetchone()
    return int(row[0]) if row else 0


def _refresh_figures(result: RefreshResult, seconds: float) -> dict[str, Any]:
    return {"seconds": round(seconds, 2), "cells": result.cells,
            "rollup_sql_seconds": round(result.rollup_seconds, 2),
            "indicator_seconds": round(result.indicator_seconds, 2)}


def _screening_round(conn: psycopg.Connection) -> int:
    """How many screening days this benchmark already wrote into the database (a kept one is measured again)."""
    taken = 0
    while conn.execute("SELECT 1 FROM archive.event_ids WHERE event_id = %s",
                       (_day_event_id(taken, 0),)).fetchone() is not None:
        taken += 1
    return taken


def _day_event_id(day_round: int, n: int) -> str:
    # Ids of this benchmark only (the seeded ones are random UUIDs); one series per screening day.
    return f"00000000-0000-4000-8{day_round:03d}-{n:012d}"


def _screening_day(settings: Settings, share: float) -> ProcessedMessages:
    """Vision and growth screenings of one day of the newest school year for `share` of the events so far.

    A day screens the next pupils of the year, school by school, after those of the day before (from
    the first again once all were screened): as screening days go, a pupil is screened once in a
    while, not every day. (Until 0117 every day screened the same pupils, whose screenings then
    piled up on a kept database: 13 a year each after some twenty days at 1M, each read again by
    every incremental refresh.)
    """
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        day_round = _screening_round(conn)
        row = conn.execute("SELECT count(*) FROM archive.event_ids").fetchone()
        wanted = max(1, round((int(row[0]) if row else 0) * share / 2))
        pupils = conn.execute(
            "SELECT student_key, school_id, sex, birth_date FROM ("
            " SELECT y.student_key, y.school_id, st.sex, st.birth_date, count(*) OVER () AS pupils,"
            " row_number() OVER (ORDER BY y.school_id, y.student_key) - 1 AS n"
            " FROM metrics.student_years y JOIN archive.students st USING (student_key)"
            " WHERE y.school_year = %(year)s) p"
            " WHERE (n - %(first)s %% pupils + pupils) %% pupils < %(wanted)s ORDER BY n",
            {"year": SCHOOL_YEARS[-1], "first": day_round * wanted, "wanted": wanted}).fetchall()
    day = date(SCHOOL_YEARS[-1] + 1, 3, 10) + timedelta(days=day_round)
    sent = f"{day.isoformat()}T10:00:00+00:00"
    batch = ProcessedMessages()
    for n, (student, school, sex, birth) in enumerate(pupils):
        # Each later day (a kept database measured again) gives the same students other results.
        turn = n + day_round
        age = round((day - birth).days / 30.4375, 1)
        common = {"occurred_at": sent, "school_id": school, "student_key": student,
                  "submitted_by": OPERATOR_IDENTITIES[0],  # the importer's identity: every school
                  "measured_on": day.isoformat(), "sex": sex, "age_months": age}
        classify_event(VisionScreening.model_validate_json(json.dumps(common | {
            "event_id": _day_event_id(day_round, 2 * n), "schema": {"family": "vision-screening", "version": 1},
            "ucva_right": 4.8 if turn % 3 else 4.5, "ucva_left": 4.9, "se_right": -0.75 if turn % 3 else -2.0,
            "se_left": -0.5, "wears_glasses": False, "screener": "bench-screener"})), batch)
        classify_event(BmiScreening.model_validate_json(json.dumps(common | {
            "event_id": _day_event_id(day_round, 2 * n + 1),
            "schema": {"family": "bmi-screening", "version": 1},
            "height_cm": 140.0 + turn % 25, "weight_kg": 32.0 + turn % 20, "screener": "bench-screener"})), batch)
    return batch


def _bytes_per_event(settings: Settings) -> dict[str, Any]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        hypertables = {str(r[0]) for r in conn.execute(
            "SELECT format('%I.%I', hypertable_schema, hypertable_name) FROM timescaledb_information.hypertables"
        ).fetchall()} if _has_timescaledb(conn) else set()
        sizes: dict[str, int] = {}
        for table in ARCHIVE_TABLES:
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
                continue
            query = "SELECT hypertable_size(%s::regclass)" if table in hypertables else \
                "SELECT pg_total_relation_size(%s::regclass)"
            row = conn.execute(query, (table,)).fetchone()
            sizes[table] = int(row[0]) if row and row[0] is not None else 0
        row = conn.execute("SELECT count(*) FROM archive.event_ids").fetchone()
        events = int(row[0]) if row else 0
    total = sum(sizes.values())
    return {"events": events, "archive_bytes": total, "bytes_per_event": round(total / events, 1) if events else None,
            "tables": sizes}


PHASES = ("all", "seed", "measure")


def run_scale_bench(base: Settings, *, students: int, out: Path, timescaledb: bool = False, keep: bool = False,
                    label: str = "", phase: str = "all") -> dict[str, Any]:
    """Seed and measure (`all`), or only seed and keep the database (`seed`), or measure a database a
    `seed` run kept (`measure`: the newest migrations are applied, the seed's figures are carried over
    from `out`, written by that run). Seeding a million students takes over an hour: splitting lets
    the measurements be taken again, on newer code, without seeding again."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {', '.join(PHASES)}, not {phase!r}")
    tag = f"scale{students}{'ts' if timescaledb else ''}"
    settings = base.model_copy(update={"pg_database": f"schoolhealth_bench_{tag}", "topic_prefix": f"bench{tag}."})
    superuser = Postgres(base)._superuser_dsn()
    result: dict[str, Any] = {
        "benchmark": "scale", "label": label, "students": students, "school_years": list(SCHOOL_YEARS),
        "backend": "timescaledb" if timescaledb else "postgresql",
        "started_at": datetime.now(UTC).isoformat(), "machine": {"python": platform.python_version(),
                                                                "processor": platform.machine()},
    }
    if phase == "measure":
        seeded_run = json.loads(out.read_text(encoding="utf-8"))
        if seeded_run.get("students") != students or seeded_run.get("backend") != result["backend"] \
                or "storage" not in seeded_run:
            raise ValueError(f"{out} is not a finished seed of {students} students on {result['backend']}")
        with psycopg.connect(superuser, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.pg_database,)).fetchone() is None:
                raise ValueError(f"database {settings.pg_database} is gone: seed it again (--phase seed)")
        migrate(settings)
        result |= {key: seeded_run[key] for key in ("seed", "columnstore", "storage", "risk_scores")}
        result["seeded"] = seeded_run.get("seeded") or {
            "started_at": seeded_run["started_at"], "finished_at": seeded_run.get("seeded_at"),
            "label": seeded_run.get("label", "")}
    else:
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(settings.pg_database)))
        bootstrap_database(settings, superuser, timescaledb=timescaledb)
        migrate(settings)
    keep = keep or phase != "all"  # a split run is measured again
    result["phase"] = phase
    directory = Path(tempfile.mkdtemp(prefix="schoolhealth-scale-"))
    try:
        if phase != "measure":
            _seed(settings, students, directory, result)
            result["seeded_at"] = datetime.now(UTC).isoformat()
        if phase != "seed":
            _measure(settings, result)
        result["finished_at"] = datetime.now(UTC).isoformat()
    except BaseException as stopped:
        # Interrupted (a deadline's SIGINT) or failed: what was measured so far is still written,
        # marked unfinished (no `finished_at`), and the error goes on.
        result["stopped"] = {"at": datetime.now(UTC).isoformat(), "by": type(stopped).__name__}
        raise
    finally:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        shutil.rmtree(directory, ignore_errors=True)
        if not keep:
            with psycopg.connect(superuser, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(settings.pg_database)))
    return result


def _seed(settings: Settings, students: int, directory: Path, result: dict[str, Any]) -> None:
    began = time.perf_counter()
    write_province(ProvinceSpec(students=students, seed=20251, school_years=SCHOOL_YEARS), directory)
    generated = time.perf_counter() - began
    publisher = _AlertingPublisher(settings, datetime.now(UTC))
    began = time.perf_counter()
    try:
        stats = import_directory(settings, directory, publisher=publisher)
    finally:
        publisher.close()
    seeded = time.perf_counter() - began - publisher.alert_seconds
    events = sum(stats.accepted.values())
    result["seed"] = {"generate_seconds": round(generated, 2), "import_seconds": round(seeded, 2),
                      "events": events, "rejected": sum(stats.rejected.values()),
                      "events_per_second": round(events / seeded, 1),
                      "alert_candidates": publisher.candidates, "alert_seconds": round(publisher.alert_seconds, 2)}
    shutil.rmtree(directory, ignore_errors=True)
    result["columnstore"] = _columnstore_closed_years(settings, date(SCHOOL_YEARS[-1], 9, 1))
    # Storage as seeded (after the columnstore job): measured first, so that a run stopped by a
    # deadline still has it.
    result["storage"] = _bytes_per_event(settings) | {"by_school_year_state": _bytes_by_school_year_state(settings)}
    began = time.perf_counter()
    result["risk_scores"] = {"stand_in_rows": _stand_in_risk_scores(settings),
                             "seconds": round(time.perf_counter() - began, 2)}


def screening_day_refresh(settings: Settings) -> dict[str, Any]:
    """One more screening day (1 % of the events) through the archive writer, then the incremental
    refresh that takes it in: its figures, the day's events and the rollup rows written."""
    batch = _screening_day(settings, 0.01)
    began = time.perf_counter()
    write_once(settings.pg_dsn("app"), batch)
    written = time.perf_counter() - began
    rows_before = _rollup_rows_written(settings)
    began = time.perf_counter()
    incremental = refresh_incremental(settings)
    return _refresh_figures(incremental, time.perf_counter() - began) | {
        "new_events": len(batch.vision) + len(batch.growth), "write_seconds": round(written, 2),
        "mode": incremental.mode, "rollup_years": incremental.rollup_years, "live_years": incremental.live_years,
        "rollup_rows_written": _rollup_rows_written(settings) - rows_before}


def _measure(settings: Settings, result: dict[str, Any]) -> None:
    with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
        if _has_timescaledb(conn):
            _pause_columnstore_job(conn)  # a kept seed's database, from before the job was paused
    began = time.perf_counter()
    full = refresh_rollups(settings)
    result["full_refresh"] = _refresh_figures(full, time.perf_counter() - began)

    result["incremental_refresh"] = screening_day_refresh(settings)

    refreshes: list[tuple[RefreshResult, float]] = []
    began = time.perf_counter()
    with _recording_refreshes(refreshes):
        revision = publish_year(settings, SCHOOL_YEARS[-1])
    seconds = time.perf_counter() - began
    result["publish"] = {"seconds": round(seconds, 2), "school_year": SCHOOL_YEARS[-1], "revision": revision}
    if refreshes:
        refreshed, refresh_seconds = refreshes[0]
        result["publish"] |= {"its_full_refresh": _refresh_figures(refreshed, refresh_seconds),
                              "freeze_seconds": round(seconds - refresh_seconds, 2)}
    result["report"] = _reports(settings, SCHOOL_YEARS[-1])

    result["panels"] = _panel_latencies(settings)
    result["student_lookup"] = _student_lookups(settings)
    result["counsellor"] = _counsellor_reads(settings)
