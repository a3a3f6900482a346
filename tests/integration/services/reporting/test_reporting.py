"""Published indicators against an independent recomputation, the Grafana role's reach, panel SQL.

The recomputation reads the raw archive rows into Python and redoes every step its own way (the
census, the latest screening, the aggregation to schools, counties and the province, Wilson
intervals); it shares no SQL with the rollups and no code with `models.metrics` except for the
suppression pattern, which is checked both for its properties (every small cell withheld, no
withheld cell determined by the published ones) and for equality with the pure function run on
the independently computed counts.
"""

from __future__ import annotations

import csv
import json
import math
import re
import signal
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import errors, sql

from models.metrics import Relation, suppress
from models.synthetic import ProvinceSpec
from services.devtools.seed import import_directory, import_fitness, seed_archive
from services.devtools.synthetic_files import write_province
from services.platform.settings import Settings
from services.reporting.dashboards import DASHBOARDS, JSON_DIR
from services.reporting.metrics import headline_indicators, publish_year, refresh_rollups
from services.reporting.report import ReportError, write_report
from tests.integration.conftest import WorkerProcess, count, wait_for

pytestmark = pytest.mark.integration

YEAR = 2025
STUDENT_METRICS = ("health_literacy", "myopia", "visual_impairment", "overweight_wst586", "obesity_wst586",
                   "overweight_who", "obesity_who", "wasting", "depression_positive", "anxiety_positive",
                   "screening_coverage")


def _small(counts: dict[Any, tuple[int, int]]) -> set[Any]:
    """Cells whose numerator or complement is a count from 1 to 9 (withheld whatever their size)."""
    return {key for key, (n, k) in counts.items() if 0 < k < 10 or 0 < n - k < 10}


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Three counties so that county cells add up to the province through more than one part.
    directory = tmp_path_factory.mktemp("province")
    write_province(ProvinceSpec(students=1200, seed=20251, school_years=(2023, 2024, 2025), counties=3), directory)
    return directory


@pytest.fixture
def seeded(isolated: Settings, province: Path) -> Settings:
    import_directory(isolated, province)
    return isolated


def school_year(day: date) -> int:
    return day.year if day.month >= 9 else day.year - 1


@dataclass(frozen=True)
class Enrolled:
    school_id: str
    county_id: str
    urban_rural: str
    sex: str
    grade: int
    left_behind: bool
    disability: bool


def _current(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    replaced = {row["supersedes"] for row in rows if row["supersedes"] is not None}
    return [row for row in rows if row["event_id"] not in replaced]


def _fetch(conn: psycopg.Connection, query: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return list(cursor.execute(query).fetchall())


def recompute(settings: Settings, year: int) -> dict[str, dict[tuple[str, str, str, str], tuple[int, int]]]:
    """(denominator, numerator) per metric and cell, straight from the archive tables."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        schools = {r["school_id"]: r for r in _fetch(conn, "SELECT * FROM archive.schools")}
        sexes = {r["student_key"]: r["sex"] for r in _fetch(conn, "SELECT student_key, sex FROM archive.students")}
        history = _current(_fetch(conn, "SELECT * FROM archive.student_history"))
        vision = _current(_fetch(conn, "SELECT * FROM archive.vision_screenings"))
        growth = _current(_fetch(conn, "SELECT * FROM archive.growth_screenings"))
        survey = _current(_fetch(conn, "SELECT * FROM archive.survey_results"))

    census = date(year, 9, 30)
    latest: dict[str, dict[str, Any]] = {}
    for record in history:
        if record["effective_on"] > census:
            continue
        order = (record["effective_on"], record["occurred_at"], record["event_id"])
        held = latest.get(record["student_key"])
        if held is None or order > (held["effective_on"], held["occurred_at"], held["event_id"]):
            latest[record["student_key"]] = record
    enrolled: dict[str, Enrolled] = {}
    for key, record in latest.items():
        if record["action"] == "leave":
            continue
        grade = record["grade"] + year - school_year(record["effective_on"])
        if not 1 <= grade <= 9:
            continue
        school = schools[record["to_school_id"] or record["school_id"]]
        enrolled[key] = Enrolled(school["school_id"], school["county_id"], school["urban_rural"], sexes[key], grade,
                                 record["left_behind"], record["disability"])

    def newest(rows: list[dict[str, Any]], day: str, group: str | None = None) -> dict[Any, dict[str, Any]]:
        chosen: dict[Any, dict[str, Any]] = {}
        for row in rows:
            if school_year(row[day]) != year:
                continue
            key = (row["student_key"], row[group]) if group else row["student_key"]
            held = chosen.get(key)
            order = (row[day], row["occurred_at"], row["event_id"])
            if held is None or order > (held[day], held["occurred_at"], held["event_id"]):
                chosen[key] = row
        return chosen

    observations: dict[str, dict[str, bool]] = defaultdict(dict)
    for key, row in newest(vision, "measured_on").items():
        if row["screening_myopia"] is not None:
            observations["myopia"][key] = row["screening_myopia"]
        if row["impairment_student"] != "not_applicable":
            observations["visual_impairment"][key] = row["impairment_student"] != "normal"
    # Each growth metric: the newest screening without WHO flags that its standard classified.
    plausible = [row for row in growth if not row["flags"]]

    def classified(column: str) -> dict[Any, dict[str, Any]]:
        return newest([row for row in plausible if row[column] != "not_applicable"], "measured_on")

    for key, row in classified("wst586").items():
        observations["overweight_wst586"][key] = row["wst586"] == "overweight"
        observations["obesity_wst586"][key] = row["wst586"] == "obesity"
    for key, row in classified("who_category").items():
        observations["overweight_who"][key] = row["who_category"] == "overweight"
        observations["obesity_who"][key] = row["who_category"] == "obesity"
    for key, row in classified("wst456_wasting").items():
        observations["wasting"][key] = row["wst456_wasting"] != "normal"
    for (key, instrument), row in newest(survey, "answered_on", "instrument").items():
        if instrument == "hl-student" and row["literate"] is not None:
            observations["health_literacy"][key] = row["literate"]
        if instrument == "phq-a" and row["positive_screen"] is not None:
            observations["depression_positive"][key] = row["positive_screen"]
        if instrument == "gad-7" and row["positive_screen"] is not None:
            observations["anxiety_positive"][key] = row["positive_screen"]
    vision_students = {r["student_key"] for r in vision if school_year(r["measured_on"]) == year}
    growth_students = {r["student_key"] for r in growth if school_year(r["measured_on"]) == year}
    for key in enrolled:
        observations["screening_coverage"][key] = key in vision_students and key in growth_students

    result: dict[str, dict[tuple[str, str, str, str], tuple[int, int]]] = {}
    for metric in STUDENT_METRICS:
        cells: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for key, positive in observations[metric].items():
            who = enrolled.get(key)
            if who is None:
                continue
            groups = [("all", "all"), ("sex", who.sex), ("stage", "primary" if who.grade <= 6 else "junior"),
                      ("urban_rural", who.urban_rural), ("left_behind", "yes" if who.left_behind else "no"),
                      ("disability", "yes" if who.disability else "no"), ("grade", str(who.grade))]
            for level, area in (("province", "province"), ("county", who.county_id), ("school", who.school_id)):
                for breakdown, category in groups:
                    cell = cells[level, area, breakdown, category]
                    cell[0] += 1
                    cell[1] += int(positive)
        result[metric] = {key: (n, k) for key, (n, k) in cells.items()}
    return result


def structure(cells: dict[tuple[str, str, str, str], tuple[int, int]],
              county_of: dict[str, str]) -> list[Relation[tuple[str, str, str, str]]]:
    """The additive relations, built here from scratch."""
    relations = []
    areas = {(level, area) for level, area, _, _ in cells}
    for level, area in sorted(areas):
        for breakdown in ("sex", "stage", "urban_rural", "left_behind", "disability", "grade"):
            parts = tuple(sorted(k for k in cells if k[:3] == (level, area, breakdown)))
            relations.append(Relation(total=(level, area, "all", "all"), parts=parts))
    for key in sorted(k for k in cells if k[0] in ("county", "province")):
        level, area, breakdown, category = key
        if level == "province":
            parts = tuple(sorted(k for k in cells if k[0] == "county" and k[2:] == (breakdown, category)))
        else:
            parts = tuple(sorted(k for k in cells if k[0] == "school" and county_of[k[1]] == area
                                 and k[2:] == (breakdown, category)))
        relations.append(Relation(total=key, parts=parts))
    return relations


def recoverable(withheld: set[Any], relations: list[Relation[tuple[str, str, str, str]]]) -> set[Any]:
    unknown = sorted(withheld, key=repr)
    index = {key: i for i, key in enumerate(unknown)}
    rows = []
    for relation in relations:
        row = np.zeros(len(unknown))
        if relation.total in index:
            row[index[relation.total]] = 1
        for part in relation.parts:
            if part in index:
                row[index[part]] = -1
        if row.any():
            rows.append(row)
    if not rows:
        return set()
    matrix = np.vstack(rows)
    rank = np.linalg.matrix_rank(matrix)
    found = set()
    for key, i in index.items():
        unit = np.zeros(len(unknown))
        unit[i] = 1
        if np.linalg.matrix_rank(np.vstack([matrix, unit])) == rank:
            found.add(key)
    return found


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = k / n
    centre = (2 * n * p + z * z) / (2 * (n + z * z))
    half = z * math.sqrt(z * z + 4 * n * p * (1 - p)) / (2 * (n + z * z))
    return centre - half, centre + half


def published(settings: Settings, year: int, revision: int) -> list[dict[str, Any]]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        return _fetch(conn, f"SELECT * FROM metrics.published_indicators WHERE school_year = {int(year)}"
                            f" AND revision = {int(revision)} ORDER BY metric_id, level, area_id, breakdown, category")


def test_published_metrics_equal_an_independent_recomputation(seeded: Settings) -> None:
    revision = publish_year(seeded, YEAR)
    assert revision == 1
    rows = published(seeded, YEAR, revision)
    expected = recompute(seeded, YEAR)
    previous = recompute(seeded, YEAR - 1)
    with psycopg.connect(seeded.pg_dsn("admin")) as conn:
        schools = _fetch(conn, "SELECT * FROM archive.schools")
    county_of = {s["school_id"]: s["county_id"] for s in schools}
    assert len({s["county_id"] for s in schools}) == 3

    by_metric: dict[str, dict[tuple[str, str, str, str], dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_metric[row["metric_id"]][row["level"], row["area_id"], row["breakdown"], row["category"]] = row

    withheld_total = complementary_total = 0
    for metric in STUDENT_METRICS:
        mine, theirs = expected[metric], by_metric[metric]
        assert set(theirs) == set(mine), metric
        withheld = {key for key, row in theirs.items() if row["suppressed"]}
        for key, (n, k) in mine.items():
            row = theirs[key]
            if n < 10 or 0 < k < 10 or 0 < n - k < 10:  # no published count from 1 to 9
                assert row["suppressed"] == "primary", (metric, key)
            if row["suppressed"]:
                assert row["denominator"] is None and row["numerator"] is None and row["rate"] is None
                assert row["ci_low"] is None and row["change"] is None
                continue
            assert (row["denominator"], row["numerator"]) == (n, k), (metric, key)
            assert row["rate"] == pytest.approx(k / n)
            low, high = wilson(k, n)
            assert row["ci_low"] == pytest.approx(low, abs=1e-12)
            assert row["ci_high"] == pytest.approx(high, abs=1e-12)
        relations = structure(mine, county_of)
        for relation in relations:
            assert sum(1 for m in relation.members if m in withheld) != 1, (metric, relation)
        assert not recoverable(withheld, relations), metric
        # Same pattern as the pure function gives on the independently computed counts.
        pattern = suppress({key: n for key, (n, _) in mine.items()}, relations, also_primary=_small(mine))
        assert {key: row["suppressed"] for key, row in theirs.items() if row["suppressed"]} == pattern
        withheld_total += len(withheld)
        complementary_total += sum(1 for row in theirs.values() if row["suppressed"] == "complementary")

        # Year-on-year change where both years' cells are published.
        before = previous[metric]
        before_withheld = suppress({key: n for key, (n, _) in before.items()}, structure(before, county_of),
                                   also_primary=_small(before))
        for key, row in theirs.items():
            if row["suppressed"] or key not in before or key in before_withheld:
                assert row["change"] is None
                continue
            n0, k0 = before[key]
            assert row["previous_rate"] == pytest.approx(k0 / n0)
            assert row["change"] == pytest.approx(row["rate"] - k0 / n0)
            assert row["change_ci_low"] < row["change"] < row["change_ci_high"]
    assert withheld_total > 0 and complementary_total > 0

    required = [s for s in schools if s["boarding"] or s["enrollment"] > 600]
    staffed = [s for s in required if s["school_doctors"] >= 1]
    province = by_metric["school_doctor"]["province", "province", "all", "all"]
    assert (province["denominator"], province["numerator"]) == (len(required), len(staffed))
    headline = headline_indicators(seeded, YEAR)
    assert headline["school_doctor"] == pytest.approx(len(staffed) / len(required))
    n, k = expected["myopia"]["province", "province", "all", "all"]
    assert headline["myopia"] == pytest.approx(k / n)


def test_publishing_again_adds_a_revision_and_never_changes_one(seeded: Settings) -> None:
    assert publish_year(seeded, YEAR) == 1
    first = published(seeded, YEAR, 1)
    with psycopg.connect(seeded.pg_dsn("admin"), autocommit=True) as conn:
        # New data after publication: a screening correction must not reach revision 1.
        conn.execute("DELETE FROM archive.growth_screenings WHERE event_id IN "
                     "(SELECT event_id FROM archive.growth_screenings LIMIT 50)")
    assert publish_year(seeded, YEAR) == 2
    assert published(seeded, YEAR, 1) == first
    assert published(seeded, YEAR, 2) != first
    for role in ("app", "admin"):
        with psycopg.connect(seeded.pg_dsn(role), autocommit=True) as conn:
            for statement in ("UPDATE metrics.published_indicators SET rate = 0",
                              "DELETE FROM metrics.published_indicators",
                              "TRUNCATE metrics.published_indicators CASCADE",
                              "UPDATE metrics.publications SET cells = 0",
                              "DELETE FROM metrics.publications"):
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(statement)
    assert published(seeded, YEAR, 1) == first
    with psycopg.connect(seeded.pg_dsn("app")) as conn:
        revisions = conn.execute("SELECT revision FROM reporting.published_indicators"
                                 " WHERE school_year = %s", (YEAR,)).fetchall()
    assert {r[0] for r in revisions} == {2}


def test_grafana_role_reads_reporting_and_nothing_else(seeded: Settings) -> None:
    refresh_rollups(seeded)
    with psycopg.connect(seeded.pg_dsn("admin")) as conn:
        relations = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            # TimescaleDB's own catalogue views (granted to PUBLIC by the extension, metadata only).
            " AND n.nspname NOT LIKE '\\_timescaledb%'"
            " AND n.nspname NOT IN ('timescaledb_information', 'timescaledb_experimental')"
        ).fetchall()
    outside = [(s, r) for s, r in relations if s != "reporting"]
    inside = [(s, r) for s, r in relations if s == "reporting"]
    assert {s for s, _ in outside} >= {"archive", "roster", "ops", "metrics"}
    assert len(inside) >= 10
    with psycopg.connect(seeded.pg_dsn("grafana"), autocommit=True) as conn:
        for schema, name in outside:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(sql.Identifier(schema),
                                                                           sql.Identifier(name)))
        for schema, name in inside:
            conn.execute(sql.SQL("SELECT * FROM {}.{} LIMIT 1").format(sql.Identifier(schema), sql.Identifier(name)))
        count = conn.execute("SELECT count(*) FROM reporting.indicators WHERE rate IS NOT NULL").fetchone()
        assert count is not None and count[0] > 0
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT metrics.refresh_rollups()")


INTERVALS = {"1m": 60, "1h": 3600, "1d": 86400}


def expand_grafana_macros(query: str, variables: dict[str, str], start: str, end: str) -> str:
    """What Grafana's PostgreSQL datasource does to a raw query before sending it (its macro engine)."""

    def group(match: re.Match[str]) -> str:
        column, interval = match.group(2).strip(), match.group(3).strip().strip("'")
        seconds = INTERVALS[interval]
        expression = f"floor(extract(epoch from {column})/{seconds})*{seconds}"
        return expression + (' AS "time"' if match.group(1) == "Alias" else "")

    query = re.sub(r"\$__timeGroup(Alias)?\(([^,]+),\s*([^)]+)\)", group, query)
    query = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m.group(1)} BETWEEN '{start}' AND '{end}'", query)
    query = query.replace("$__timeFrom()", f"'{start}'").replace("$__timeTo()", f"'{end}'")
    for name in sorted(variables, key=len, reverse=True):
        query = query.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    assert "$" not in query, query
    return query


def test_every_panel_query_runs_under_the_grafana_role(seeded: Settings, province: Path) -> None:
    import_fitness(seeded, province, school_years=(YEAR - 1, YEAR))  # the fitness dashboard's data
    publish_year(seeded, YEAR)
    start, end = "2022-01-01T00:00:00Z", datetime.now(UTC).isoformat()
    with psycopg.connect(seeded.pg_dsn("grafana"), autocommit=True) as conn:
        checked = 0
        for spec in DASHBOARDS:
            data = json.loads((JSON_DIR / f"{spec.uid}.json").read_text(encoding="utf-8"))
            variables: dict[str, str] = {}
            for variable in data.get("templating", {}).get("list", []):
                options = conn.execute(variable["query"]).fetchall()
                assert options, f"{spec.uid}: variable {variable['name']} has no values"
                # A county with schools in the published year, the newest year, the first indicator.
                variables[variable["name"]] = str(options[0][0])
            expected = {panel.title: panel.columns for panel in spec.panels}
            for panel in data["panels"]:
                for target in panel["targets"]:
                    query = expand_grafana_macros(target["rawSql"], variables, start, end)
                    cursor = conn.execute(query)
                    names = tuple(column.name for column in cursor.description or ())
                    assert names == expected[panel["title"]], (spec.uid, panel["title"])
                    rows = cursor.fetchall()
                    if "reporting.indicators" in query or "reporting.digit_preference" in query:
                        assert rows, (spec.uid, panel["title"], query)
                    if target["format"] == "time_series":
                        assert names[:1] == ("time",)
                    checked += 1
    assert checked == sum(len(spec.panels) for spec in DASHBOARDS)


def test_report_is_self_contained_and_its_csv_is_the_published_revision(seeded: Settings, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not been published"):
        write_report(seeded, YEAR, tmp_path)
    publish_year(seeded, YEAR)
    revision = publish_year(seeded, YEAR)
    rows = published(seeded, YEAR, revision)
    page = write_report(seeded, YEAR, tmp_path)
    text = page.read_text(encoding="utf-8")
    assert text.count("<svg") >= 3
    # Chinese by default, for the provincial office; the shared inclusion rule stated once.
    assert '<html lang="zh-CN">' in text and "筛查性近视率" in text and "指标定义" in text
    assert text.count("统计对象为学年普查日") == 1 and "Students enrolled at the census date" not in text
    assert "全省学生健康指标" in text
    english = write_report(seeded, YEAR, tmp_path, language="en").read_text(encoding="utf-8")
    assert '<html lang="en">' in english and "Screening myopia rate" in english
    assert english.count("Students enrolled at the census date") == 1
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in text and "<link" not in text and "<img" not in text
    with page.with_suffix(".csv").open(encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == len(rows)
    assert {r["revision"] for r in exported} == {str(revision)}
    withheld = [r for r in exported if r["suppressed"]]
    assert withheld and all(r["denominator"] == r["numerator"] == r["rate"] == "" for r in withheld)
    by_key = {(r["metric_id"], r["level"], r["area_id"], r["breakdown"], r["category"]): r for r in rows}
    for r in exported:
        source = by_key[r["metric_id"], r["level"], r["area_id"], r["breakdown"], r["category"]]
        assert r["denominator"] == ("" if source["denominator"] is None else str(source["denominator"]))

    county = next(r["area_id"] for r in rows if r["level"] == "county")
    county_page = write_report(seeded, YEAR, tmp_path, county=county)
    with county_page.with_suffix(".csv").open(encoding="utf-8") as handle:
        county_rows = list(csv.DictReader(handle))
    assert {r["county_id"] for r in county_rows if r["level"] != "province"} == {county}
    assert any(r["level"] == "school" for r in county_rows)


def test_a_stream_worker_refreshes_the_rollups_on_its_timer(isolated: Settings, tmp_path: Path) -> None:
    seed_archive(isolated, students=300, school_years=(2024, 2025))
    assert count(isolated, "SELECT count(*) FROM metrics.live_indicators") == 0
    worker = WorkerProcess(isolated.model_copy(update={"metrics_refresh_seconds": 2.0}), tmp_path / "worker.log")
    try:
        wait_for(lambda: count(isolated, "SELECT count(*) FROM metrics.live_indicators") > 0, timeout=180,
                 what="the worker's metrics refresh", workers=[worker])
    finally:
        worker.kill(signal.SIGTERM)
    assert count(isolated, "SELECT count(DISTINCT school_year) FROM metrics.live_indicators") == 2
