"""`schoolhealth bench scale --students N`: what seeding, refreshing, publishing and reading cost at size N.

A fresh database is seeded with N students over four school years through the worker's path
(`services.devtools.seed`: the importer's validation, the classification, the archive writer; no
Kafka). Then it measures, one after another:

* seeding: events archived per second (generation of the CSV files excluded, reported apart);
* the full refresh (`schoolhealth refresh --full`) in seconds;
* one screening day of the newest school year (vision and growth for about 1 % of the events, through
  the archive writer) and the incremental refresh that takes it in, in seconds;
* publication of the newest school year (it runs a full refresh first), in seconds;
* every dashboard panel's SQL as the Grafana role, once per value of each of its dashboard's
  variables (the others at their first value), as p50/p95 milliseconds;
* bytes per event: the archive tables' total size (indexes and TOAST included; hypertables with
  their chunks) over the events in the registry.

The JSON goes to `bench/results/scale_N.json`; the database is dropped afterwards unless `keep`.
"""

from __future__ import annotations

import asyncio
import json
import platform
import re
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from models.contracts import BmiScreening, VisionScreening
from models.pipeline import ProcessedMessages, classify_event
from models.synthetic import ProvinceSpec
from services.access.users import OPERATOR_IDENTITIES
from services.devtools.seed import import_directory
from services.devtools.stack import Postgres
from services.devtools.synthetic_files import write_province
from services.pipeline.archive_writer import ArchiveWriter
from services.platform.database import bootstrap_database
from services.platform.migrate import migrate
from services.platform.settings import Settings
from services.reporting.dashboards import DASHBOARDS, JSON_DIR
from services.reporting.metrics import publish_year, refresh_incremental, refresh_rollups

SCHOOL_YEARS = (2022, 2023, 2024, 2025)
ARCHIVE_TABLES = ("archive.vision_screenings", "archive.growth_screenings", "archive.survey_results",
                  "archive.fitness_results", "archive.student_history", "archive.students", "archive.event_ids")
_INTERVALS = {"1m": 60, "1h": 3600, "1d": 86400}
VALUES_PER_VARIABLE = 10


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
            for variables in combinations:
                for panel in data["panels"]:
                    for target in panel["targets"]:
                        query = expand_macros(target["rawSql"], variables, start, end)
                        began = time.perf_counter()
                        conn.execute(query).fetchall()
                        timings.setdefault(f"{spec.uid}/{panel['title']}", []).append(
                            1000 * (time.perf_counter() - began))
            for name, spent in timings.items():
                found[name] = {"runs": len(spent), "p50_ms": round(statistics.median(spent), 2),
                               "p95_ms": round(_percentile(spent, 0.95), 2), "max_ms": round(max(spent), 2)}
    return found


def _screening_day(settings: Settings, share: float) -> ProcessedMessages:
    """Vision and growth screenings of one day of the newest school year for `share` of the events so far."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        row = conn.execute("SELECT count(*) FROM archive.event_ids").fetchone()
        wanted = max(1, round((int(row[0]) if row else 0) * share / 2))
        pupils = conn.execute(
            "SELECT y.student_key, y.school_id, st.sex, st.birth_date FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key) WHERE y.school_year = %s"
            " ORDER BY y.school_id, y.student_key LIMIT %s", (SCHOOL_YEARS[-1], wanted)).fetchall()
    day = date(SCHOOL_YEARS[-1] + 1, 3, 10)
    sent = f"{day.isoformat()}T10:00:00+00:00"
    batch = ProcessedMessages()
    for n, (student, school, sex, birth) in enumerate(pupils):
        # Ids of this benchmark only (the seeded ones are random UUIDs).
        age = round((day - birth).days / 30.4375, 1)
        common = {"occurred_at": sent, "school_id": school, "student_key": student,
                  "submitted_by": OPERATOR_IDENTITIES[0],  # the importer's identity: every school
                  "measured_on": day.isoformat(), "sex": sex, "age_months": age}
        classify_event(VisionScreening.model_validate_json(json.dumps(common | {
            "event_id": f"00000000-0000-4000-8000-{2 * n:012d}", "schema": {"family": "vision-screening", "version": 1},
            "ucva_right": 4.8 if n % 3 else 4.5, "ucva_left": 4.9, "se_right": -0.75 if n % 3 else -2.0,
            "se_left": -0.5, "wears_glasses": False, "screener": "bench-screener"})), batch)
        classify_event(BmiScreening.model_validate_json(json.dumps(common | {
            "event_id": f"00000000-0000-4000-8000-{2 * n + 1:012d}",
            "schema": {"family": "bmi-screening", "version": 1},
            "height_cm": 140.0 + n % 25, "weight_kg": 32.0 + n % 20, "screener": "bench-screener"})), batch)
    return batch


def _write(settings: Settings, batch: ProcessedMessages) -> None:
    async def write() -> None:
        writer = ArchiveWriter(settings.pg_dsn("app"))
        try:
            await writer.write(batch, [])
        finally:
            await writer.close()

    asyncio.run(write())


def _bytes_per_event(settings: Settings) -> dict[str, Any]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        hypertables = {str(r[0]) for r in conn.execute(
            "SELECT format('%I.%I', hypertable_schema, hypertable_name) FROM timescaledb_information.hypertables"
        ).fetchall()} if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() else set()
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


def run_scale_bench(base: Settings, *, students: int, out: Path, timescaledb: bool = False, keep: bool = False,
                    label: str = "") -> dict[str, Any]:
    tag = f"scale{students}{'ts' if timescaledb else ''}"
    settings = base.model_copy(update={"pg_database": f"schoolhealth_bench_{tag}", "topic_prefix": f"bench{tag}."})
    superuser = Postgres(base)._superuser_dsn()
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(settings.pg_database)))
    bootstrap_database(settings, superuser, timescaledb=timescaledb)
    migrate(settings)
    result: dict[str, Any] = {
        "benchmark": "scale", "label": label, "students": students, "school_years": list(SCHOOL_YEARS),
        "backend": "timescaledb" if timescaledb else "postgresql",
        "started_at": datetime.now(UTC).isoformat(), "machine": {"python": platform.python_version(),
                                                                "processor": platform.machine()},
    }
    try:
        directory = Path(tempfile.mkdtemp(prefix="schoolhealth-scale-"))
        began = time.perf_counter()
        write_province(ProvinceSpec(students=students, seed=20251, school_years=SCHOOL_YEARS), directory)
        generated = time.perf_counter() - began
        began = time.perf_counter()
        stats = import_directory(settings, directory)
        seeded = time.perf_counter() - began
        events = sum(stats.accepted.values())
        result["seed"] = {"generate_seconds": round(generated, 2), "import_seconds": round(seeded, 2),
                          "events": events, "rejected": sum(stats.rejected.values()),
                          "events_per_second": round(events / seeded, 1)}

        began = time.perf_counter()
        full = refresh_rollups(settings)
        result["full_refresh"] = {"seconds": round(time.perf_counter() - began, 2), "cells": full.cells}

        batch = _screening_day(settings, 0.01)
        day_events = len(batch.vision) + len(batch.growth)
        began = time.perf_counter()
        _write(settings, batch)
        written = time.perf_counter() - began
        began = time.perf_counter()
        incremental = refresh_incremental(settings)
        result["incremental_refresh"] = {
            "new_events": day_events, "write_seconds": round(written, 2),
            "seconds": round(time.perf_counter() - began, 2), "mode": incremental.mode,
            "rollup_years": incremental.rollup_years, "live_years": incremental.live_years}

        began = time.perf_counter()
        revision = publish_year(settings, SCHOOL_YEARS[-1])
        result["publish"] = {"seconds": round(time.perf_counter() - began, 2), "school_year": SCHOOL_YEARS[-1],
                             "revision": revision}

        result["panels"] = _panel_latencies(settings)
        result["storage"] = _bytes_per_event(settings)
        result["finished_at"] = datetime.now(UTC).isoformat()
    finally:
        if not keep:
            with psycopg.connect(superuser, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(settings.pg_database)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result
