"""Migration 0120: archive.fitness_year and archive.fitness_graduation give the rows their former
definitions (0060, 0064: CTEs computed whole) gave, on random tests with ties, retests before and
after the first attempt and retests without one; and asked for one student they read that
student's tests only (on plain PostgreSQL: through the student index, not every student's tests)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from services.platform.settings import Settings
from services.platform.timescaledb import columnstore_closed_school_years
from tests import factories
from tests.integration.archive_writes import write_classified
from tests.integration.services.pipeline.test_fitness_archive import _test

pytestmark = pytest.mark.integration

# 0060's fitness_year, verbatim but for its name: the oracle.
_FORMER_YEAR = """
WITH tests AS (
    SELECT f.*, CASE WHEN extract(month FROM measured_on) >= 9 THEN extract(year FROM measured_on)
                     ELSE extract(year FROM measured_on) - 1 END::int AS school_year
    FROM archive.fitness_current f
), firsts AS (
    SELECT DISTINCT ON (student_key, school_year) *
    FROM tests WHERE attempt = 'first'
    ORDER BY student_key, school_year, measured_on, occurred_at, event_id
), retests AS (
    SELECT DISTINCT ON (r.student_key, r.school_year) r.*
    FROM tests r JOIN firsts f ON f.student_key = r.student_key AND f.school_year = r.school_year
    WHERE r.attempt = 'retest' AND f.band = 'fail' AND r.measured_on >= f.measured_on
    ORDER BY r.student_key, r.school_year, r.measured_on, r.occurred_at, r.event_id
), orphan_retests AS (
    SELECT DISTINCT ON (student_key, school_year) *
    FROM tests t WHERE attempt = 'retest'
      AND NOT EXISTS (SELECT 1 FROM firsts f WHERE f.student_key = t.student_key AND f.school_year = t.school_year)
    ORDER BY student_key, school_year, measured_on, occurred_at, event_id
)
SELECT * FROM retests
UNION ALL
SELECT f.* FROM firsts f
WHERE NOT EXISTS (SELECT 1 FROM retests r WHERE r.student_key = f.student_key AND r.school_year = f.school_year)
UNION ALL
SELECT * FROM orphan_retests
"""

# 0064's fitness_graduation over the view above: the oracle.
_FORMER_GRADUATION = f"""
WITH former_year AS ({_FORMER_YEAR}), years AS (
    SELECT DISTINCT ON (student_key, grade)
           student_key, school_id, school_year, grade, status, total,
           CASE WHEN grade <= 6 THEN 'primary' WHEN grade <= 9 THEN 'junior' ELSE 'senior' END AS stage
    FROM former_year
    ORDER BY student_key, grade, school_year DESC, measured_on DESC
), scored AS (
    SELECT f.student_key, f.school_id, f.school_year, f.stage, f.grade AS final_grade,
           f.status AS final_status, f.total AS final_total,
           o.years AS other_years, o.mean AS other_mean,
           CASE WHEN f.status = 'complete' THEN
                CASE WHEN o.years > 0 THEN f.total / 2 + o.mean / 2 ELSE f.total END END AS graduation_score
    FROM years f
    CROSS JOIN LATERAL (
        SELECT count(*)::integer AS years, avg(y.total) AS mean
        FROM years y
        WHERE y.student_key = f.student_key AND y.stage = f.stage AND y.grade < f.grade AND y.status = 'complete'
    ) o
    WHERE f.grade IN (6, 9, 12)
)
SELECT s.*,
       CASE WHEN s.final_status = 'exempt' THEN 'exempt'
            WHEN s.graduation_score IS NULL THEN 'incomplete' ELSE 'complete' END AS status,
       CASE WHEN s.graduation_score >= 90 THEN 'excellent' WHEN s.graduation_score >= 80 THEN 'good'
            WHEN s.graduation_score >= 60 THEN 'pass' WHEN s.graduation_score IS NOT NULL THEN 'fail' END AS band,
       coalesce(s.stage = 'senior' AND s.graduation_score < 50, false) AS below_minimum
FROM scored s
"""

STUDENTS = 80


def _random_tests(seed: int) -> list[Any]:
    """Each student over three school years: 0-4 tests a year, first attempts and retests in any
    order over a few days (same-day ties included), of every quality, some wholly exempted."""
    rng = random.Random(seed)
    events: list[Any] = []
    for n in range(STUDENTS):
        student, sex = f"fv{n}", ("male", "female")[n % 2]
        start_grade = rng.choice((4, 5, 7, 10))
        for step, year in enumerate((2023, 2024, 2025)):
            grade = min(start_grade + step, 12)
            for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
                quality = rng.choice(("excellent", "good", "pass", "fail", "fail"))
                on = date(year, 10, 10) + timedelta(days=rng.choice((0, 0, 3, 7, 12)))
                test = _test(student, ("SA01", "SB01")[n % 2], grade=grade, sex=sex, on=on, quality=quality,
                             attempt=rng.choice(("first", "first", "retest")),
                             drop=rng.choice((None, None, "run_50m")), exempt=rng.random() < 0.05)
                events.append(test.model_copy(update={"event_id": uuid.UUID(int=rng.getrandbits(128), version=4)}))
    return events


def _rows(conn: psycopg.Connection[Any], query: str, params: Any = None) -> list[str]:
    """Rows as sorted JSON texts (numerics, dates and arrays compared as PostgreSQL prints them)."""
    return sorted(str(row[0]) for row in conn.execute(
        f"SELECT to_jsonb(q)::text FROM ({query}) q".encode(), params).fetchall())


def test_the_restated_views_give_the_former_rows_and_read_one_student_alone(
        isolated: Settings, backend: str) -> None:
    settings = isolated
    events = _random_tests(18)
    write_classified(settings, events)
    columnstore_closed_school_years(settings)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        years = _rows(conn, "SELECT * FROM archive.fitness_year")
        graduations = _rows(conn, "SELECT * FROM archive.fitness_graduation")
        assert years == _rows(conn, _FORMER_YEAR)
        assert graduations == _rows(conn, _FORMER_GRADUATION)
        # Every rule's case occurred: a failed first replaced by a retest, a retest without a first,
        # a retest before the first (ignored), a graduation with lower grades and one without.
        chosen = [json.loads(row) for row in years]
        assert any(row["attempt"] == "retest" for row in chosen)
        assert any(row["attempt"] == "first" and row["band"] == "fail" for row in chosen)
        assert {json.loads(row)["other_years"] > 0 for row in graduations} == {True, False}

        # One student at a time: the same rows as the whole view's for that student.
        for n in range(0, STUDENTS, 7):
            key = factories.key(f"fv{n}")
            assert _rows(conn, "SELECT * FROM archive.fitness_year WHERE student_key = %s", (key,)) == [
                row for row in years if json.loads(row)["student_key"] == key]
            assert _rows(conn, "SELECT * FROM archive.fitness_graduation WHERE student_key = %s", (key,)) == [
                row for row in graduations if json.loads(row)["student_key"] == key]

        if backend == "postgresql":
            # The lookup's plan reads the student's tests through the index, not every student's.
            key = factories.key("fv3")
            plan = conn.execute("EXPLAIN (FORMAT JSON) SELECT * FROM archive.fitness_graduation"
                                " WHERE student_key = %s", (key,)).fetchone()
            assert plan is not None
            scans = list(_scans(plan[0][0]["Plan"], "fitness_results"))
            assert scans and all(scan["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Index Only Scan")
                                 for scan in scans), scans


def _scans(node: dict[str, Any], relation: str) -> Any:
    if node.get("Relation Name") == relation:
        yield node
    for child in node.get("Plans", []):
        yield from _scans(child, relation)


def test_the_marked_students_functions_give_the_views_rows_of_those_students(
        isolated: Settings, backend: str) -> None:
    """Migration 0121: the incremental refresh's fitness rows come from functions that read the
    marked students' tests alone; they give exactly the views' rows of those students (every school
    year of theirs, graduation scores with the stage's earlier years), and the student mode of
    metrics.fitness_observation_rows gives the whole mode's rows of the marked pairs."""
    settings = isolated
    write_classified(settings, _random_tests(121))
    columnstore_closed_school_years(settings)
    marked = [factories.key(f"fv{n}") for n in range(0, STUDENTS, 3)]
    pairs = [(key, year) for i, key in enumerate(marked) for year in (2023, 2024, 2025) if (i + year) % 3]
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        years = [json.loads(row) for row in _rows(conn, "SELECT * FROM archive.fitness_year")]
        graduations = [json.loads(row) for row in _rows(conn, "SELECT * FROM archive.fitness_graduation")]
        # The refresh creates it before any mode runs (0112); the whole mode reads none of it.
        conn.execute("CREATE TEMP TABLE dirty_pairs (student_key text NOT NULL, school_year integer NOT NULL,"
                     " PRIMARY KEY (school_year, student_key))")
        whole = conn.execute("SELECT school_year, student_key, metric_id, positive"
                             " FROM metrics.fitness_observation_rows(true, false, NULL)").fetchall()
        assert whole, "the random tests give fitness rows"
        with conn.cursor().copy("COPY dirty_pairs (student_key, school_year) FROM STDIN") as copy:
            for pair in pairs:
                copy.write_row(pair)
        conn.execute("ANALYZE dirty_pairs")

        def of_marked(rows: list[dict[str, Any]]) -> list[str]:
            return sorted(json.dumps(row, sort_keys=True) for row in rows if row["student_key"] in marked)

        def as_json(query: str) -> list[str]:
            return sorted(json.dumps(json.loads(row), sort_keys=True) for row in _rows(conn, query))

        assert as_json("SELECT * FROM archive.fitness_year_of_marked()") == of_marked(years)
        assert as_json("SELECT * FROM archive.fitness_graduation_of_marked()") == of_marked(graduations)

        marked_pairs = set(pairs)
        for chosen_years in ([2025], [2023, 2024, 2025]):
            by_student = conn.execute(
                "SELECT school_year, student_key, metric_id, positive"
                " FROM metrics.fitness_observation_rows(false, true, %s)", (chosen_years,)).fetchall()
            expected = [row for row in whole if (row[1], row[0]) in marked_pairs and row[0] in chosen_years]
            assert expected, "some marked pairs have fitness rows"
            assert sorted(by_student) == sorted(expected)
