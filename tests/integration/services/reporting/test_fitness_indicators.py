"""Fitness indicators from a synthetic province: published rates against the generator's truth.

The province's files and its upload sheets go through the importers, Kafka and a real worker.
The expected counts come from the generator's truth file (each test's band as the generator
scored it) with the retest rule applied here in Python, joined to the census of
`metrics.student_years`; they share no SQL with the fitness rollups.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from models.fitness import graduation_score
from models.synthetic import ProvinceSpec
from models.topics import INPUT_TOPICS
from services.devtools.fitness_synthetic_files import write_fitness_sheets
from services.devtools.synthetic_files import write_province
from services.intake.fitness_exchange import import_upload_sheet
from services.intake.importer import import_file
from services.platform.settings import Settings
from services.platform.topics import consumer_lag
from services.reporting.metrics import publish_year
from services.reporting.report import write_report
from services.students.archive_reader import print_student
from tests.integration.conftest import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

YEAR = 2025


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fitness-province")
    write_province(ProvinceSpec(students=1200, seed=20252, school_years=(2024, 2025), counties=2), directory)
    return directory


def _year_results(truth: Path, year: int = YEAR) -> dict[str, dict[str, str]]:
    tests: dict[str, list[dict[str, str]]] = defaultdict(list)
    with truth.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if int(row["school_year"]) == year:
                tests[row["student_number"]].append(row)
    chosen = {}
    for number, rows in tests.items():
        first = next(r for r in rows if r["attempt"] == "first")
        retest = next((r for r in rows if r["attempt"] == "retest"), None)
        chosen[number] = retest if first["band"] == "fail" and retest is not None else first
    return chosen


def test_published_fitness_rates_equal_the_generators_truth(
        isolated: Settings, start_worker: Callable[[], WorkerProcess], province: Path, tmp_path: Path) -> None:
    settings = isolated
    worker = start_worker()
    # The school doctors' files and the PE teachers' upload sheets, all through Kafka and the worker.
    for kind in ("schools", "roster", "records", "bmi"):
        import_file(settings, kind, province / f"{kind}.csv", report_path=tmp_path / f"{kind}.rejected.csv")
    files = write_fitness_sheets(province, tmp_path / "fitness", school_years=(YEAR - 1, YEAR))
    for sheet in files.sheets:
        summary = import_upload_sheet(settings, sheet.path, school_id=sheet.school_id,
                                      measured_on=sheet.measured_on, screener="pe-1", attempt=sheet.attempt)
        assert not summary.rejected, summary.rejected[:3]
    topics = [settings.topic(t) for t in INPUT_TOPICS]
    wait_for(lambda: consumer_lag(settings, settings.consumer_group, topics) == 0, timeout=300,
             what="the worker to catch up", workers=[worker])
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        fitness_letters = conn.execute(
            "SELECT count(*) FROM ops.dead_letters WHERE topic LIKE '%%fitness-tests'").fetchone()
    assert fitness_letters == (0,)
    publish_year(settings, YEAR)

    assert files.truth is not None
    chosen = _year_results(files.truth)
    before = _year_results(files.truth, YEAR - 1)
    secret = settings.student_key_secret.get_secret_value().encode()
    from models.identity import student_key

    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        census = {row[0]: row[1] for row in conn.execute(
            "SELECT student_key, sex FROM metrics.student_years WHERE school_year = %s", (YEAR,))}
        published = {(row[0], row[1], row[2]): row[3:] for row in conn.execute(
            "SELECT metric_id, breakdown, category, numerator, denominator, suppressed FROM metrics.live_indicators"
            " WHERE school_year = %s AND level = 'province' AND metric_id LIKE 'fitness%%'", (YEAR,))}
        small = conn.execute(
            "SELECT count(*) FROM metrics.live_indicators WHERE metric_id LIKE 'fitness%%' AND (denominator < 10"
            " OR numerator BETWEEN 1 AND 9 OR denominator - numerator BETWEEN 1 AND 9)").fetchone()
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for number, row in chosen.items():
        key = student_key(secret, number)
        if key not in census or row["status"] != "complete":
            continue
        for category in ("all", census[key]):
            breakdown = "all" if category == "all" else "sex"
            counts[("fitness_pass", breakdown, category, "n")] += 1
            for metric, bands in (("fitness_pass", {"pass", "good", "excellent"}),
                                  ("fitness_good_or_above", {"good", "excellent"}),
                                  ("fitness_excellent", {"excellent"})):
                counts[(metric, breakdown, category, "k")] += row["band"] in bands
    assert counts[("fitness_pass", "all", "all", "n")] > 500
    for metric in ("fitness_pass", "fitness_good_or_above", "fitness_excellent"):
        for breakdown, category in (("all", "all"), ("sex", "male"), ("sex", "female")):
            numerator, denominator, suppressed = published[(metric, breakdown, category)]
            assert suppressed is None
            assert (numerator, denominator) == (counts[(metric, breakdown, category, "k")],
                                                counts[("fitness_pass", breakdown, category, "n")])
    assert small == (0,)  # no published fitness count (nor complement) from 1 to 9, exempt counts included

    # Exempt counts: every student with a year's result is in the denominator, the wholly exempted counted.
    tested = [(student_key(secret, n), row) for n, row in chosen.items() if student_key(secret, n) in census]
    exempt = sum(row["status"] == "exempt" for _, row in tested)
    assert exempt > 0
    assert published[("fitness_exempt", "all", "all")] == (exempt, len(tested), None)

    # Graduation scores (grade 9 in YEAR, with grade 8 of YEAR - 1), recomputed here from the truth.
    graduates: Counter[str] = Counter()
    for number, row in chosen.items():
        if int(row["grade"]) not in (6, 9) or student_key(secret, number) not in census or not row["total"]:
            continue
        totals = {int(row["grade"]): Decimal(row["total"])}
        earlier = before.get(number)
        if earlier is not None and earlier["total"] and int(earlier["grade"]) < int(row["grade"]):
            totals[int(earlier["grade"])] = Decimal(earlier["total"])
        score = graduation_score(totals, int(row["grade"]))
        graduates["n"] += 1
        graduates["pass"] += score >= 60
        graduates["good_or_above"] += score >= 80
        graduates["excellent"] += score >= 90
    assert graduates["n"] > 50
    for band in ("pass", "good_or_above", "excellent"):
        numerator, denominator, suppressed = published[(f"fitness_graduation_{band}", "all", "all")]
        assert suppressed is None and (numerator, denominator) == (graduates[band], graduates["n"]), band
    # The generator's plausibility: a realistic pass rate, per-item rates by grade published.
    pass_rate = published[("fitness_pass", "all", "all")][0] / published[("fitness_pass", "all", "all")][1]
    assert 0.6 < pass_rate < 0.98
    assert ("fitness_item_rope_skipping_1min", "grade", "2") in published
    assert ("fitness_item_rope_skipping_1min", "grade", "8") not in published

    html = write_report(settings, YEAR, tmp_path / "report").read_text(encoding="utf-8")
    assert "学生体质健康 Physical fitness" in html and "单项及格率" in html
    assert f"{exempt:,} ({100 * exempt / len(tested):.1f}%, n={len(tested):,})" in html
    assert "毕业成绩 = 毕业当年" in html and 'id="fitness-graduation"' in html
    assert f"{100 * pass_rate:.1f}%" in html

    number = next(n for n, row in chosen.items() if row["status"] == "complete")
    lines: list[str] = []
    print_student(settings, student_key(secret, number), out=lines.append)
    assert any(" fitness " in line and "total " in line and "nspfs-2014+" in line for line in lines), lines
    graduate = next(n for n, row in chosen.items() if row["grade"] == "9" and row["total"]
                    and (before.get(n) or {}).get("total"))
    lines = []
    print_student(settings, student_key(secret, graduate), out=lines.append)
    expected = graduation_score({9: Decimal(chosen[graduate]["total"]), 8: Decimal(before[graduate]["total"])}, 9)
    assert any(line.startswith(f"  graduation junior (grade 9, school year {YEAR}/26): score {expected:.2f} = 50% × ")
               for line in lines), lines
