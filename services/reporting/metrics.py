"""Annual indicators against the database: refresh the rollups, compute, publish revisions.

The SQL rollups (migration 0020) count students per school year, metric, school and
characteristics; `models.metrics` turns those fine cells into every published cell (school,
county, province by each breakdown), withholds small cells with complementary suppression and
adds Wilson intervals and the year-on-year change. The result goes to `metrics.live_indicators`
(what `reporting.indicators` shows) on every refresh, and to a new immutable revision of
`metrics.published_indicators` on every publication.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

import psycopg
from threadpoolctl import threadpool_limits

from models.metrics import (
    METRICS,
    CellKey,
    FineCell,
    IndicatorCell,
    SchoolStaffing,
    indicator_table,
    published_counts,
    school_doctor_table,
)
from services.platform.settings import Settings

log = logging.getLogger(__name__)

PROVINCE_NAME = "Province"

_COLUMNS = ("school_year", "metric_id", "metric_version", "level", "area_id", "area_name", "county_id",
            "breakdown", "category", "denominator", "numerator", "rate", "ci_low", "ci_high",
            "previous_rate", "change", "change_ci_low", "change_ci_high", "suppressed")


def _fine_cells(conn: psycopg.Connection, year: int, metric_id: str) -> list[FineCell]:
    rows = conn.execute(
        "SELECT school_id, county_id, urban_rural, sex, grade, left_behind, disability, denominator, numerator"
        " FROM metrics.indicator_cells WHERE school_year = %s AND metric_id = %s"
        " UNION ALL SELECT school_id, county_id, urban_rural, sex, grade, left_behind, disability, denominator,"
        " numerator FROM metrics.fitness_cells WHERE school_year = %s AND metric_id = %s",
        (year, metric_id, year, metric_id),
    ).fetchall()
    return [FineCell(school_id=r[0], county_id=r[1], urban_rural=r[2], sex=r[3], grade=int(r[4]),
                     left_behind=bool(r[5]), disability=bool(r[6]), denominator=int(r[7]), numerator=int(r[8]))
            for r in rows]


def _schools(conn: psycopg.Connection) -> list[SchoolStaffing]:
    rows = conn.execute(
        "SELECT school_id, county_id, urban_rural, boarding, enrollment, school_doctors FROM archive.schools"
    ).fetchall()
    return [SchoolStaffing(school_id=r[0], county_id=r[1], urban_rural=r[2], boarding=bool(r[3]),
                           enrollment=int(r[4]), school_doctors=int(r[5])) for r in rows]


def _live_published(conn: psycopg.Connection, year: int, metric_id: str) -> dict[CellKey, tuple[int, int]] | None:
    """The published cells of a year's live indicators of one metric; None when it has no live rows."""
    rows = conn.execute(
        "SELECT level, area_id, breakdown, category, denominator, numerator, suppressed IS NULL"
        " FROM metrics.live_indicators WHERE school_year = %s AND metric_id = %s", (year, metric_id)).fetchall()
    if not rows:
        return None
    return {(r[0], r[1], r[2], r[3]): (int(r[4]), int(r[5])) for r in rows if r[6] and r[4] is not None}


def compute_year(conn: psycopg.Connection, year: int,
                 previous_year: Sequence[IndicatorCell] | None = None) -> list[IndicatorCell]:
    """Every indicator cell of one school year, from the refreshed rollups.

    The change since the year before needs that year's published cells: `previous_year` when the
    caller has just computed it, else its live indicators (written by the refresh that last
    recomputed it; a year whose rollups did not change since keeps them), else its rollups,
    suppressed here. Each way gives the same cells; the first two skip suppressing the year
    again (at a million students, half of the indicators' time).
    """
    before: dict[str, list[IndicatorCell]] = {}
    for cell in previous_year or ():
        before.setdefault(cell.metric_id, []).append(cell)
    cells: list[IndicatorCell] = []
    for metric in METRICS:
        if metric.unit == "school":
            continue
        current = _fine_cells(conn, year, metric.id)
        if current:
            if previous_year is not None:
                published: dict[CellKey, tuple[int, int]] | None = published_counts(before.get(metric.id, ()))
            else:
                published = _live_published(conn, year - 1, metric.id)
            previous = _fine_cells(conn, year - 1, metric.id) if published is None else []
            # The suppression check's SVDs are small: OpenBLAS threads only spin against each other
            # on 2 busy cores (measured: one year 0.64-1.17 s with them, 0.19 s without).
            with threadpool_limits(limits=1, user_api="blas"):
                cells.extend(indicator_table(metric, year, current, previous, previous_published=published))
    # Staffing is known only as it stands now, so it has no year-on-year change.
    cells.extend(school_doctor_table(year, _schools(conn)))
    return cells


def _names(conn: psycopg.Connection) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    rows = conn.execute("SELECT school_id, name, county_id, county_name FROM archive.schools").fetchall()
    schools = {r[0]: r[1] for r in rows}
    county_of = {r[0]: r[2] for r in rows}
    counties = {r[2]: r[3] for r in rows}
    return schools, county_of, counties


def _rows(conn: psycopg.Connection, cells: Iterable[IndicatorCell]) -> list[tuple[object, ...]]:
    schools, county_of, counties = _names(conn)
    out: list[tuple[object, ...]] = []
    for c in cells:
        if c.level == "school":
            name, county = schools.get(c.area_id, c.area_id), county_of.get(c.area_id)
        elif c.level == "county":
            name, county = counties.get(c.area_id, c.area_id), c.area_id
        else:
            name, county = PROVINCE_NAME, None
        out.append((c.school_year, c.metric_id, c.metric_version, c.level, c.area_id, name, county,
                    c.breakdown, c.category, c.denominator, c.numerator, c.rate, c.ci_low, c.ci_high,
                    c.previous_rate, c.change, c.change_ci_low, c.change_ci_high, c.suppressed))
    return out


def _definitions_json() -> str:
    return json.dumps([{"id": m.id, "version": m.version, "title": m.title, "unit": m.unit,
                        "numerator": m.numerator, "denominator": m.denominator,
                        "inclusion": m.inclusion, "reference": m.reference} for m in METRICS], ensure_ascii=False)


def _write_definitions(conn: psycopg.Connection) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO metrics.definitions (metric_id, version, title, unit, numerator, denominator, inclusion,"
            " reference) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (metric_id, version) DO UPDATE SET"
            " title = EXCLUDED.title, unit = EXCLUDED.unit, numerator = EXCLUDED.numerator,"
            " denominator = EXCLUDED.denominator, inclusion = EXCLUDED.inclusion, reference = EXCLUDED.reference",
            [(m.id, m.version, m.title, m.unit, m.numerator, m.denominator, m.inclusion, m.reference) for m in METRICS],
        )


def _copy(conn: psycopg.Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


_SCHOOLS_DIGEST = "SELECT md5(COALESCE(string_agg(s::text, '|' ORDER BY s.school_id), '')) FROM archive.schools s"


def _tune(conn: psycopg.Connection) -> None:
    # The rollups sort every student-year by a 64-character key: with the default 4 MB they spill to
    # disk and take several times longer; JIT compilation costs more than it saves at this size.
    conn.execute("SET LOCAL work_mem = '128MB'")
    conn.execute("SET LOCAL jit = off")


def _live_years(conn: psycopg.Connection) -> list[int]:
    return [int(r[0]) for r in conn.execute(
        "SELECT DISTINCT school_year FROM metrics.indicator_cells ORDER BY 1").fetchall()]


def _dirty_years(conn: psycopg.Connection) -> set[int]:
    """Take the marks the archive writer left (0085) and return the school years they name.

    The marks are deleted first, in this transaction, and the rollups read afterwards (a later
    snapshot): a batch committed in between is in both or left marked for the next refresh.
    """
    marks = conn.execute("DELETE FROM metrics.dirty_years RETURNING school_year, onwards").fetchall()
    exact = {int(year) for year, onwards in marks if not onwards}
    onwards = [int(year) for year, onward in marks if onward]
    if onwards:
        row = conn.execute(
            "SELECT greatest((SELECT max(metrics.school_year(effective_on)) FROM archive.student_history),"
            " (SELECT max(school_year) FROM metrics.student_years),"
            " (SELECT max(school_year) FROM metrics.fitness_observations))").fetchone()
        last = max([*onwards, *exact, int(row[0]) if row and row[0] is not None else min(onwards)])
        exact.update(range(min(onwards), last + 1))
    return exact


#: A school year whose marks name more than this share of its student-years is recomputed whole.
#: The student mode reads each marked pair's rows through its indexes (0114): the work of a screening
#: day (an eighth of a year at a million students) but slower than reading the year once when most
#: of it is marked (a bulk import of a year, a first refresh after seeding: at a million students
#: 4 million pairs ran for over ten minutes before they were stopped).
WHOLE_YEAR_SHARE: Final = 0.3


def _mostly_marked_years(conn: psycopg.Connection) -> set[int]:
    """The school years with marks on more than WHOLE_YEAR_SHARE of their student-years (any share
    of a year without student-years yet). Their marks are taken with the others (0109)."""
    rows = conn.execute(
        "SELECT m.school_year FROM (SELECT school_year, count(DISTINCT student_key) AS marked"
        " FROM metrics.dirty_students GROUP BY 1) m"
        " LEFT JOIN (SELECT school_year, count(*) AS students FROM metrics.student_years GROUP BY 1) y"
        " USING (school_year) WHERE m.marked > %s * coalesce(y.students, 0)", (WHOLE_YEAR_SHARE,)).fetchall()
    return {int(row[0]) for row in rows}


class RefreshResult:
    """What one refresh did: its mode and the school years whose live indicators it rewrote."""

    def __init__(self, mode: str, rollup_years: list[int] | None, live_years: list[int], cells: int, *,
                 rollup_seconds: float = 0.0, indicator_seconds: float = 0.0) -> None:
        self.mode = mode
        self.rollup_years = rollup_years  # None: every year (full)
        self.live_years = live_years
        self.cells = cells
        # Where the time went (the scale benchmark reports it): the SQL rollups and dailies, then
        # the indicator cells computed, suppressed and written.
        self.rollup_seconds = rollup_seconds
        self.indicator_seconds = indicator_seconds

    def __repr__(self) -> str:
        return f"RefreshResult({self.mode}, rollups={self.rollup_years}, live={self.live_years}, cells={self.cells})"


_LIVE_LOCK = "SELECT {}(hashtext('schoolhealth.metrics.live'))"


def _refresh_live(settings: Settings, *, wait: bool, full: bool) -> RefreshResult | None:
    """Refresh the rollups and the live indicators, of every year (`full`) or of what changed.

    Incremental: the student-years the archive writer marked since the last refresh have their
    rollup rows recomputed, and the cells of their schools (0109; a whole school year where one is
    marked whole, 0085); the live indicators of their school years and of the next ones (the
    year-on-year change reads them) are rewritten, every other year's rows stay as they are. When the schools changed
    since the last refresh (their names, counties and staffing are in every year) it is a full one;
    so it is when a database crash emptied the unlogged rollup tables (0111).
    """
    with psycopg.connect(settings.pg_dsn("app"), autocommit=True) as conn:
        # Statistics for the chunks the day's rows opened (0123): without them the per-pair probes
        # scan the whole chunk's date index for every pair.
        row = conn.execute("SELECT archive.analyze_new_chunks()").fetchone()
        if row and row[0]:
            log.info("analysed %d new archive chunk(s) before the refresh", len(row[0]))
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        # One refresh at a time (CLI, publication, every worker's timer).
        locked = conn.execute(_LIVE_LOCK.format("pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"))
        row = locked.fetchone()
        if not wait and not (row and row[0]):
            return None
        _tune(conn)
        state = conn.execute("SELECT schools_digest FROM metrics.refresh_state").fetchone()
        digest_row = conn.execute(_SCHOOLS_DIGEST).fetchone()
        digest = str(digest_row[0]) if digest_row else ""
        if state is not None and state[0] != digest:
            full = True
        intact = conn.execute("SELECT EXISTS (SELECT 1 FROM metrics.rollups_intact)").fetchone()
        if not full and not (intact and intact[0]):
            # The rollup tables are unlogged (0111): a crash of PostgreSQL, or a promoted standby,
            # left them empty. Only a full refresh rebuilds them.
            log.warning("the rollup tables were emptied (a database crash or failover): full refresh")
            full = True
        before = set(_live_years(conn))
        began = time.perf_counter()
        if full:
            conn.execute("DELETE FROM metrics.dirty_years")
            conn.execute("DELETE FROM metrics.dirty_students")
            conn.execute("SELECT metrics.recompute_rollups(NULL)")
            conn.execute("INSERT INTO metrics.rollups_intact DEFAULT VALUES ON CONFLICT DO NOTHING")
            rollup_years: list[int] | None = None
            whole: list[int] = []
            years = _live_years(conn)
            conn.execute("DELETE FROM metrics.live_indicators")
        else:
            whole = sorted(_dirty_years(conn) | _mostly_marked_years(conn))
            conn.execute("SELECT metrics.recompute_rollups(%s)", (whole,))
            # The writer's marks (0109): the marked student-years of the other years, and their schools' cells.
            row = conn.execute("SELECT metrics.recompute_marked_students(%s)", (whole,)).fetchone()
            dirty = set(whole) | {int(year) for year in (row[0] if row and row[0] else [])}
            rollup_years = sorted(dirty)
            # A year's change from the year before reads the year before's cells.
            touched = dirty | {year + 1 for year in dirty}
            now = set(_live_years(conn))
            years = sorted(touched & now)
            conn.execute("DELETE FROM metrics.live_indicators WHERE school_year = ANY(%s)",
                         (sorted(touched & (now | before)),))
        if full or whole:
            conn.execute("SELECT metrics.refresh_dailies()")
        else:
            # The days the writer marked, of the schools it marked them for (0115).
            conn.execute("SELECT metrics.refresh_marked_dailies()")
        rollup_seconds = time.perf_counter() - began
        began = time.perf_counter()
        _write_definitions(conn)
        rows: list[tuple[object, ...]] = []
        last: tuple[int, list[IndicatorCell]] | None = None
        for year in years:
            cells = compute_year(conn, year, last[1] if last is not None and last[0] == year - 1 else None)
            rows.extend(_rows(conn, cells))
            last = (year, cells)
        _copy(conn, "metrics.live_indicators", _COLUMNS, rows)
        indicator_seconds = time.perf_counter() - began
        mode = "full" if full else "incremental"
        conn.execute(
            "INSERT INTO metrics.refresh_state (schools_digest, last_full_at, last_refresh_at, last_mode, last_years)"
            " VALUES (%s, now(), now(), %s, %s) ON CONFLICT (singleton) DO UPDATE SET"
            " schools_digest = EXCLUDED.schools_digest, last_refresh_at = now(), last_mode = EXCLUDED.last_mode,"
            " last_years = EXCLUDED.last_years,"
            " last_full_at = CASE WHEN EXCLUDED.last_mode = 'full' THEN now()"
            " ELSE metrics.refresh_state.last_full_at END",
            (digest, mode, years))
        # The alert operations panels' rollup (migration 0105), under this refresh's lock, in its own
        # short transaction; its marks keep the panels exact between refreshes.
        with psycopg.connect(settings.pg_dsn("app"), autocommit=True) as alerts_conn:
            alerts_conn.execute("SELECT alerts.refresh_panel_rollups()")
    log.info("%s refresh: %d indicator cells over school years %s", mode, len(rows), years)
    return RefreshResult(mode, rollup_years, years, len(rows), rollup_seconds=rollup_seconds,
                         indicator_seconds=indicator_seconds)


def refresh_continuous_aggregates(settings: Settings) -> list[str]:
    """Refresh the TimescaleDB continuous aggregates of `metrics` (none on plain PostgreSQL); return their names.

    Their refresh policy does this hourly where background jobs work; they fail on some PostgreSQL
    minors (15.20), so every rollup refresh does it too. TimescaleDB lets only a continuous
    aggregate's owner refresh it, and never inside a transaction: an autocommit owner connection.
    Only invalidated buckets are recomputed, so a refresh with nothing new is cheap.
    """
    with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
        installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        if installed is None:
            return []
        names = [str(r[0]) for r in conn.execute(
            "SELECT format('%I.%I', view_schema, view_name) FROM timescaledb_information.continuous_aggregates"
            " WHERE view_schema = 'metrics' ORDER BY view_name").fetchall()]
        for name in names:
            conn.execute("CALL refresh_continuous_aggregate(%s::regclass, NULL, NULL)", (name,))
    return names


def refresh_rollups(settings: Settings) -> RefreshResult:
    """Recompute every rollup and every year's live (suppressed) indicators (`refresh --full`, publication)."""
    result = _refresh_live(settings, wait=True, full=True)
    assert result is not None  # waited for the lock
    refresh_continuous_aggregates(settings)
    return result


def refresh_incremental(settings: Settings) -> RefreshResult:
    """Recompute only the school years changed since the last refresh (full if there was none)."""
    result = _refresh_live(settings, wait=True, full=False)
    assert result is not None  # waited for the lock
    refresh_continuous_aggregates(settings)
    return result


def try_refresh_rollups(settings: Settings) -> bool:
    """Refresh incrementally unless another process is refreshing right now; say whether this one did."""
    refreshed = _refresh_live(settings, wait=False, full=False) is not None
    if refreshed:
        refresh_continuous_aggregates(settings)
    return refreshed


def register_refresh_timer(app: Any, settings: Settings) -> None:
    """Refresh the rollups from a stream worker every `metrics_refresh_seconds` (0: never).

    Every worker of the group has the timer; the advisory lock lets one of them refresh and the
    others skip that round. The timer only ever refreshes incrementally (a full refresh is
    `schoolhealth refresh --full` or a publication). The refresh is synchronous, so it runs in a thread.
    """
    interval = settings.metrics_refresh_seconds
    if interval <= 0:
        return

    @app.timer(interval=interval)  # type: ignore[untyped-decorator]  # faust
    async def refresh_metrics() -> None:
        try:
            await asyncio.to_thread(try_refresh_rollups, settings)
        except Exception:
            log.exception("metrics refresh failed; retrying at the next interval")


def publish_year(settings: Settings, year: int) -> int:
    """Freeze school year `year` into a new revision of the published indicators; return the revision."""
    refresh_rollups(settings)
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        # One publisher at a time per year, so revisions are consecutive.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('schoolhealth.publish'), %s::integer)", (year,))
        cells = compute_year(conn, year)
        if not any(c.metric_id != "school_doctor" for c in cells):
            raise ValueError(f"school year {year} has no screenings to publish")
        row = conn.execute("SELECT COALESCE(max(revision), 0) + 1 FROM metrics.publications WHERE school_year = %s",
                           (year,)).fetchone()
        revision = int(row[0]) if row else 1
        rows = _rows(conn, cells)
        conn.execute(
            "INSERT INTO metrics.publications (school_year, revision, definitions, cells) VALUES (%s, %s, %s, %s)",
            (year, revision, _definitions_json(), len(rows)),
        )
        _copy(conn, "metrics.published_indicators", ("revision", *_COLUMNS),
              ((revision, *published) for published in rows))
    log.info("published school year %d as revision %d (%d cells)", year, revision, len(rows))
    return revision


def headline_indicators(settings: Settings, year: int) -> dict[str, float | None]:
    """Province-level rates of the newest published revision of `year`, by metric id."""
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        rows = conn.execute(
            "SELECT metric_id, rate FROM reporting.published_indicators"
            " WHERE school_year = %s AND level = 'province' AND breakdown = 'all'",
            (year,),
        ).fetchall()
    found = {str(r[0]): (None if r[1] is None else float(r[1])) for r in rows}
    return {metric.id: found.get(metric.id) for metric in METRICS}
