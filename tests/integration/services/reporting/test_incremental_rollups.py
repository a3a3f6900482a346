"""Incremental indicators (issue 18, migration 0085) against the full refresh, on the real archive.

A small seeded province is fully refreshed; then events arrive through the archive writer (the
worker's path): a screening day of one school year with a correction, a late event of an older
year, a transfer between schools. After each, the incremental refresh must leave exactly what a
full refresh computes from scratch (the oracle: rollups and live indicators alike), and the live
rows of the years the events do not touch must not have been rewritten (same row version).
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from models.synthetic import ProvinceSpec
from services.devtools.seed import import_directory, import_fitness
from services.devtools.stack import Postgres
from services.devtools.synthetic_files import write_province
from services.platform.settings import Settings
from services.reporting.metrics import WHOLE_YEAR_SHARE, refresh_incremental, refresh_rollups, try_refresh_rollups
from tests import factories
from tests.integration.archive_writes import write_classified
from tests.integration.conftest import wait_for
from tests.integration.rollups import OBSERVATIONS

pytestmark = pytest.mark.integration

YEARS = (2022, 2023, 2024, 2025)
ROLLUPS = ("student_years", "indicator_cells", "fitness_observations", "fitness_cells",
           "digit_preference",
           "digit_preference_shares")
# The data-quality dailies where they are tables, updated per school by the refresh (0115); on
# TimescaleDB they are continuous aggregates, refreshed by their own policy, not by this refresh.
DAILIES = ("growth_daily", "vision_daily")
LIVE = ("SELECT school_year, metric_id, metric_version, level, area_id, area_name, county_id, breakdown, category,"
        " denominator, numerator, rate, ci_low, ci_high, previous_rate, change, change_ci_low, change_ci_high,"
        " suppressed FROM metrics.live_indicators")
SENT = "2026-04-02T02:00:00+00:00"
LATER = "2026-11-30T02:00:00+00:00"  # after every school year's last day


def _state(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        tables = conn.execute("SELECT metrics.dailies_are_tables()").fetchone() == (True,)
        found = {name: sorted(conn.execute(f"SELECT * FROM metrics.{name}").fetchall(), key=repr)
                 for name in ROLLUPS + (DAILIES if tables else ())}
        found["live_indicators"] = sorted(conn.execute(LIVE).fetchall(), key=repr)
    return found


def _versions(settings: Settings) -> dict[int, set[tuple[str, str]]]:
    """Each year's live rows as (ctid, xmin): a rewritten row has another version."""
    by_year: dict[int, set[tuple[str, str]]] = {}
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        for year, ctid, xmin in conn.execute(
                "SELECT school_year, ctid::text, xmin::text FROM metrics.live_indicators").fetchall():
            by_year.setdefault(int(year), set()).add((ctid, xmin))
    return by_year


def _rollup_versions(settings: Settings, year: int) -> dict[str, dict[str, set[tuple[str, str]]]]:
    """School year `year`'s student-years by student and indicator cells by school, as row versions."""
    found: dict[str, dict[str, set[tuple[str, str]]]] = {"student_years": {}, "indicator_cells": {}}
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        for table, by in (("student_years", "student_key"), ("indicator_cells", "school_id")):
            for key, ctid, xmin in conn.execute(
                    f"SELECT {by}, ctid::text, xmin::text FROM metrics.{table} WHERE school_year = %s",
                    (year,)).fetchall():
                found[table].setdefault(str(key), set()).add((ctid, xmin))
    return found


def _assert_equals_full_refresh(settings: Settings) -> None:
    incremental = _state(settings)
    assert incremental["live_indicators"], "no live indicators"
    refresh_rollups(settings)
    full = _state(settings)
    for name, rows in full.items():
        assert incremental[name] == rows, f"{name}: the incremental refresh differs from the full one"


def _age_months(birth: date, day: date) -> float:
    return round((day - birth).days / 30.4375, 1)


@pytest.fixture
def province(isolated: Settings, tmp_path: Path) -> Settings:
    write_province(ProvinceSpec(students=600, seed=20251, school_years=YEARS, counties=2), tmp_path)
    import_directory(isolated, tmp_path)
    refresh_rollups(isolated)
    return isolated


def test_incremental_refresh_equals_the_full_one_and_leaves_other_years_alone(province: Settings) -> None:
    settings = province
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert conn.execute("SELECT count(*) FROM metrics.dirty_years").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM metrics.dirty_students").fetchone() == (0,)
        school = conn.execute(
            "SELECT school_id FROM metrics.student_years WHERE school_year = 2025"
            " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]  # type: ignore[index]
        pupils = conn.execute(
            "SELECT y.student_key, st.sex, st.birth_date FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key)"
            " WHERE y.school_year = 2025 AND y.school_id = %s ORDER BY y.student_key LIMIT 40", (school,)).fetchall()
        corrected = conn.execute(
            "SELECT event_id, student_key, school_id, measured_on, sex, age_months FROM archive.vision_screenings"
            " WHERE measured_on >= '2025-09-01' AND supersedes IS NULL ORDER BY event_id LIMIT 1").fetchone()
    assert pupils and corrected

    # 1. One screening day of school year 2025, with a correction of one of its earlier screenings.
    day = date(2026, 3, 10)
    events: list[Any] = []
    for n, (student, sex, birth) in enumerate(pupils):
        events.append(factories.vision(
            90_000 + n, school, student_key=student, sex=sex, measured_on=day.isoformat(), occurred_at=SENT,
            age_months=_age_months(birth, day), ucva_right=4.6 if n % 3 == 0 else 5.0, ucva_left=4.7,
            se_right=-1.5 if n % 3 == 0 else 0.25, se_left=-1.0))
        events.append(factories.bmi(
            90_000 + n, school, student_key=student, sex=sex, measured_on=day.isoformat(), occurred_at=SENT,
            age_months=_age_months(birth, day), height_cm=150.0 + n % 7, weight_kg=38.0 + 2 * (n % 9)))
    event_id, student, own_school, measured_on, sex, age = corrected
    events.append(factories.vision(
        91_000, own_school, student_key=student, sex=sex, measured_on=measured_on.isoformat(), age_months=age,
        occurred_at=SENT, supersedes=str(event_id), ucva_right=4.3, ucva_left=4.4, se_right=-3.0, se_left=-3.25))
    before = _versions(settings)
    rollups_before = _rollup_versions(settings, 2025)
    write_classified(settings, events)
    result = refresh_incremental(settings)
    assert result.mode == "incremental"
    assert result.rollup_years == [2025] and result.live_years == [2025]
    after = _versions(settings)
    for year in (2022, 2023, 2024):
        assert after[year] == before[year], f"school year {year} was rewritten"
    assert not after[2025] & before[2025]
    # Within 2025, only the marked students' rows and their schools' cells were recomputed (0109).
    rollups_after = _rollup_versions(settings, 2025)
    marked = {str(p[0]) for p in pupils} | {str(student)}
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        row = conn.execute("SELECT school_id FROM metrics.student_years WHERE school_year = 2025 AND student_key = %s",
                           (student,)).fetchone()
    touched_schools = {school} | ({str(row[0])} if row else set())
    rewritten = {key for key, versions in rollups_after["student_years"].items()
                 if versions != rollups_before["student_years"].get(key)}
    assert rewritten <= marked and rewritten, rewritten - marked
    assert len(rollups_after["student_years"]) > 10 * len(marked)  # most students were left alone
    recomputed = {key for key, versions in rollups_after["indicator_cells"].items()
                  if versions != rollups_before["indicator_cells"].get(key)}
    assert recomputed <= touched_schools and school in recomputed, recomputed
    assert len(rollups_after["indicator_cells"]) > len(touched_schools)
    _assert_equals_full_refresh(settings)

    # 2. A late screening of an older school year (2023): that year and the next (its change) only.
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        late_student, late_school, late_sex, late_birth = conn.execute(
            "SELECT y.student_key, y.school_id, st.sex, st.birth_date FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key) WHERE y.school_year = 2023"
            " ORDER BY y.student_key DESC LIMIT 1").fetchone()  # type: ignore[misc]
    late_day = date(2024, 5, 20)
    before = _versions(settings)
    late = factories.vision(
        92_000, late_school, student_key=late_student, sex=late_sex, measured_on=late_day.isoformat(), occurred_at=SENT,
        age_months=_age_months(late_birth, late_day), ucva_right=4.2, ucva_left=4.2, se_right=-4.0, se_left=-4.0)
    write_classified(settings, [late])
    result = refresh_incremental(settings)
    assert result.rollup_years == [2023] and result.live_years == [2023, 2024]
    after = _versions(settings)
    for year in (2022, 2025):
        assert after[year] == before[year], f"school year {year} was rewritten"
    _assert_equals_full_refresh(settings)

    # 2b. A correction of that screening that moves it to another school year (a mistyped date):
    # both the correction's year and the corrected event's year are recomputed.
    moved_day = date(2025, 10, 9)
    before = _versions(settings)
    write_classified(settings, [factories.vision(
        92_001, late_school, student_key=late_student, sex=late_sex, measured_on=moved_day.isoformat(),
        occurred_at=SENT, supersedes=str(late.event_id), age_months=_age_months(late_birth, moved_day),
        ucva_right=4.2, ucva_left=4.2, se_right=-4.0, se_left=-4.0)])
    result = refresh_incremental(settings)
    assert result.rollup_years == [2023, 2025] and result.live_years == [2023, 2024, 2025]
    assert _versions(settings)[2022] == before[2022], "school year 2022 was rewritten"
    _assert_equals_full_refresh(settings)

    # 3. A health-record transfer to another school (of another county where there is one) in 2025.
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        mover, from_school, county, grade, sex, birth = conn.execute(
            "SELECT y.student_key, y.school_id, y.county_id, y.grade, st.sex, st.birth_date"
            " FROM metrics.student_years y JOIN archive.students st USING (student_key)"
            " WHERE y.school_year = 2025 AND y.school_id = %s ORDER BY y.student_key LIMIT 1", (school,)
        ).fetchone()  # type: ignore[misc]
        to_school = conn.execute("SELECT school_id FROM archive.schools WHERE school_id <> %s ORDER BY"
                                 " county_id = %s, school_id LIMIT 1", (from_school, county)).fetchone()[0]  # type: ignore[index]
    when = datetime(2025, 9, 12, 8, 0, tzinfo=UTC)
    write_classified(settings, [factories.record(
        93_000, from_school, action="transfer", occurred_at=when, student_key=mover, to_school_id=to_school,
        county_id=county, grade=grade, sex=sex, birth_date=birth.isoformat())])
    result = refresh_incremental(settings)
    assert result.mode == "incremental" and result.rollup_years and 2025 in result.rollup_years
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        moved = conn.execute("SELECT school_id FROM metrics.student_years WHERE school_year = 2025"
                             " AND student_key = %s", (mover,)).fetchone()
    assert moved == (to_school,)
    _assert_equals_full_refresh(settings)

    # Nothing new: nothing recomputed, nothing rewritten.
    before = _versions(settings)
    result = refresh_incremental(settings)
    assert result.rollup_years == [] and result.live_years == []
    assert _versions(settings) == before


def test_two_refreshes_never_run_at_once(province: Settings) -> None:
    settings = province
    write_classified(settings, [factories.vision(94_000, "S001", measured_on="2026-04-01", occurred_at=SENT)])
    with psycopg.connect(settings.pg_dsn("app")) as holder:
        # Another refresh is running (it holds the refresh lock in its transaction).
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('schoolhealth.metrics.live'))")
        holder_pid = holder.info.backend_pid
        # A worker's timer skips its round...
        assert try_refresh_rollups(settings) is False
        # ...and `schoolhealth refresh` waits for the running one to end.
        done: list[object] = []
        thread = threading.Thread(target=lambda: done.append(refresh_incremental(settings)))
        thread.start()

        def waiting() -> bool:
            with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_locks h ON h.locktype = 'advisory'"
                    " AND h.objid = l.objid AND h.pid = %s AND h.granted"
                    " WHERE l.locktype = 'advisory' AND NOT l.granted", (holder_pid,)).fetchone()
            return bool(row and row[0])

        wait_for(waiting, timeout=60, what="the second refresh waiting for the lock")
        assert not done
        with psycopg.connect(settings.pg_dsn("admin")) as conn:
            # The event's mark is still there: the waiting refresh has not taken it.
            assert conn.execute("SELECT count(*) FROM metrics.dirty_students").fetchone() == (1,)
    thread.join(timeout=300)
    assert done and not thread.is_alive()
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert conn.execute("SELECT count(*) FROM metrics.dirty_students").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM metrics.dirty_students").fetchone() == (0,)


@pytest.mark.parametrize("mark", ["student", "year"])
def test_a_batch_committed_during_a_refresh_is_taken_by_the_next_one(province: Settings, mark: str) -> None:
    """The refresh takes only the marks it sees; a batch still open then keeps its mark for the next round.

    Both kinds of mark: the writer's (student, school year) and a whole school year (0085's backfill)."""
    settings = province
    with psycopg.connect(settings.pg_dsn("app")) as batch:
        # A batch of the archive writer, stored and marked but not committed yet (a late 2023 screening).
        new_id = batch.execute(
            "INSERT INTO archive.vision_screenings"
            " SELECT (jsonb_populate_record(NULL::archive.vision_screenings, to_jsonb(v)"
            "   || jsonb_build_object('event_id', gen_random_uuid(), 'measured_on', '2024-05-21',"
            "                         'screening_myopia', NOT v.screening_myopia))).*"
            " FROM archive.vision_screenings v WHERE v.measured_on BETWEEN '2023-09-01' AND '2024-05-20'"
            "   AND v.screening_myopia IS NOT NULL ORDER BY v.student_key LIMIT 1 RETURNING event_id").fetchone()
        assert new_id is not None
        batch.execute("INSERT INTO archive.event_ids (event_id, family) VALUES (%s, 'vision-screening')", new_id)
        if mark == "student":
            batch.execute("INSERT INTO metrics.dirty_students (student_key, school_year)"
                          " SELECT student_key, 2023 FROM archive.vision_screenings WHERE event_id = %s", new_id)
            batch.execute("INSERT INTO metrics.dirty_days (daily, school_id, day)"
                          " SELECT 'vision', school_id, measured_on FROM archive.vision_screenings"
                          " WHERE event_id = %s", new_id)
        else:
            batch.execute("INSERT INTO metrics.dirty_years (school_year) VALUES (2023)")
        during = refresh_incremental(settings)
        assert during.rollup_years == []
        batch.commit()
    after = refresh_incremental(settings)
    assert after.rollup_years == [2023] and after.live_years == [2023, 2024]
    _assert_equals_full_refresh(settings)


def test_a_fitness_test_updates_its_year_and_the_graduation_scores(province: Settings, tmp_path: Path) -> None:
    settings = province
    import_fitness(settings, tmp_path, school_years=(2024, 2025))
    refresh_rollups(settings)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        pupil = conn.execute(
            "SELECT y.student_key, y.school_id, st.sex FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key)"
            " WHERE y.school_year = 2025 AND y.grade = 9 ORDER BY y.student_key LIMIT 1").fetchone()
    assert pupil is not None
    student, school, sex = pupil
    write_classified(settings, [factories.fitness(95_000, school, student_key=student, sex=sex, grade=9,
                                        measured_on="2026-03-10", occurred_at=SENT, attempt="retest")])
    result = refresh_incremental(settings)
    assert result.mode == "incremental" and result.rollup_years and 2025 in result.rollup_years
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert conn.execute("SELECT count(*) FROM metrics.fitness_cells WHERE school_year = 2024").fetchone() != (0,)
        assert conn.execute("SELECT count(*) FROM metrics.fitness_observations WHERE school_year = 2025"
                            " AND student_key = %s", (student,)).fetchone() != (0,)
    _assert_equals_full_refresh(settings)


# The coverage step as it was before 0095: one EXISTS probe per student-year.
FORMER_COVERAGE = """
SELECT y.school_year, y.student_key,
       EXISTS (SELECT 1 FROM archive.vision_current v WHERE v.student_key = y.student_key
               AND v.measured_on BETWEEN make_date(y.school_year, 9, 1) AND make_date(y.school_year + 1, 8, 31))
   AND EXISTS (SELECT 1 FROM archive.growth_current g WHERE g.student_key = y.student_key
               AND g.measured_on BETWEEN make_date(y.school_year, 9, 1) AND make_date(y.school_year + 1, 8, 31))
FROM metrics.student_years y
"""


def test_screening_coverage_by_joins_equals_the_former_exists_probes(province: Settings) -> None:
    settings = province
    from services.platform.timescaledb import columnstore_closed_school_years

    # On TimescaleDB the closed school years are in the columnstore, as in production.
    columnstore = columnstore_closed_school_years(settings)
    assert columnstore is None or columnstore.chunks_in_columnstore > 0
    uncovered = """
        SELECT y.student_key, y.school_id, st.sex, st.birth_date FROM metrics.student_years y
        JOIN archive.students st USING (student_key)
        WHERE NOT y.screening_coverage AND y.school_year = %(year)s
          AND NOT EXISTS (SELECT 1 FROM archive.{missing} m WHERE m.student_key = y.student_key
                          AND metrics.school_year(m.measured_on) = %(year)s)
          AND EXISTS (SELECT 1 FROM archive.{present} p WHERE p.student_key = y.student_key
                      AND metrics.school_year(p.measured_on) = %(year)s)
        ORDER BY y.student_key LIMIT 1"""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        # Boundaries: a pupil of 2025 without a vision screening gets one on 1 September 2025 (the
        # first day of 2025), a pupil of 2024 without a growth screening gets one on 31 August 2025
        # (its last day): both become covered.
        no_vision = conn.execute(uncovered.format(missing="vision_screenings", present="growth_screenings"),
                                 {"year": 2025}).fetchone()
        no_growth = conn.execute(uncovered.format(missing="growth_screenings", present="vision_screenings"),
                                 {"year": 2024}).fetchone()
    assert no_vision and no_growth, "the seeded province has no uncovered pupil of that kind"
    first, last = date(2025, 9, 1), date(2025, 8, 31)
    student, school, sex, birth = no_vision
    events: list[Any] = [factories.vision(
        92_000, school, student_key=student, sex=sex, measured_on=first.isoformat(), occurred_at=SENT,
        age_months=_age_months(birth, first), ucva_right=5.0, ucva_left=5.0, se_right=0.25, se_left=0.25)]
    student, school, sex, birth = no_growth
    events.append(factories.bmi(
        92_001, school, student_key=student, sex=sex, measured_on=last.isoformat(), occurred_at=SENT,
        age_months=_age_months(birth, last), height_cm=150.0, weight_kg=40.0))
    write_classified(settings, events)
    for refresh in (refresh_incremental, refresh_rollups):
        refresh(settings)
        with psycopg.connect(settings.pg_dsn("admin")) as conn:
            former = sorted(conn.execute(FORMER_COVERAGE).fetchall())
            now = sorted(conn.execute(
                "SELECT school_year, student_key, screening_coverage FROM metrics.student_years").fetchall())
        assert now == former
        assert {positive for _, _, positive in now} == {True, False}
        covered = {(year, key) for year, key, positive in now if positive}
        assert (2025, no_vision[0]) in covered and (2024, no_growth[0]) in covered


def _random_events(settings: Settings, rng: random.Random, first: int, count: int) -> list[Any]:
    """`count` events of every kind the writer marks, for students and school years drawn at random."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        pupils = conn.execute(
            "SELECT y.school_year, y.student_key, y.school_id, y.county_id, y.grade, st.sex, st.birth_date"
            " FROM metrics.student_years y JOIN archive.students st USING (student_key) ORDER BY 1, 2").fetchall()
        schools = conn.execute("SELECT school_id, county_id FROM archive.schools ORDER BY 1").fetchall()
        screenings = conn.execute(
            "SELECT event_id, student_key, school_id, measured_on, sex, age_months FROM archive.vision_screenings"
            " WHERE supersedes IS NULL ORDER BY event_id").fetchall()
    events: list[Any] = []
    for n in range(first, first + count):
        year, student, school, county, grade, sex, birth = rng.choice(pupils)
        day = date(year + 1, rng.randint(1, 6), rng.randint(1, 28))  # inside school year `year`
        common = {"student_key": student, "sex": sex, "occurred_at": LATER, "age_months": _age_months(birth, day)}
        kind = rng.choice(("vision", "bmi", "survey", "correction", "transfer", "leave", "fitness"))
        if kind == "fitness" and grade < 7:
            kind = "bmi"  # the factory's test has junior secondary items (grades 7 to 9)
        if kind == "vision":
            events.append(factories.vision(n, school, measured_on=day.isoformat(), ucva_right=rng.choice((4.3, 5.0)),
                                           se_right=rng.choice((-2.5, 0.25)), **common))
        elif kind == "bmi":
            events.append(factories.bmi(n, school, measured_on=day.isoformat(), height_cm=rng.uniform(120, 170),
                                        weight_kg=rng.uniform(22, 80), **common))
        elif kind == "survey":
            events.append(factories.survey(n, school, answered_on=day.isoformat(),
                                           answers=[rng.randint(0, 3) for _ in range(9)],
                                           **{k: v for k, v in common.items() if k != "student_key"},
                                           student_key=student))
        elif kind == "correction":
            # A correction, now and then moving the screening into another school year (a mistyped date).
            event_id, owner, own_school, measured_on, own_sex, age = rng.choice(screenings)
            moved = measured_on if rng.random() < 0.5 else date(rng.choice(YEARS) + 1, 2, 14)
            events.append(factories.vision(n, own_school, student_key=owner, sex=own_sex, occurred_at=LATER,
                                           measured_on=moved.isoformat(), age_months=age, supersedes=str(event_id),
                                           ucva_right=4.1, ucva_left=4.2, se_right=-3.5, se_left=-3.0))
        elif kind in ("transfer", "leave"):
            to_school, to_county = rng.choice([row for row in schools if row[0] != school])
            when = datetime(year, rng.choice((9, 10, 11)), rng.randint(1, 28), 8, 0, tzinfo=UTC)
            extra = {"to_school_id": to_school} if kind == "transfer" else {}
            events.append(factories.record(n, school, action=kind, occurred_at=when, student_key=student,
                                            county_id=county if kind == "leave" else to_county, grade=grade,
                                            sex=sex, birth_date=birth.isoformat(), **extra))
        else:
            events.append(factories.fitness(n, school, student_key=student, sex=sex, grade=grade,
                                            measured_on=day.isoformat(), occurred_at=LATER))
    return events


# schoolhealth.pair_probe_rows (0124) forcing either reading of the busiest marked school year.
READINGS = {"probes": "0", "scan": "1e12"}


def _read_busiest_year_by(settings: Settings, reading: str) -> None:
    """The student mode reads the busiest marked school year's pairs by `reading` from now on (0124):
    a probe per pair, or one scan of the year (the other years' pairs are probed either way). A
    setting of the database, as an operator would tune it (the superuser's: a custom setting)."""
    with psycopg.connect(Postgres(settings)._superuser_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET schoolhealth.pair_probe_rows = {}").format(
            sql.Identifier(settings.pg_database), sql.Literal(READINGS[reading])))


@pytest.mark.parametrize("reading", sorted(READINGS))
@pytest.mark.parametrize("seed", [7, 2026])
def test_random_batches_by_student_equal_the_full_refresh(province: Settings, seed: int, reading: str) -> None:
    """Screenings, surveys, corrections across school years, transfers, leaves and fitness tests of
    students drawn at random, in batches: after each, the incremental refresh equals a full one,
    whether the busiest marked year's pairs are probed one by one or read by one scan (0124)."""
    rng = random.Random(seed)
    settings = province
    _read_busiest_year_by(settings, reading)
    for round_ in range(3):
        write_classified(settings, _random_events(settings, rng, 200_000 + 100 * round_, 30))
        result = refresh_incremental(settings)
        assert result.mode == "incremental" and result.rollup_years
        _assert_equals_full_refresh(settings)


Shares = dict[tuple[Any, ...], tuple[int, float]]


def _digit_shares(settings: Settings) -> tuple[Shares, Shares]:
    """The kept shares (0118), and the same computed here from the digit counts."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        kept = {tuple(row[:4]): (int(row[4]), float(row[5])) for row in conn.execute(
            "SELECT school_year, school_id, screener, quantity, measurements, share_0_or_5"
            " FROM metrics.digit_preference_shares").fetchall()}
        counts = conn.execute("SELECT school_year, school_id, screener, quantity, last_digit, measurements"
                              " FROM metrics.digit_preference").fetchall()
    totals: dict[tuple[Any, ...], list[int]] = {}
    for year, school, screener, quantity, digit, measurements in counts:
        total = totals.setdefault((year, school, screener, quantity), [0, 0])
        total[0] += measurements
        total[1] += measurements if digit in (0, 5) else 0
    return kept, {key: (n, zero_or_five / n) for key, (n, zero_or_five) in totals.items()}


def test_the_digit_preference_shares_follow_the_counts(province: Settings) -> None:
    """0118: each school's, screener's and quantity's share of 0s and 5s follows the digit counts
    through the full refresh and the student mode (a day of growth screenings, all ending in .0)."""
    settings = province
    kept, computed = _digit_shares(settings)
    assert kept and kept == computed
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        pupils = conn.execute(
            "SELECT y.student_key, y.school_id, st.sex, st.birth_date FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key) WHERE y.school_year = 2025"
            " ORDER BY y.school_id, y.student_key LIMIT 40").fetchall()
    day = date(2026, 3, 2)
    write_classified(settings, [
        factories.bmi(96_000 + n, school, student_key=student, sex=sex, measured_on=day.isoformat(),
                      occurred_at=SENT, age_months=_age_months(birth, day), height_cm=140.0, weight_kg=35.0,
                      screener="round-number-screener")
        for n, (student, school, sex, birth) in enumerate(pupils)])
    assert refresh_incremental(settings).mode == "incremental"
    kept, computed = _digit_shares(settings)
    assert kept == computed
    rounded = {key: share for key, (_, share) in kept.items() if key[2] == "round-number-screener"}
    assert rounded and set(rounded.values()) == {1.0}
    _assert_equals_full_refresh(settings)


def _results(settings: Settings, student: str) -> dict[tuple[int, str], bool]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        return {(int(year), str(metric)): bool(positive) for year, _, metric, positive in conn.execute(
            f"SELECT * FROM ({OBSERVATIONS}) o WHERE student_key = %s AND school_year IN (2024, 2025)",
            (student,)).fetchall()}


def test_a_correction_changes_only_the_results_it_touches(province: Settings) -> None:
    """One student's 2025 vision screenings are all corrected into school year 2024: the student's
    2025 row loses its vision results and its coverage and keeps its growth and survey results, and
    the result is the full refresh's (0117: one row per student-year, its results in columns)."""
    settings = province
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        found = conn.execute(
            "SELECT student_key FROM metrics.student_years WHERE school_year = 2025 AND myopia IS NOT NULL"
            " AND overweight_wst586 IS NOT NULL AND depression_positive IS NOT NULL AND screening_coverage"
            " ORDER BY 1 LIMIT 1").fetchone()
        assert found, "no 2025 student with vision, growth and survey results"
        student = str(found[0])
        screenings = conn.execute(
            "SELECT v.event_id, v.school_id, v.sex, v.age_months FROM archive.vision_screenings v"
            " WHERE v.student_key = %s AND v.measured_on BETWEEN '2025-09-01' AND '2026-08-31'"
            " AND NOT EXISTS (SELECT 1 FROM archive.vision_screenings c WHERE c.supersedes = v.event_id)",
            (student,)).fetchall()
    assert screenings
    before = _results(settings, student)
    write_classified(settings, [
        factories.vision(95_000 + n, school, student_key=student, sex=sex, occurred_at=LATER, age_months=age,
                         measured_on="2025-02-14", supersedes=str(event_id), ucva_right=4.1, ucva_left=4.2,
                         se_right=-3.5, se_left=-3.0)
        for n, (event_id, school, sex, age) in enumerate(screenings)])
    result = refresh_incremental(settings)
    assert result.mode == "incremental" and 2025 in (result.rollup_years or [])
    after = _results(settings, student)
    assert not {metric for year, metric in after if year == 2025} & {"myopia", "visual_impairment"}
    assert after[2025, "screening_coverage"] is False
    kept = {key: positive for key, positive in before.items()
            if key[0] == 2025 and key[1] not in ("myopia", "visual_impairment", "screening_coverage")}
    assert {"overweight_wst586", "depression_positive"} <= {metric for _, metric in kept}
    assert {key: after.get(key) for key in kept} == kept
    _assert_equals_full_refresh(settings)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # TimescaleDB: continuous aggregates
def test_the_incremental_refresh_recounts_only_the_marked_days_of_the_dailies(province: Settings) -> None:
    """Migration 0115, where the dailies are tables: a batch's screenings mark their (school, day); the
    incremental refresh recounts those days of those schools and leaves every other day's row as it
    was. The batch holds a correction dated on another day: both rows stay counted (the dailies count
    what was received), and its own day is recounted too."""
    settings = province
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert conn.execute("SELECT metrics.dailies_are_tables()").fetchone() == (True,)
        original = conn.execute(
            "SELECT event_id, student_key, school_id, sex, age_months FROM archive.vision_screenings"
            " WHERE measured_on BETWEEN '2025-09-01' AND '2026-08-31' ORDER BY event_id LIMIT 1").fetchone()
        assert original is not None
        versions = "SELECT day, school_id, screener, ctid::text || '/' || xmin::text FROM metrics.{}"
        before = {name: {tuple(row[:3]): row[3] for row in conn.execute(versions.format(name)).fetchall()}
                  for name in ("vision_daily", "growth_daily")}
    event_id, student, school, sex, age = original
    write_classified(settings, [
        factories.vision(96_000, school, student_key=student, sex=sex, occurred_at=LATER, age_months=age,
                         measured_on="2026-03-03", screener="doctor-late"),
        factories.vision(96_001, school, student_key=student, sex=sex, occurred_at=LATER, age_months=age,
                         measured_on="2026-03-04", supersedes=str(event_id), screener="doctor-late")])
    refresh_incremental(settings)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        after = {name: {tuple(row[:3]): row[3] for row in conn.execute(versions.format(name)).fetchall()}
                 for name in ("vision_daily", "growth_daily")}
        assert conn.execute("SELECT count(*) FROM metrics.dirty_days").fetchone() == (0,)
        new_rows = conn.execute(
            "SELECT day, measurements FROM metrics.vision_daily WHERE school_id = %s AND screener = 'doctor-late'"
            " ORDER BY day", (school,)).fetchall()
    assert new_rows == [(date(2026, 3, 3), 1), (date(2026, 3, 4), 1)]
    assert after["growth_daily"] == before["growth_daily"], "no growth screening arrived: nothing rewritten"
    untouched = {key: version for key, version in before["vision_daily"].items()
                 if not (key[1] == school and key[0] in (date(2026, 3, 3), date(2026, 3, 4)))}
    assert {key: after["vision_daily"].get(key) for key in untouched} == untouched
    _assert_equals_full_refresh(settings)


def test_the_writer_marks_days_only_where_the_dailies_are_tables(province: Settings, backend: str) -> None:
    """The day marks (0115) serve only dailies that are tables: on plain PostgreSQL a screening's
    batch marks its (school, day); on TimescaleDB, where the dailies are continuous aggregates kept
    by TimescaleDB's own invalidation log, the writer writes no mark at all."""
    settings = province
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        timescale = backend == "timescaledb"
        assert conn.execute("SELECT metrics.dailies_are_tables()").fetchone() == (not timescale,)
        pupil = conn.execute(
            "SELECT y.student_key, y.school_id, st.sex FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key) WHERE y.school_year = 2025 ORDER BY 1 LIMIT 1").fetchone()
        assert pupil is not None
        conn.execute("DELETE FROM metrics.dirty_days")
    student, school, sex = pupil
    write_classified(settings, [
        factories.vision(97_000, school, student_key=student, sex=sex, occurred_at=LATER, measured_on="2026-03-05"),
        factories.bmi(97_001, school, student_key=student, sex=sex, occurred_at=LATER, measured_on="2026-03-06")])
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        marks = conn.execute("SELECT daily, school_id, day FROM metrics.dirty_days ORDER BY 1").fetchall()
    expected = [] if timescale else [("growth", school, date(2026, 3, 6)), ("vision", school, date(2026, 3, 5))]
    assert marks == expected
    refresh_incremental(settings)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        counted = conn.execute(
            "SELECT (SELECT sum(measurements) FROM metrics.vision_daily WHERE school_id = %s AND day = '2026-03-05'),"
            " (SELECT sum(measurements) FROM metrics.growth_daily WHERE school_id = %s AND day = '2026-03-06')",
            (school, school)).fetchone()
    assert counted is not None and counted[0] and counted[1], "the new screenings are not in the dailies"
    _assert_equals_full_refresh(settings)


def test_a_year_marked_mostly_is_recomputed_whole(province: Settings) -> None:
    """When the marks name more than WHOLE_YEAR_SHARE of a school year's student-years (a bulk import
    of that year), the refresh recomputes that year whole instead of student by student (0114 reads
    each pair through its indexes: slower than the year's scan for most of a year); a year with a
    few marks stays in the student mode. Either way the result is the full refresh's."""
    settings = province
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        pupils = conn.execute(
            "SELECT y.student_key, y.school_id, st.sex, st.birth_date FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key) WHERE y.school_year = 2024 ORDER BY 1").fetchall()
        lone = conn.execute(
            "SELECT y.student_key, y.school_id, st.sex, st.birth_date FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key) WHERE y.school_year = 2025 ORDER BY 1 LIMIT 1").fetchone()
    assert pupils and lone
    day, other_day = date(2025, 3, 3), date(2026, 3, 3)
    marked = pupils[:int(len(pupils) * WHOLE_YEAR_SHARE) + 1]
    events: list[Any] = [
        factories.vision(97_000 + n, school, student_key=student, sex=sex, occurred_at=LATER,
                         measured_on=day.isoformat(), age_months=_age_months(birth, day), ucva_right=4.4)
        for n, (student, school, sex, birth) in enumerate(marked)]
    student, school, sex, birth = lone
    events.append(factories.vision(98_000, school, student_key=student, sex=sex, occurred_at=LATER,
                                   measured_on=other_day.isoformat(), age_months=_age_months(birth, other_day)))
    write_classified(settings, events)
    untouched_2024 = _rollup_versions(settings, 2024)
    untouched_2025 = _rollup_versions(settings, 2025)
    result = refresh_incremental(settings)
    assert result.rollup_years == [2024, 2025]
    after_2024, after_2025 = _rollup_versions(settings, 2024), _rollup_versions(settings, 2025)
    # 2024 whole: every student-year written again, the unmarked ones too.
    rewritten = [key for key, versions in untouched_2024["student_years"].items()
                 if after_2024["student_years"].get(key) != versions]
    assert len(rewritten) == len(untouched_2024["student_years"])
    # 2025 by student: only the lone pupil's student-year.
    changed = [key for key, versions in untouched_2025["student_years"].items()
               if after_2025["student_years"].get(key) != versions]
    assert changed == [student]
    _assert_equals_full_refresh(settings)


def _chunks_holding(conn: psycopg.Connection[Any], tables: list[str], day: date) -> list[str]:
    """The chunks of the archive hypertables `tables` whose range holds `day`."""
    return [str(r[0]) for r in conn.execute(
        "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks"
        " WHERE hypertable_schema = 'archive' AND hypertable_name = ANY(%s)"
        " AND %s::timestamptz >= range_start AND %s::timestamptz < range_end", (tables, day, day)).fetchall()]


def _analyze_counts(settings: Settings, relations: list[str]) -> dict[str, int]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        found = {str(r[0]): int(r[1]) for r in conn.execute(
            "SELECT relid::regclass::text, analyze_count FROM pg_stat_user_tables"
            " WHERE relid::regclass::text = ANY(%s)", (relations,)).fetchall()}
    return {name: found.get(name, 0) for name in relations}


@pytest.mark.parametrize("backend", ["timescaledb"], indirect=True)  # chunks: TimescaleDB's
def test_a_refresh_first_analyses_the_chunks_a_screening_day_opened(province: Settings) -> None:
    """A screening day whose rows are the first of their 28 days opens new chunks, which PostgreSQL
    has never analysed; without statistics the incremental refresh's per-pair probes read each such
    chunk's whole date index once per pair (7.5 minutes and more at 1M students). The refresh
    analyses them first (0123), and only chunks that never had statistics."""
    settings = province
    tables = ("vision_screenings", "growth_screenings")
    chunks = ("SELECT format('%%I.%%I', k.chunk_schema, k.chunk_name), c.reltuples"
              " FROM timescaledb_information.chunks k"
              " JOIN pg_class c ON c.oid = format('%%I.%%I', k.chunk_schema, k.chunk_name)::regclass"
              " WHERE k.hypertable_schema = 'archive' AND k.hypertable_name = ANY(%(tables)s)")
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        before: dict[str, float] = dict(conn.execute(chunks, {"tables": list(tables)}).fetchall())
        assert before and all(tuples >= 0 for tuples in before.values()), before
        # A day of school year 2025 in none of their chunks (the seeded screenings are not in summer).
        day = next(d for d in (date(2026, 8, 31) - timedelta(days=n) for n in range(365))
                   if not _chunks_holding(conn, list(tables), d))
        pupils = conn.execute(
            "SELECT y.student_key, y.school_id, st.sex, st.birth_date FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key) WHERE y.school_year = 2025 ORDER BY 1 LIMIT 30").fetchall()
    assert len(pupils) == 30 and date(2025, 9, 1) <= day
    # 30 rows a chunk: under autovacuum's threshold (50), so nothing else analyses them meanwhile.
    events: list[Any] = []
    for n, (student, school, sex, birth) in enumerate(pupils):
        common = {"student_key": student, "sex": sex, "measured_on": day.isoformat(), "occurred_at": LATER,
                  "age_months": _age_months(birth, day)}
        events.append(factories.vision(99_000 + n, school, **common))
        events.append(factories.bmi(99_000 + n, school, **common))
    write_classified(settings, events)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        opened = {name: tuples for name, tuples in conn.execute(chunks, {"tables": list(tables)}).fetchall()
                  if name not in before}
    assert len(opened) == 2 and all(tuples < 0 for tuples in opened.values()), opened
    counted = _analyze_counts(settings, [*before, *opened])

    result = refresh_incremental(settings)
    assert result.rollup_years == [2025]
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        after: dict[str, float] = dict(conn.execute(chunks, {"tables": list(tables)}).fetchall())
        again = conn.execute("SELECT archive.analyze_new_chunks()").fetchone()
    assert {name: after[name] for name in opened} == {name: 30.0 for name in opened}
    analysed = _analyze_counts(settings, list(after))
    # ANALYZE (not autovacuum's) ran once on each opened chunk, and on no chunk that had statistics.
    assert {name: analysed[name] - counted[name] for name in after} == {
        name: int(name in opened) for name in after}
    assert again == ([],)
    _assert_equals_full_refresh(settings)


@pytest.mark.parametrize("reading", sorted(READINGS))
@pytest.mark.parametrize("backend", ["timescaledb"], indirect=True)  # chunks and columnstore: TimescaleDB's
def test_the_student_modes_probes_skip_the_other_years_columnstore_chunks(province: Settings, reading: str) -> None:
    """The incremental refresh's per-student probes read only the chunks of the marked school years
    (0122), and so does its scan of the busiest marked year (0124): a screening day of 2025 must not
    make them scan the columnstore chunks of the years before (at 1M students that cost 260 ms per
    marked student). Counted by PostgreSQL's own per-transaction table statistics, in the
    transaction that runs the student mode."""
    settings = province
    _read_busiest_year_by(settings, reading)
    closed_before = "2025-09-01"
    with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
        for (chunk,) in conn.execute(
                "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks"
                " WHERE hypertable_schema = 'archive' AND range_end <= %s::timestamptz", (closed_before,)).fetchall():
            conn.execute("CALL convert_to_columnstore(%s::regclass)", (chunk,))
        closed = [str(r[0]) for r in conn.execute(
            "SELECT format('%I.%I', k.chunk_schema, k.chunk_name) FROM timescaledb_information.chunks k"
            " WHERE k.hypertable_schema = 'archive' AND k.is_compressed"
            " UNION ALL SELECT format('%I.%I', c.schema_name, c.table_name)"
            " FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.chunk u ON u.compressed_chunk_id = c.id"
            " JOIN _timescaledb_catalog.hypertable h ON h.id = u.hypertable_id WHERE h.schema_name = 'archive'"
        ).fetchall()]
        pupil = conn.execute(
            "SELECT y.student_key, y.school_id, st.sex, st.birth_date FROM metrics.student_years y"
            " JOIN archive.students st USING (student_key) WHERE y.school_year = 2025 ORDER BY 1 LIMIT 1").fetchone()
    assert pupil is not None and len(closed) > 10
    student, school, sex, birth = pupil
    day = date(2026, 3, 10)
    write_classified(settings, [
        factories.vision(99_500, school, student_key=student, sex=sex, measured_on=day.isoformat(), occurred_at=LATER,
                         age_months=_age_months(birth, day), ucva_right=4.4),
        factories.bmi(99_500, school, student_key=student, sex=sex, measured_on=day.isoformat(), occurred_at=LATER,
                      age_months=_age_months(birth, day))])
    scans = ("SELECT s.relid::regclass::text, s.seq_scan + coalesce(s.idx_scan, 0) FROM pg_stat_xact_user_tables s"
             " WHERE s.relid = ANY(%s::regclass[]) AND s.seq_scan + coalesce(s.idx_scan, 0) > 0")
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        current = _chunks_holding(conn, ["vision_screenings"], day)
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        years = conn.execute("SELECT metrics.recompute_marked_students('{}'::integer[])").fetchone()
        assert years == ([2025],)
        read_current = conn.execute(scans, (current,)).fetchall()
        read_closed = conn.execute(scans, (closed,)).fetchall()
    assert read_current, "the student mode did not read the day's chunk (no probe ran)"
    assert read_closed == [], "the student mode scanned columnstore chunks of closed school years"


def _scanned_year(settings: Settings, pairs: list[tuple[str, int]]) -> int | None:
    """metrics.scanned_school_year() (0124) for these marked pairs, as the refresh's owner."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        conn.execute("CREATE TEMP TABLE dirty_pairs (student_key text NOT NULL, school_year integer NOT NULL,"
                     " PRIMARY KEY (school_year, student_key)) ON COMMIT DROP")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO dirty_pairs VALUES (%s, %s)", pairs)
        conn.execute("ANALYZE dirty_pairs")
        row = conn.execute("SELECT metrics.scanned_school_year()").fetchone()
    return None if row is None else row[0]


def test_a_screening_day_reads_its_year_once_and_a_few_marks_are_probed(province: Settings, backend: str) -> None:
    """The refresh reads the busiest marked school year once where probing each of its pairs would
    cost more (0124: pairs x probes per pair x 9 rows against the year's vision screenings, a probe
    per chunk of the year on TimescaleDB), and keeps the probes for a few marks; other years' marks
    do not count; schoolhealth.pair_probe_rows = 0 turns the scans off."""
    settings = province
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        students = {year: [str(r[0]) for r in conn.execute(
            "SELECT student_key FROM metrics.student_years WHERE school_year = %s ORDER BY 1", (year,)).fetchall()]
            for year in (2024, 2025)}
        row = conn.execute("SELECT count(*) FROM archive.vision_screenings"
                           " WHERE measured_on BETWEEN '2025-09-01' AND '2026-08-31'").fetchone()
        probes = 1
        if backend == "timescaledb":
            chunks = conn.execute(
                "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = 'archive'"
                " AND hypertable_name = 'vision_screenings'"
                " AND range_start <= '2026-08-31' AND range_end > '2025-09-01'").fetchone()
            assert chunks and chunks[0] > 1
            probes = int(chunks[0])
    assert row is not None
    # The pairs at which a probe each costs as much as the year's scan (the planner's estimate of
    # the year's rows is near the count: the fixture analysed every chunk).
    even = row[0] / (9 * probes)
    below, above = int(even * 0.7), int(even * 1.3) + 1
    assert below > 0 and above < len(students[2025]), (row[0], probes)
    assert _scanned_year(settings, [(student, 2025) for student in students[2025][:below]]) is None
    # The busiest year's pairs decide; a correction of 2024 besides them is probed either way.
    day = [(student, 2025) for student in students[2025][:above]] + [(students[2024][0], 2024)]
    assert _scanned_year(settings, day) == 2025
    _read_busiest_year_by(settings, "probes")
    assert _scanned_year(settings, day) is None
