"""archive.fitness_results like the other measurement tables (issue 13's design), on both backends:
school scoping in security-barrier views instead of row-level security, columnstore of closed
school years on TimescaleDB, and the graduation-year scores of archive.fitness_graduation
against models.fitness computed here in Python (the retest rule, missing years, a repeated grade,
an exempt final year, a senior graduate below 50)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import errors, sql

from models.contracts import FitnessTest
from models.fitness import (
    ITEM_INFO,
    FitnessResult,
    graduation_below_minimum,
    graduation_score,
    item_thresholds,
    items_for,
    score_fitness_event,
    stage_of,
    year_attempt,
)
from models.identity import event_id_for
from models.school_year import school_year
from services.access.session import api_role
from services.access.users import add_user, hash_token
from services.platform.settings import Settings
from services.platform.timescaledb import columnstore_closed_school_years
from tests import factories
from tests.integration.archive_writes import write_classified

pytestmark = pytest.mark.integration

SCORE_FOR = {"excellent": 95, "good": 85, "pass": 70, "fail": 40, "poor": 20}


def _test(student: str, school: str, *, grade: int, sex: str, on: date, quality: str = "good",
          attempt: str = "first", drop: str | None = None, exempt: bool = False) -> FitnessTest:
    """A test whose every item scores the level of `quality` (from the item tables themselves)."""
    values: dict[str, Any] = {}
    if not exempt:
        for item in items_for(sex, grade):  # type: ignore[arg-type]
            if item == drop:
                continue
            levels = item_thresholds(item, sex, grade)  # type: ignore[arg-type]
            value = float(next(t for s, t in levels if s <= SCORE_FOR[quality]))
            whole = value.is_integer() and ITEM_INFO[item].unit != "s"
            values[ITEM_INFO[item].field] = int(value) if whole else value
    fields = {
        "event_id": str(event_id_for("test-fitness", student, school, on.isoformat(), attempt, quality, str(drop))),
        "schema": {"family": "fitness-test", "version": 1}, "occurred_at": f"{on.isoformat()}T10:00:00+08:00",
        "school_id": school, "student_key": factories.key(student),
        "submitted_by": "fitness-importer",  # the operator's identity: every school (0044)
        "measured_on": on,
        "sex": sex, "grade": grade, "attempt": attempt, "screener": "pe-1", "height_cm": 160.0, "weight_kg": 50.0,
        **values, **({"exempt": True, "exemption_reason": "illness"} if exempt else {}),
    }
    return FitnessTest.model_validate_json(json.dumps(fields, default=str))


def _autumn(year: int) -> date:
    return date(year, 10, 15)


def _province() -> list[FitnessTest]:
    return [
        # Junior, three complete years.
        _test("j1", "SA01", grade=7, sex="male", on=_autumn(2023), quality="pass"),
        _test("j1", "SA01", grade=8, sex="male", on=_autumn(2024), quality="good"),
        _test("j1", "SA01", grade=9, sex="male", on=_autumn(2025), quality="excellent"),
        # Grade 8 incomplete (left out of the mean); grade 9 failed, then retested: the retest counts.
        _test("j2", "SA01", grade=7, sex="female", on=_autumn(2023), quality="good"),
        _test("j2", "SA01", grade=8, sex="female", on=_autumn(2024), quality="excellent", drop="run_800m"),
        _test("j2", "SA01", grade=9, sex="female", on=_autumn(2025), quality="poor"),
        _test("j2", "SA01", grade=9, sex="female", on=_autumn(2025) + timedelta(days=30), quality="pass",
              attempt="retest"),
        # A retest after a first test that did not fail changes nothing.
        _test("j3", "SB01", grade=9, sex="male", on=_autumn(2025), quality="good"),
        _test("j3", "SB01", grade=9, sex="male", on=_autumn(2025) + timedelta(days=20), quality="poor",
              attempt="retest"),
        # Wholly exempted in the final year: no score, status exempt.
        _test("j4", "SB01", grade=8, sex="female", on=_autumn(2024), quality="good"),
        _test("j4", "SB01", grade=9, sex="female", on=_autumn(2025), exempt=True),
        # Grade 8 repeated: its latest year counts.
        _test("j5", "SA01", grade=8, sex="male", on=_autumn(2023), quality="poor"),
        _test("j5", "SA01", grade=8, sex="male", on=_autumn(2024), quality="excellent"),
        _test("j5", "SA01", grade=9, sex="male", on=_autumn(2025), quality="pass"),
        # Primary, grades 4-6; a junior year of another student is not mixed in.
        _test("p1", "SA01", grade=4, sex="female", on=_autumn(2023), quality="excellent"),
        _test("p1", "SA01", grade=5, sex="female", on=_autumn(2024), quality="pass"),
        _test("p1", "SA01", grade=6, sex="female", on=_autumn(2025), quality="good"),
        # Final year incomplete: no score.
        _test("p2", "SB01", grade=6, sex="male", on=_autumn(2025), quality="good", drop="rope_skipping_1min"),
        # Senior high, final year alone and below 50: completion without graduation.
        _test("s1", "SB01", grade=12, sex="male", on=_autumn(2025), quality="poor"),
        # This school year (not closed): still a row store on TimescaleDB.
        _test("c1", "SA01", grade=7, sex="male", on=_autumn(2026), quality="pass"),
        _test("c2", "SB01", grade=7, sex="female", on=_autumn(2026), quality="pass"),
    ]


def _expected_graduations(events: list[FitnessTest]) -> dict[tuple[str, int], tuple[Any, ...]]:
    """Graduation rows computed from the events with models.fitness alone (no SQL)."""
    scored: list[tuple[FitnessTest, FitnessResult]] = [(e, score_fitness_event(e)) for e in events]
    by_year: dict[tuple[str, int], list[tuple[FitnessTest, FitnessResult]]] = defaultdict(list)
    for event, result in scored:
        by_year[(event.student_key, school_year(event.measured_on))].append((event, result))
    year_results: dict[str, dict[int, tuple[int, FitnessResult]]] = defaultdict(dict)  # student → grade → year, result
    for (student, year), tests in sorted(by_year.items()):
        chosen = year_attempt([(e.attempt, e.measured_on, r.band) for e, r in tests])
        assert chosen is not None
        event, result = tests[chosen]
        if event.grade not in year_results[student] or year_results[student][event.grade][0] < year:
            year_results[student][event.grade] = (year, result)
    expected: dict[tuple[str, int], tuple[Any, ...]] = {}
    for student, grades in year_results.items():
        for final in (6, 9, 12):
            if final not in grades:
                continue
            year, result = grades[final]
            totals = {g: r.total for g, (_, r) in grades.items()
                      if r.total is not None and stage_of(g) == stage_of(final) and g <= final}
            score = graduation_score(totals, final) if result.total is not None else None
            status = "exempt" if result.status == "exempt" else "complete" if score is not None else "incomplete"
            band = None if score is None else ("excellent" if score >= 90 else "good" if score >= 80
                                               else "pass" if score >= 60 else "fail")
            expected[(student, final)] = (year, status, None if score is None else round(score, 6), band,
                                          score is not None and graduation_below_minimum(final, score),
                                          len(totals) - 1 if result.total is not None else len(totals))
    return expected


def _rows_as(settings: Settings, token: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(api_role(settings))))
        conn.execute("SELECT set_config('schoolhealth.token_sha256', %s, false)", (hash_token(token),))
        return conn.execute(query.encode()).fetchall()


def test_fitness_results_scoped_compressed_and_graduation_scores_on_both_backends(
        isolated: Settings, backend: str) -> None:
    settings = isolated
    events = _province()
    write_classified(settings, events)
    columnstore = columnstore_closed_school_years(settings)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        graduation = {(row[0], row[1]): (row[2], row[3], None if row[4] is None else round(row[4], 6), *row[5:])
                      for row in conn.execute(
            "SELECT student_key, final_grade, school_year, status, graduation_score, band, below_minimum,"
            " other_years FROM archive.fitness_graduation")}
        security = conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'archive.fitness_results'::regclass"
                                ).fetchone()
        chunks = conn.execute(
            "SELECT range_end::date, is_compressed FROM timescaledb_information.chunks"
            " WHERE hypertable_schema = 'archive' AND hypertable_name = 'fitness_results' ORDER BY 1").fetchall() \
            if backend == "timescaledb" else []
    assert security == (False,)  # scoped by the views, as the other measurement tables
    if backend == "timescaledb":
        assert columnstore is not None
        opened = date(school_year(datetime.now(ZoneInfo("Asia/Shanghai")).date()), 9, 1)
        assert chunks and all(compressed == (end <= opened) for end, compressed in chunks), chunks
        assert any(compressed for _, compressed in chunks) and not all(compressed for _, compressed in chunks)
    else:
        assert columnstore is None

    expected = _expected_graduations(events)
    assert graduation == {(key, grade): value for (key, grade), value in expected.items()}
    # The cases the rule has to get right, spelled out.
    assert graduation[(factories.key("j1"), 9)][5] == 2
    assert graduation[(factories.key("j2"), 9)][5] == 1  # grade 8 had no total
    assert graduation[(factories.key("j4"), 9)][1:4] == ("exempt", None, None)
    assert graduation[(factories.key("p2"), 6)][1:4] == ("incomplete", None, None)
    assert graduation[(factories.key("s1"), 12)][4] is True  # below 50 at senior graduation
    retested = score_fitness_event(events[6]).total
    assert retested is not None
    j2 = graduation[(factories.key("j2"), 9)][2]
    assert j2 == round(retested / 2 + score_fitness_event(events[3]).total / 2, 6)  # type: ignore[operator]

    users = {
        "doctor_a": add_user(settings, "d-a", "school_doctor", schools=["SA01"]),
        "doctor_b": add_user(settings, "d-b", "school_doctor", schools=["SB01"]),
        "counsellor_a": add_user(settings, "c-a", "counsellor", schools=["SA01"]),
        "lead_b": add_user(settings, "c-lead-b", "counsellor", lead_schools=["SB01"]),
        "admin": add_user(settings, "ad-1", "admin"),
        "office": add_user(settings, "ho-1", "health_office"),
        "nobody": "not-a-token",
    }
    query = ("SELECT 'current', school_id, count(*) FROM archive.fitness_current GROUP BY 2"
             " UNION ALL SELECT 'year', school_id, count(*) FROM archive.fitness_year GROUP BY 2"
             " UNION ALL SELECT 'graduation', school_id, count(*) FROM archive.fitness_graduation GROUP BY 2"
             " ORDER BY 1, 2")
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        everything = conn.execute(query.encode()).fetchall()
    by_school = defaultdict(list)
    for row in everything:
        by_school[row[1]].append(row)
    assert set(by_school) == {"SA01", "SB01"}
    expected_rows = {"doctor_a": by_school["SA01"], "doctor_b": by_school["SB01"], "lead_b": by_school["SB01"],
                     "admin": everything, "counsellor_a": [], "office": [], "nobody": []}
    for user, token in users.items():
        assert sorted(_rows_as(settings, token, query)) == sorted(expected_rows[user]), user
    # A filter in the caller's query cannot widen the scope (security barrier).
    assert _rows_as(settings, users["doctor_a"],
                    "SELECT count(*) FROM archive.fitness_current WHERE school_id = 'SB01'") == [(0,)]
    for token in (users["admin"], users["doctor_a"]):
        with pytest.raises(errors.InsufficientPrivilege):
            _rows_as(settings, token, "SELECT count(*) FROM archive.fitness_results")
    with psycopg.connect(settings.pg_dsn("grafana"), autocommit=True) as conn:
        for relation in ("archive.fitness_results", "archive.fitness_current", "archive.fitness_graduation"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {relation} LIMIT 1".encode())


@pytest.mark.parametrize("backend", ["timescaledb"], indirect=True)
def test_fitness_results_are_a_hypertable_with_columnstore_like_the_other_measurements(isolated: Settings) -> None:
    """Same chunks and columnstore settings as vision and growth; a redelivered batch stays stored once
    and a late correction of a closed year lands in a compressed chunk and hides its original."""
    settings = isolated
    events = _province()
    write_classified(settings, events)
    columnstore_closed_school_years(settings)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        table = conn.execute(
            "SELECT h.compression_enabled, d.column_name, d.time_interval FROM timescaledb_information.hypertables h"
            " JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name)"
            " WHERE h.hypertable_schema = 'archive' AND h.hypertable_name = 'fitness_results'").fetchone()
        columnstore = conn.execute(
            "SELECT segmentby, orderby FROM timescaledb_information.hypertable_columnstore_settings"
            " WHERE hypertable = 'archive.fitness_results'::regclass").fetchone()
        registered = conn.execute("SELECT time_column FROM archive.time_partitioned"
                                  " WHERE table_name = 'archive.fitness_results'::regclass").fetchone()
        before = conn.execute("SELECT event_id, total FROM archive.fitness_current ORDER BY 1").fetchall()
    assert table == (True, "measured_on", timedelta(days=28))
    assert columnstore == ("school_id", "student_key,measured_on")
    assert registered == ("measured_on",)

    write_classified(settings, events)  # the worker's at-least-once redelivery, into compressed chunks
    original = events[0]
    correction = FitnessTest.model_validate_json(json.dumps(json.loads(original.model_dump_json(by_alias=True)) | {
        "event_id": str(event_id_for("test-fitness-correction", str(original.event_id))),
        "supersedes": str(original.event_id), "run_50m_s": 9.9}))
    write_classified(settings, [correction])
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        after = conn.execute("SELECT event_id, total FROM archive.fitness_current ORDER BY 1").fetchall()
        stored = conn.execute("SELECT count(*) FROM archive.fitness_results").fetchone()
        compressed = conn.execute(
            "SELECT is_compressed FROM timescaledb_information.chunks WHERE hypertable_name = 'fitness_results'"
            " AND %s::date >= range_start::date AND %s::date < range_end::date",
            (original.measured_on, original.measured_on)).fetchone()
    assert stored == (len(events) + 1,)
    assert compressed == (True,)
    assert [row for row in after if row[0] != correction.event_id] == [row for row in before
                                                                       if row[0] != original.event_id]
    assert (correction.event_id, score_fitness_event(correction).total) in after


def test_every_api_readable_view_over_fitness_results_carries_the_school_scope(isolated: Settings) -> None:
    """No row-level security on the table: each view that reads it with its owner's rights must be a
    security barrier with the school scope, the API's role has no privilege on the table, and no
    relation the API may read reaches the table through a view without the scope or a materialized view
    (which holds every school's rows)."""
    api = api_role(isolated)
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        edges = conn.execute(
            "SELECT DISTINCT v.oid::regclass::text, v.relkind, t.oid::regclass::text"
            " FROM pg_class v JOIN pg_rewrite r ON r.ev_class = v.oid"
            " JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass"
            " JOIN pg_class t ON t.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass"
            " WHERE v.oid <> t.oid AND v.relkind IN ('v', 'm')").fetchall()
        views = {row[0]: row[1:] for row in conn.execute(
            "SELECT c.oid::regclass::text, coalesce(c.reloptions, '{}'), pg_get_viewdef(c.oid),"
            " has_table_privilege(%s, c.oid, 'SELECT'), c.relkind FROM pg_class c WHERE c.relkind IN ('v', 'm')",
            (api,)).fetchall()}
        table_privileges = conn.execute(
            "SELECT has_table_privilege(%s, 'archive.fitness_results', 'SELECT, INSERT, UPDATE, DELETE')",
            (api,)).fetchone()
    assert table_privileges == (False,)
    reads: dict[str, set[str]] = defaultdict(set)
    for view, _, target in edges:
        reads[view].add(target)

    def scoped(name: str) -> bool:
        options, definition, _, kind = views[name]
        return (kind == "v" and "security_barrier=true" in options
                and not any(option.startswith("security_invoker=true") for option in options)
                and "auth.visible_schools()" in definition and "auth.lead_schools()" in definition)

    direct = {view for view, targets in reads.items() if "archive.fitness_results" in targets}
    assert "archive.fitness_current" in direct
    for view in direct:
        options, _, _, kind = views[view]
        if kind == "v" and any(option.startswith("security_invoker=true") for option in options):
            continue  # runs with its caller's rights: the API's role is refused the table
        readable = views[view][2]
        assert scoped(view) or (kind == "m" and not readable), view

    def reaches(name: str, seen: frozenset[str] = frozenset()) -> bool:
        """Whether `name` reads the table's rows at all (through any views)."""
        if name == "archive.fitness_results":
            return True
        return name in views and name not in seen and any(reaches(t, seen | {name}) for t in reads.get(name, ()))

    def leaks(name: str, seen: frozenset[str] = frozenset()) -> bool:
        """Whether reading `name` can reach the table's rows without passing a scoped view. A
        materialized view was filled with its owner's rights: every school's rows, scoped views or not."""
        if name == "archive.fitness_results":
            return True
        if name not in views or name in seen:
            return False
        if views[name][3] == "m":
            return reaches(name)
        if scoped(name):
            return False
        return any(leaks(target, seen | {name}) for target in reads.get(name, ()))

    readable = sorted(name for name, (_, _, can_read, _) in views.items() if can_read)
    assert {"archive.fitness_current", "archive.fitness_year", "archive.fitness_graduation"} <= set(readable)
    assert [name for name in readable if leaks(name)] == []
