"""The archive on TimescaleDB and on plain PostgreSQL (issue 13): the same names, the same school
scoping, and the TimescaleDB features where the extension exists, with their policies run
explicitly (background jobs fail on some PostgreSQL minors, so no test waits for them)."""

from __future__ import annotations

import shutil
import socket
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import errors, sql

from services.access.session import api_role
from services.access.users import add_user, hash_token
from services.devtools.stack import Postgres
from services.platform.database import bootstrap_database
from services.platform.migrate import MigrationError, migrate
from services.platform.settings import Settings
from services.platform.timescaledb import columnstore_closed_school_years
from services.reporting.metrics import refresh_rollups
from tests import factories
from tests.integration.archive_writes import write_classified

pytestmark = pytest.mark.integration

SCHOOLS = ("SA01", "SB01")
# Two closed school years (2024-25, 2025-26) and the current one as of December 2026; the tests
# compute "closed" from today's date, as the job does, so they hold whatever the date.
DAYS = (date(2024, 10, 10), date(2025, 3, 20), date(2025, 10, 15), date(2026, 5, 11),
        date(2026, 9, 21), date(2026, 11, 5))
PER_SCHOOL = 24
MEASUREMENTS = ("archive.vision_screenings", "archive.growth_screenings", "archive.survey_results")


def _events() -> list[Any]:
    events: list[Any] = []
    for school_number, school in enumerate(SCHOOLS):
        for i in range(PER_SCHOOL):
            n = school_number * 1000 + i
            day = DAYS[i % len(DAYS)].isoformat()
            at = f"{day}T10:00:00+08:00"
            events.append(factories.bmi(n, school, measured_on=day, occurred_at=at, height_cm=130.0 + i / 2))
            events.append(factories.vision(n, school, measured_on=day, occurred_at=at))
            events.append(factories.survey(n, school, answered_on=day, occurred_at=at))
    return events


def _rows_as(settings: Settings, token: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(api_role(settings))))
        conn.execute("SELECT set_config('schoolhealth.token_sha256', %s, false)", (hash_token(token),))
        return conn.execute(query.encode()).fetchall()


def _school_year_opened() -> date:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return date(today.year if today.month >= 9 else today.year - 1, 9, 1)


def _pause_jobs(settings: Settings) -> dict[str, int]:
    """Stop the scheduler from running our jobs during the test; return their ids by procedure."""
    with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
        jobs = conn.execute("SELECT job_id, proc_name, hypertable_name FROM timescaledb_information.jobs"
                            " WHERE job_id >= 1000").fetchall()
        for job_id, _, _ in jobs:
            conn.execute("SELECT alter_job(%s, scheduled => false)", (job_id,))
    return {f"{proc}:{table or ''}": job_id for job_id, proc, table in jobs}


def _fingerprint(settings: Settings) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        return conn.execute(
            "SELECT 'growth', school_id, count(*), sum(height_cm), min(measured_on), max(measured_on)"
            " FROM archive.growth_current GROUP BY 2"
            " UNION ALL SELECT 'vision', school_id, count(*), sum(ucva_left), min(measured_on), max(measured_on)"
            " FROM archive.vision_current GROUP BY 2"
            " UNION ALL SELECT 'survey', school_id, count(*), sum(total), min(answered_on), max(answered_on)"
            " FROM archive.survey_current GROUP BY 2 ORDER BY 1, 2").fetchall()


# Tests of TimescaleDB's features run on that backend only (skipped with the reason where missing).
only_timescaledb = pytest.mark.parametrize("backend", ["timescaledb"], indirect=True)


def test_school_scoping_holds_on_both_backends(isolated: Settings, backend: str) -> None:
    """The API's role sees exactly the schools and kinds of record its user serves, through the
    views; the measurement tables themselves are closed to it and to Grafana. On TimescaleDB the
    closed school years are in the columnstore first, so scoping is checked on compressed chunks too."""
    settings = isolated
    write_classified(settings, _events())
    columnstore = columnstore_closed_school_years(settings)
    if backend == "timescaledb":
        assert columnstore is not None and 0 < columnstore.chunks_in_columnstore < columnstore.chunks
    else:
        assert columnstore is None

    users = {
        "counsellor_a": add_user(settings, "c-a", "counsellor", schools=["SA01"]),
        "doctor_a": add_user(settings, "d-a", "school_doctor", schools=["SA01"]),
        "doctor_b": add_user(settings, "d-b", "school_doctor", schools=["SB01"]),
        "lead_b": add_user(settings, "c-lead-b", "counsellor", lead_schools=["SB01"]),
        "county": add_user(settings, "co-1", "county_officer", schools=["SA01", "SB01"]),
        "admin": add_user(settings, "ad-1", "admin"),
        "office": add_user(settings, "ho-1", "health_office"),
        "nobody": "not-a-token",
    }
    query = ("SELECT 'growth', school_id, count(*) FROM archive.growth_current GROUP BY 2"
             " UNION ALL SELECT 'vision', school_id, count(*) FROM archive.vision_current GROUP BY 2"
             " UNION ALL SELECT 'survey', school_id, count(*) FROM archive.survey_current GROUP BY 2 ORDER BY 1, 2")
    n = PER_SCHOOL
    expected = {
        "counsellor_a": [("survey", "SA01", n)],
        "doctor_a": [("growth", "SA01", n), ("vision", "SA01", n)],
        "doctor_b": [("growth", "SB01", n), ("vision", "SB01", n)],
        # A school's lead sees every kind of record of that school.
        "lead_b": [("growth", "SB01", n), ("survey", "SB01", n), ("vision", "SB01", n)],
        "county": [(kind, school, n) for kind in ("growth", "survey", "vision") for school in SCHOOLS],
        "admin": [(kind, school, n) for kind in ("growth", "survey", "vision") for school in SCHOOLS],
        "office": [],
        "nobody": [],
    }
    for user, token in users.items():
        assert _rows_as(settings, token, query) == expected[user], user
    # A filter in the caller's query cannot widen the scope (the views are security barriers).
    assert _rows_as(settings, users["counsellor_a"],
                    "SELECT count(*) FROM archive.survey_current WHERE school_id = 'SB01'") == [(0,)]
    for token in (users["admin"], users["counsellor_a"]):
        for table in MEASUREMENTS:
            with pytest.raises(errors.InsufficientPrivilege):
                _rows_as(settings, token, f"SELECT count(*) FROM {table}")
    with psycopg.connect(settings.pg_dsn("grafana"), autocommit=True) as conn:
        for relation in (*MEASUREMENTS, "archive.growth_current", "metrics.growth_daily"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {relation} LIMIT 1".encode())
    # The worker's role and the owner see everything.
    for role in ("app", "admin"):
        with psycopg.connect(settings.pg_dsn(role)) as conn:
            assert conn.execute(query.encode()).fetchall() == expected["admin"], role


def test_daily_rollups_match_the_archive_after_a_refresh(isolated: Settings, backend: str) -> None:
    """The data-quality dailies (continuous aggregates on TimescaleDB, tables otherwise: 0115)
    equal a direct count of the archive once refreshed, also after rows arrive for days already
    materialized; on TimescaleDB the refresh is the policy's job, run explicitly."""
    settings = isolated
    direct = ("SELECT measured_on, school_id, screener, count(*), count(*) FILTER (WHERE flags <> '{}')"
              " FROM archive.growth_screenings GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    rollup = ("SELECT day, school_id, screener, measurements, flagged FROM metrics.growth_daily ORDER BY 1, 2, 3")
    jobs = _pause_jobs(settings) if backend == "timescaledb" else {}

    def refresh() -> None:
        if backend == "timescaledb":
            with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
                for name, job_id in jobs.items():
                    if name.startswith("policy_refresh_continuous_aggregate"):
                        conn.execute("CALL run_job(%s)", (job_id,))
        else:
            with psycopg.connect(settings.pg_dsn("app")) as conn:
                conn.execute("SELECT metrics.refresh_rollups()")

    write_classified(settings, _events())
    refresh()
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        first = conn.execute(direct).fetchall()
        assert first and conn.execute(rollup).fetchall() == first
    # More measurements on a day already materialized: the rollup lags until the next refresh.
    late = [factories.bmi(5000 + i, "SA01", measured_on=DAYS[0].isoformat(), weight_kg=30.0 + i)
            for i in range(5)]
    write_classified(settings, late)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        now_direct = conn.execute(direct).fetchall()
        assert now_direct != first
        assert conn.execute(rollup).fetchall() == first
    refresh()
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert conn.execute(rollup).fetchall() == now_direct
    # The application's refresh (worker timer, `schoolhealth publish`) refreshes both kinds.
    write_classified(settings, [factories.bmi(6000, "SB01", measured_on=DAYS[1].isoformat())])
    refresh_rollups(settings)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert conn.execute(rollup).fetchall() == conn.execute(direct).fetchall()


@only_timescaledb
def test_hypertables_columnstore_aggregates_and_jobs_are_in_place(isolated: Settings) -> None:
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        hypertables = conn.execute(
            "SELECT h.hypertable_name, h.compression_enabled, d.column_name, d.time_interval"
            " FROM timescaledb_information.hypertables h JOIN timescaledb_information.dimensions d"
            "   USING (hypertable_schema, hypertable_name)"
            " WHERE h.hypertable_schema = 'archive' AND h.hypertable_name IN"
            "   (SELECT c.relname FROM archive.time_partitioned p JOIN pg_class c ON c.oid = p.table_name)"
            " AND h.hypertable_name IN ('growth_screenings', 'survey_results', 'vision_screenings')"
            " ORDER BY 1").fetchall()
        settings = conn.execute(
            "SELECT hypertable::text, segmentby, orderby FROM timescaledb_information.hypertable_columnstore_settings"
            " WHERE hypertable::text IN ('archive.growth_screenings', 'archive.survey_results',"
            " 'archive.vision_screenings') ORDER BY 1").fetchall()
        aggregates = conn.execute(
            "SELECT view_name, hypertable_name, materialized_only"
            " FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'metrics' ORDER BY 1").fetchall()
        jobs = conn.execute(
            "SELECT proc_schema, proc_name, schedule_interval, coalesce(hypertable_name, ''), config ->> 'end_offset'"
            " FROM timescaledb_information.jobs WHERE job_id >= 1000 ORDER BY 2, 4").fetchall()
        kinds = conn.execute("SELECT c.relname, c.relkind, c.relrowsecurity FROM pg_class c"
                             " WHERE c.oid IN ('archive.growth_screenings'::regclass, 'metrics.growth_daily'::regclass,"
                             " 'archive.students'::regclass)").fetchall()
    assert hypertables == [
        ("growth_screenings", True, "measured_on", timedelta(days=28)),
        ("survey_results", True, "answered_on", timedelta(days=28)),
        ("vision_screenings", True, "measured_on", timedelta(days=28)),
    ]
    assert settings == [
        ("archive.growth_screenings", "school_id", "student_key,measured_on"),
        ("archive.survey_results", "school_id", "student_key,answered_on"),
        ("archive.vision_screenings", "school_id", "student_key,measured_on"),
    ]
    # Real-time aggregation on: rows newer than the last refresh count at once.
    assert aggregates == [
        ("growth_daily", "growth_screenings", False), ("vision_daily", "vision_screenings", False)]
    assert jobs[0] == ("archive", "columnstore_closed_school_years", timedelta(days=1), "", None)
    assert [job[3] for job in jobs[1:]] == ["growth_daily", "vision_daily"]
    assert all(job[:3] == ("_timescaledb_functions", "policy_refresh_continuous_aggregate", timedelta(hours=1))
               and job[4] == "1 day" for job in jobs[1:]) and len(jobs) == 3
    # No row-level security where TimescaleDB refuses it; kept on the tables that stay plain.
    assert sorted(kinds) == [("growth_daily", "v", False), ("growth_screenings", "r", False), ("students", "r", True)]



@only_timescaledb
def test_columnstore_job_converts_closed_school_years_and_writes_still_land(isolated: Settings) -> None:
    """The job puts every chunk that ends by the 1 September opening the current school year into
    the columnstore and nothing else; queries answer the same; a redelivered batch stays stored
    once and a late correction of a closed year lands in a compressed chunk and hides its original."""
    settings = isolated
    jobs = _pause_jobs(settings)
    events = _events()
    write_classified(settings, events)
    chunks = ("SELECT hypertable_name, range_end::date, is_compressed FROM timescaledb_information.chunks"
              " WHERE hypertable_schema = 'archive' ORDER BY 1, 2")
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        before = conn.execute(chunks).fetchall()
    assert before and not any(compressed for *_, compressed in before)
    fingerprint = _fingerprint(settings)

    with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
        conn.execute("CALL run_job(%s)", (jobs["columnstore_closed_school_years:"],))
        after = conn.execute(chunks).fetchall()
    opened = _school_year_opened()
    assert [(table, end, end <= opened) for table, end, _ in before] == after
    assert any(compressed for *_, compressed in after) and not all(compressed for *_, compressed in after)
    assert _fingerprint(settings) == fingerprint

    # Redelivery of the whole batch (the worker's at-least-once path) into compressed chunks.
    write_classified(settings, events)
    assert _fingerprint(settings) == fingerprint
    # A correction of a closed-year growth measurement: stored, and the original is no longer current.
    original = next(e for e in events if e.schema_.family == "bmi-screening" and e.measured_on < opened)
    correction = factories.bmi(9999, original.school_id, measured_on=original.measured_on.isoformat(),
                               occurred_at=f"{original.measured_on}T11:00:00+08:00",
                               student_key=original.student_key, height_cm=151.0,
                               supersedes=str(original.event_id))
    write_classified(settings, [correction])
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        current = conn.execute("SELECT event_id, height_cm FROM archive.growth_current WHERE student_key = %s",
                               (original.student_key,)).fetchall()
        stored = conn.execute("SELECT count(*) FROM archive.growth_screenings WHERE student_key = %s",
                              (original.student_key,)).fetchone()
        in_columnstore = conn.execute(
            "SELECT is_compressed FROM timescaledb_information.chunks WHERE hypertable_name = 'growth_screenings'"
            " AND %s::date >= range_start::date AND %s::date < range_end::date",
            (original.measured_on, original.measured_on)).fetchone()
    assert current == [(correction.event_id, correction.height_cm)]
    assert stored == (2,)
    assert in_columnstore == (True,)


def _relations(dsn: str) -> set[tuple[str, str, str, str]]:
    """(schema, relation, column, type) of everything the project defines, tables and views alike."""
    with psycopg.connect(dsn) as conn:
        return {tuple(row) for row in conn.execute(
            "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            " WHERE c.relkind IN ('r', 'v', 'm', 'p')"
            " AND n.nspname IN ('archive', 'roster', 'ops', 'auth', 'alerts', 'audit', 'ml', 'metrics', 'reporting')"
        ).fetchall()}


def test_same_tables_views_and_columns_on_both_backends(stack: Settings, unique: str,
                                                        timescaledb_missing: str | None) -> None:
    if timescaledb_missing:
        pytest.skip(timescaledb_missing)
    superuser = Postgres(stack)._superuser_dsn()
    found = {}
    for backend in ("postgresql", "timescaledb"):
        settings = stack.model_copy(update={"pg_database": f"schoolhealth_t_{unique}_{backend[:2]}"})
        bootstrap_database(settings, superuser, timescaledb=backend == "timescaledb")
        try:
            migrate(settings)
            found[backend] = _relations(settings.pg_dsn("admin"))
        finally:
            with psycopg.connect(superuser, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(settings.pg_database)))
    assert found["postgresql"] == found["timescaledb"]
    assert ("metrics", "growth_daily", "day", "date") in found["timescaledb"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_migrations_accept_the_revised_files_earlier_text_only(isolated: Settings) -> None:
    """0001 and 0020 lost their TimescaleDB branches in issue 13; databases migrated with the earlier
    text (plain PostgreSQL, where the branch did nothing) still migrate; any other edit is refused."""
    old_0001 = "a58306b89488feae340ef04b64dfaf40c9a54a9fcce704f8a25dec9f74203091"
    with psycopg.connect(isolated.pg_dsn("admin"), autocommit=True) as conn:
        conn.execute("UPDATE public.schema_migrations SET checksum = %s WHERE version = '0001_archive'", (old_0001,))
        migrate(isolated)
        conn.execute("UPDATE public.schema_migrations SET checksum = %s WHERE version = '0001_archive'", ("0" * 64,))
        with pytest.raises(MigrationError, match="0001_archive was edited"):
            migrate(isolated)


def test_stack_up_adopts_timescaledb_installed_after_the_cluster(stack: Settings,
                                                                 timescaledb_missing: str | None) -> None:
    """A cluster created before TimescaleDB was installed, with a migrated archive holding data:
    `stack up` adds the preload, restarts, creates the extension and converts the archive in place."""
    if timescaledb_missing and "not installed" in timescaledb_missing:
        pytest.skip(timescaledb_missing)
    state = Path(tempfile.mkdtemp(prefix="schoolhealth-late-timescaledb-"))
    state.chmod(0o755)  # the `postgres` user runs the cluster below it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = stack.model_copy(update={"state_dir": state, "pg_port": port, "pg_database": "schoolhealth"})
    postgres = Postgres(settings)
    bindir = postgres.ensure_binaries()
    postgres._initdb(bindir, timescaledb=False)  # as `stack up` did before TimescaleDB was installed
    try:
        postgres._pg_ctl(bindir, "start", 60)
        bootstrap_database(settings, postgres._superuser_dsn(), timescaledb=False)
        migrate(settings)
        write_classified(settings, _events())
        fingerprint = _fingerprint(settings)
        assert "plain PostgreSQL schema" in postgres.status().detail

        postgres.up()
        with psycopg.connect(settings.pg_dsn("admin")) as conn:
            hypertables = conn.execute("SELECT hypertable_name, compression_enabled"
                                       " FROM timescaledb_information.hypertables ORDER BY 1").fetchall()
            aggregates = conn.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates"
                                      " ORDER BY 1").fetchall()
            chunks = conn.execute("SELECT count(*) FROM timescaledb_information.chunks").fetchone()
        assert hypertables == [("fitness_results", True), ("growth_screenings", True), ("survey_results", True),
                               ("vision_screenings", True)]
        assert aggregates == [("growth_daily",), ("vision_daily",)]
        assert chunks is not None and chunks[0] > 0  # the rows moved into chunks
        assert _fingerprint(settings) == fingerprint
        detail = postgres.status().detail
        assert "TimescaleDB 2." in detail and "4 hypertables (4 with columnstore" in detail, detail
        # The reporting view over the dailies was recreated and still answers Grafana.
        with psycopg.connect(settings.pg_dsn("grafana")) as conn:
            assert conn.execute("SELECT count(*) FROM reporting.dq_measurements").fetchone() != (0,)

        postgres.up()  # idempotent: no second preload line, nothing converted twice
        config = (postgres.data / "postgresql.conf").read_text()
        assert config.count("TimescaleDB installed after this cluster was created") == 1
    finally:
        postgres.down()
        shutil.rmtree(state, ignore_errors=True)


def test_every_view_over_a_measurement_table_applies_the_school_scope(isolated: Settings) -> None:
    """The measurement tables have no row-level security (TimescaleDB refuses it with columnstore):
    any view the API's role may read that reads one of them must be a security barrier running with
    its owner's rights and carry the school scope, or it would show every school (a later migration
    recreating a view with `security_invoker` or without the scope is caught here)."""
    api = api_role(isolated)
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        views = conn.execute(
            "SELECT DISTINCT v.oid::regclass::text, coalesce(v.reloptions, '{}'), pg_get_viewdef(v.oid)"
            " FROM pg_class v JOIN pg_rewrite r ON r.ev_class = v.oid"
            " JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass"
            " JOIN pg_class t ON t.oid = d.refobjid"
            " WHERE v.relkind = 'v' AND has_table_privilege(%s, v.oid, 'SELECT')"
            "   AND t.relkind IN ('r', 'p') AND NOT t.relrowsecurity AND t.relnamespace = 'archive'::regnamespace"
            "   AND t.oid IN (SELECT p.table_name FROM archive.time_partitioned p)"
            " ORDER BY 1", (api,)).fetchall()
    assert {name for name, _, _ in views} >= {"archive.growth_current", "archive.vision_current",
                                              "archive.survey_current"}
    for name, options, definition in views:
        assert "security_barrier=true" in options, name
        assert not any(option.startswith("security_invoker=true") for option in options), name
        assert "auth.visible_schools()" in definition and "auth.lead_schools()" in definition, name
