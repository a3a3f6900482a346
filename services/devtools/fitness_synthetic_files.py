"""Synthetic fitness tests for a generated province, written as national upload sheets.

Reads the province's ``roster.csv`` and ``bmi.csv`` (so each test uses the student's own growth
screening of that school year), generates one test per screened student and school year with
`models.fitness_synthetic`, and writes one upload sheet per school and year (and one per school
and year for the retests of students rated fail) under ``fitness/``, with ``fitness_truth.csv``:
each test's trait, expected level and the band its results score to.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from models.fitness import ITEM_INFO, items_for
from models.fitness_synthetic import synthetic_test, takes_retest
from models.fitness_upload import UPLOAD_COLUMNS, code_of_grade, format_time
from models.school_year import school_year
from models.types import Sex

SEED = 20251
_TIMED = frozenset({"run_800m", "run_1000m", "shuttle_run_50m_x8"})
TRUTH_COLUMNS = ("school_id", "student_number", "school_year", "attempt", "measured_on", "sex", "grade", "trait",
                 "expected_level", "status", "total", "band")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sheet:
    path: Path
    school_id: str
    school_year: int
    measured_on: date
    attempt: str
    rows: int


@dataclass(slots=True, kw_only=True)
class FitnessFiles:
    sheets: list[Sheet] = field(default_factory=list)
    truth: Path | None = None


def test_day(school_id: str, school_year: int) -> date:
    """The school's test day: autumn (October-November) or spring (April-May), fixed per school."""
    digest = int.from_bytes(hashlib.sha256(f"fitness-day/{school_id}".encode()).digest()[:4], "big")
    if digest % 3 == 0:
        return date(school_year + 1, 4, 8) + timedelta(days=digest % 45)
    return date(school_year, 10, 8) + timedelta(days=digest % 45)


def _cell(item: str, value: float) -> str:
    if item in _TIMED:
        return format_time(value)
    return str(int(value)) if float(value).is_integer() else str(value)


def write_fitness_sheets(province: Path, out_dir: Path, *, seed: int = SEED,
                         school_years: tuple[int, ...] | None = None) -> FitnessFiles:
    """Generate the province's fitness tests into ``out_dir`` (one upload sheet per school, year, attempt)."""
    with (province / "roster.csv").open(encoding="utf-8", newline="") as handle:
        roster = {row["student_number"]: row for row in csv.DictReader(handle)}
    sheets: dict[tuple[str, int, str], list[dict[str, str]]] = defaultdict(list)
    truth: list[dict[str, object]] = []
    with (province / "bmi.csv").open(encoding="utf-8", newline="") as handle:
        screenings = list(csv.DictReader(handle))
    seen: set[tuple[str, int]] = set()
    for screening in screenings:
        student = roster.get(screening["student_number"])
        try:
            measured = date.fromisoformat(screening["measured_on"])
            height, weight = float(screening["height_cm"]), float(screening["weight_kg"])
            enrolled = date.fromisoformat(student["enrolled_on"]) if student else None
        except (ValueError, TypeError):
            continue  # the province's deliberately bad rows
        if student is None or enrolled is None or not (80 <= height <= 230 and 10 <= weight <= 250):
            continue
        year = school_year(measured)
        if (school_years and year not in school_years) or (screening["student_number"], year) in seen:
            continue
        grade = int(student["grade"]) + year - school_year(enrolled)
        if not 1 <= grade <= 9 or screening["sex"] not in ("male", "female"):
            continue
        seen.add((screening["student_number"], year))
        school = screening["school_id"]
        day = test_day(school, year)
        sex: Sex = "male" if screening["sex"] == "male" else "female"
        attempts = [("first", day)]
        test = synthetic_test(seed=seed, student=screening["student_number"], sex=sex, grade=grade,
                              height_cm=height, weight_kg=weight, measured_on=day, school_year=year,
                              disability=student["disability"] in ("1", "true", "yes"))
        tests = [test]
        if test.scored.band == "fail" and takes_retest(seed, screening["student_number"], year):
            retest_day = day + timedelta(days=28)
            tests.append(synthetic_test(seed=seed, student=screening["student_number"], sex=sex, grade=grade,
                                        height_cm=height, weight_kg=weight, measured_on=retest_day,
                                        school_year=year, disability=False, retest=True))
            attempts.append(("retest", retest_day))
        for (attempt, on), generated in zip(attempts, tests, strict=True):
            row = dict.fromkeys(UPLOAD_COLUMNS, "")
            row |= {"年级编号": code_of_grade(grade), "班级编号": student.get("class_name", ""),
                    "班级名称": student.get("class_name", ""), "学籍号": screening["student_number"],
                    "姓名": student["name"], "性别": "1" if sex == "male" else "2",
                    "出生日期": student["birth_date"], "身高": screening["height_cm"], "体重": screening["weight_kg"]}
            for item, value in generated.results.items():
                row[ITEM_INFO[item].name_zh] = _cell(item, value)
            for item in items_for(sex, grade) if generated.exempt else generated.exempt_items:
                row[ITEM_INFO[item].name_zh] = "免测"
            sheets[(school, year, attempt)].append(row)
            truth.append({"school_id": school, "student_number": screening["student_number"], "school_year": year,
                          "attempt": attempt, "measured_on": on.isoformat(), "sex": sex, "grade": grade,
                          **generated.truth})
    out_dir.mkdir(parents=True, exist_ok=True)
    files = FitnessFiles()
    for (school, year, attempt), rows in sorted(sheets.items()):
        path = out_dir / f"{school}_{year}_{attempt}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(UPLOAD_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        day = test_day(school, year) + (timedelta(days=28) if attempt == "retest" else timedelta(0))
        files.sheets.append(Sheet(path=path, school_id=school, school_year=year, measured_on=day, attempt=attempt,
                                  rows=len(rows)))
    files.truth = out_dir / "fitness_truth.csv"
    with files.truth.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(TRUTH_COLUMNS))
        writer.writeheader()
        writer.writerows(truth)
    return files
