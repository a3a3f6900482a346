"""`schoolhealth student`'s timeline read through the columnstore's student-school list (migration
0106) gives the rows the plain read by student gave (`_TIMELINE`), for every student, on both
backends: students who changed school inside the closed years, students with rows in the open year
only, and after a late write into a compressed chunk at a school the list has never seen for that
student (the chunk is then partial and the lookup reads it as before until the job lists it)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from services.platform.settings import Settings
from services.platform.timescaledb import columnstore_closed_school_years
from services.students.archive_reader import _TIMELINE, print_student, resolve_key, timeline_query
from tests import factories
from tests.integration.archive_writes import write_classified

pytestmark = pytest.mark.integration

SCHOOLS = ("SA01", "SA02", "SB01")
STUDENTS = 30


def _opened() -> date:
    """The 1 September that opened the current school year (the columnstore job's "closed" boundary)."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return date(today.year if today.month >= 9 else today.year - 1, 9, 1)


def _events() -> list[Any]:
    """Three closed school years and the open one; every third student moves school each year, every
    fifth has rows in the open year only."""
    opened = _opened()
    years = [date(opened.year - back, 10, 12) for back in (3, 2, 1)] + [opened + timedelta(days=40)]
    events: list[Any] = []
    for n in range(STUDENTS):
        for number, day in enumerate(years):
            if n % 5 == 0 and day < opened:
                continue
            school = SCHOOLS[(n + (number if n % 3 == 0 else 0)) % len(SCHOOLS)]
            at = f"{day}T10:00:00+08:00"
            events.append(factories.bmi(n, school, measured_on=day.isoformat(), height_cm=120.0 + n + number,
                                        occurred_at=at, event_id=str(uuid.uuid4())))
            events.append(factories.vision(n, school, measured_on=day.isoformat(), occurred_at=at,
                                           event_id=str(uuid.uuid4())))
            events.append(factories.survey(n, school, answered_on=day.isoformat(), occurred_at=at,
                                           event_id=str(uuid.uuid4())))
    return events


def _both_reads(settings: Settings) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]], int]:
    """Each student's timeline by the plain read and by the lookup's; how many lookups were narrowed."""
    plain: dict[str, list[dict[str, Any]]] = {}
    narrowed: dict[str, list[dict[str, Any]]] = {}
    used = 0
    with psycopg.connect(settings.pg_dsn("admin")) as conn, conn.cursor(row_factory=dict_row) as cursor:
        for n in range(STUDENTS):
            key = factories.key(n)
            plain[key] = sorted(cursor.execute(_TIMELINE, {"key": key}).fetchall(), key=repr)
            query, params = timeline_query(conn, key)
            used += "school_id = ANY" in query or "AS vision_screenings WHERE true" in query
            narrowed[key] = sorted(cursor.execute(query.encode(), params).fetchall(), key=repr)
    return plain, narrowed, used


def test_the_lookup_reads_the_same_rows_as_the_plain_read_by_student(isolated: Settings, backend: str) -> None:
    settings = isolated
    events = _events()
    # Each student's enrolment record, so that archive.students knows the keys (the prefix lookup).
    write_classified(settings, [*events, *(factories.record(n, SCHOOLS[n % len(SCHOOLS)]) for n in range(STUDENTS))])
    columnstore = columnstore_closed_school_years(settings)
    plain, narrowed, used = _both_reads(settings)
    assert sum(len(rows) for rows in plain.values()) == len(events)
    assert narrowed == plain
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        boundaries: dict[str, date | None] = {
            str(name): boundary for name, boundary in conn.execute(
                "SELECT table_name::text, boundary FROM archive.columnstore_boundaries()")}
        listed = conn.execute("SELECT count(DISTINCT student_key), count(*) FROM archive.columnstore_students"
                              ).fetchone()
    if backend == "timescaledb":
        assert columnstore is not None and columnstore.chunks_in_columnstore > 0
        # The narrowed read is in use, and it lists the movers at each of their schools.
        assert boundaries["archive.growth_screenings"] is not None
        assert used == STUDENTS
        students_in_closed_years = STUDENTS - len(range(0, STUDENTS, 5))
        assert listed is not None and listed[0] == students_in_closed_years and listed[1] > listed[0]
    else:
        assert set(boundaries.values()) == {None} and used == 0 and listed == (0, 0)

    # A late write into a closed year at a school this student never had a row at there.
    mover = next(n for n in range(STUDENTS) if n % 5)
    day = date(_opened().year - 2, 10, 12)
    late = factories.bmi(mover, "SZ99", measured_on=day.isoformat(), occurred_at=f"{day}T15:00:00+08:00",
                         event_id=str(uuid.uuid4()), height_cm=150.0)
    write_classified(settings, [late])
    plain, narrowed, _ = _both_reads(settings)
    assert narrowed == plain
    assert any(row["event_id"] == late.event_id for row in narrowed[factories.key(mover)])
    if backend == "timescaledb":
        with psycopg.connect(settings.pg_dsn("admin")) as conn:
            boundary = conn.execute("SELECT boundary FROM archive.columnstore_boundaries()"
                                    " WHERE table_name = 'archive.growth_screenings'::regclass").fetchone()
        assert boundary == (None,)  # the chunk took a row after compression: read by student as before

    # The job runs again: whatever it does with the partial chunk, the answers stay the same.
    columnstore_closed_school_years(settings)
    plain, narrowed, _ = _both_reads(settings)
    assert narrowed == plain
    assert any(row["event_id"] == late.event_id for row in narrowed[factories.key(mover)])

    # The whole command: key given by its beginning, the same lines, the psychological read audited.
    lines: list[str] = []
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert resolve_key(conn, factories.key(mover)[:8]) == factories.key(mover)
        audited = conn.execute("SELECT count(*) FROM audit.psych_reads").fetchone()
    print_student(settings, factories.key(mover)[:8], out=lines.append)
    timeline = [line for line in lines if any(kind in line for kind in (" vision ", " growth ", " phq-a "))]
    assert len(timeline) == len(plain[factories.key(mover)])
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        after = conn.execute("SELECT count(*) FROM audit.psych_reads").fetchone()
    assert audited is not None and after == (audited[0] + 1,)


_COLUMNSTORE_CHUNKS = """
SELECT i.hypertable_name, c.id, c.compressed_chunk_id, i.range_start, i.range_end,
       metrics.school_year((i.range_start AT TIME ZONE 'UTC')::date) AS school_year
FROM timescaledb_information.chunks i
JOIN _timescaledb_catalog.chunk c ON c.schema_name = i.chunk_schema AND c.table_name = i.chunk_name
WHERE i.hypertable_schema = 'archive' AND i.is_compressed AND i.hypertable_name <> 'fitness_results'
ORDER BY 1, i.range_start
"""


def _every_fortnight(first: int, last: int) -> list[Any]:
    """Students `first`..`last` screened and surveyed every 14 days from September to June of each
    closed school year: each table has a run of adjacent 28-day chunks per closed year."""
    opened = _opened()
    events: list[Any] = []
    for back in (3, 2, 1):
        start = date(opened.year - back, 9, 3)
        for step in range(22):
            day = start + timedelta(days=14 * step)
            at = f"{day}T09:00:00+08:00"
            for n in range(first, last + 1):
                school = SCHOOLS[n % len(SCHOOLS)]
                events.append(factories.bmi(n, school, measured_on=day.isoformat(), height_cm=120.0 + step / 10,
                                            occurred_at=at, event_id=str(uuid.uuid4())))
                events.append(factories.vision(n, school, measured_on=day.isoformat(), occurred_at=at,
                                               event_id=str(uuid.uuid4())))
                events.append(factories.survey(n, school, answered_on=day.isoformat(), occurred_at=at,
                                               event_id=str(uuid.uuid4())))
    return events


def test_each_closed_school_years_chunks_are_merged_and_the_lookup_reads_the_same_rows(
        isolated: Settings, backend: str) -> None:
    """Migration 0119: the columnstore job merges each closed school year's adjacent chunks into one
    (fewer relations for a fresh connection to plan over); the merged chunks stay in the
    columnstore, are listed, and the lookup's answers do not change, nor after a late write into one."""
    settings = isolated
    events = [*_events(), *_every_fortnight(0, 2)]
    write_classified(settings, [*events, *(factories.record(n, SCHOOLS[n % len(SCHOOLS)]) for n in range(STUDENTS))])
    plain_before, _, _ = _both_reads(settings)
    columnstore_closed_school_years(settings)
    plain, narrowed, used = _both_reads(settings)
    assert plain == plain_before and narrowed == plain
    assert sum(len(rows) for rows in plain.values()) == len(events)
    if backend != "timescaledb":
        assert used == 0
        return
    assert used == STUDENTS
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        chunks = conn.execute(_COLUMNSTORE_CHUNKS).fetchall()
        listed: dict[int, int] = dict(
            conn.execute("SELECT chunk_id, compressed_chunk_id FROM archive.columnstore_chunks").fetchall())
        boundaries: dict[str, date | None] = dict(
            conn.execute("SELECT table_name::text, boundary FROM archive.columnstore_boundaries()").fetchall())
    # Without merging, a fortnightly year fills about ten 28-day chunks per table; merged, no two
    # adjacent chunks of one school year are left (a chunk across 1 September stays on its own).
    per_table = {table: [c for c in chunks if c[0] == table] for table in
                 ("growth_screenings", "vision_screenings", "survey_results")}
    for table, rows in per_table.items():
        assert 3 <= len(rows) <= 7, (table, len(rows))
        for before, after in pairwise(rows):
            assert not (before[5] == after[5] and before[4] == after[3]), (table, before, after)
    # Every chunk in the columnstore is listed with the compressed chunk it has now; the narrowed read is on.
    assert {c[1]: c[2] for c in chunks}.items() <= listed.items()
    assert all(boundaries[f"archive.{table}"] is not None for table in per_table)

    # A late write into a merged chunk: the answers stay the same, before and after the job runs again.
    mover = 1
    day = date(_opened().year - 2, 12, 1)
    late = factories.bmi(mover, "SZ99", measured_on=day.isoformat(), occurred_at=f"{day}T15:00:00+08:00",
                         event_id=str(uuid.uuid4()), height_cm=150.0)
    write_classified(settings, [late])
    for _ in range(2):
        plain, narrowed, _ = _both_reads(settings)
        assert narrowed == plain
        assert any(row["event_id"] == late.event_id for row in narrowed[factories.key(mover)])
        columnstore_closed_school_years(settings)
