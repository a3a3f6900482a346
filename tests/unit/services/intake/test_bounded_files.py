"""Upload limits on what a file expands to, and CSV cells that cannot run as formulas."""

from __future__ import annotations

import csv
import uuid
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from models.importing import COLUMNS
from services.intake.bounded_files import WEB_LIMITS, FileLimits, FileRefused, csv_safe, read_bounded
from services.intake.importer import REDACTED, ImportSummary, Rejected, shown_code, write_report
from tests.hostile_files import xlsx_bomb

HEADER = list(COLUMNS["bmi"])
ROW = ["SA01", "G110101201403070011", "male", "2014-03-07", "2025-09-01", "138.5", "31.2", "d-a"]


def _csv(path: Path, rows: int, row: list[str] = ROW) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows([row] * rows)
    return path


def test_a_shared_strings_bomb_is_refused_before_openpyxl_reads_it(tmp_path: Path) -> None:
    bomb = xlsx_bomb(tmp_path / "bomb.xlsx", HEADER, filler_strings=1_000_000)
    assert bomb.stat().st_size < 200_000
    with zipfile.ZipFile(bomb) as archive:
        assert archive.getinfo("xl/sharedStrings.xml").file_size > 17_000_000
    with pytest.raises(FileRefused) as refused:
        read_bounded(bomb, WEB_LIMITS)
    assert refused.value.code == "expands_too_large"
    assert "shared strings" in refused.value.en and "解压后过大" in refused.value.zh


def test_the_declared_unpacked_size_is_capped(tmp_path: Path) -> None:
    bomb = xlsx_bomb(tmp_path / "bomb.xlsx", HEADER, filler_strings=100_000)
    with pytest.raises(FileRefused, match="unpacked size"):
        read_bounded(bomb, FileLimits(max_rows=10, max_unpacked_bytes=1_000_000))


def test_a_small_honest_workbook_reads(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append([*ROW[:5], 138.5, 31.2, "d-a"])
    workbook.save(tmp_path / "ok.xlsx")
    header, rows = read_bounded(tmp_path / "ok.xlsx", WEB_LIMITS)
    assert header == HEADER
    assert [row["height_cm"] for row in rows] == ["138.5"]


def test_more_rows_than_allowed_refuse_the_whole_file(tmp_path: Path) -> None:
    _header, rows = read_bounded(_csv(tmp_path / "long.csv", 11), FileLimits(max_rows=10))
    with pytest.raises(FileRefused) as refused:
        list(rows)
    assert refused.value.code == "too_many_rows"
    assert "none of it was imported" in refused.value.en and "整个文件未导入" in refused.value.zh
    assert len(list(read_bounded(_csv(tmp_path / "ok.csv", 10), FileLimits(max_rows=10))[1])) == 10


def test_cells_columns_and_encoding(tmp_path: Path) -> None:
    long_cell = _csv(tmp_path / "cell.csv", 1, [*ROW[:7], "x" * 3000])
    with pytest.raises(FileRefused, match="longer than"):
        list(read_bounded(long_cell, WEB_LIMITS)[1])
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(100)) + "\n", encoding="utf-8")
    with pytest.raises(FileRefused, match="more than 64 columns"):
        read_bounded(wide, WEB_LIMITS)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(",".join(HEADER).encode() + b"\nSA01,\xe9\xe9\xe9\n")
    with pytest.raises(FileRefused, match="not UTF-8"):
        list(read_bounded(latin, WEB_LIMITS)[1])
    blank = tmp_path / "blank.csv"
    blank.write_text(",".join(HEADER) + "\n" + ",,,,,,,\n" * 20, encoding="utf-8")
    with pytest.raises(FileRefused, match="blank rows"):
        list(read_bounded(blank, FileLimits(max_rows=10, max_blank_rows=5))[1])


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-2+3", "@SUM(A1)", "\tx", "\r=1"])
def test_formula_prefixes_are_neutralised(value: str) -> None:
    assert csv_safe(value) == "'" + value


def test_plain_values_and_negative_numbers_stay() -> None:
    assert [csv_safe(v) for v in ("-1.5", "SA01", 3, None, "a=b")] == ["-1.5", "SA01", "3", "", "a=b"]


def test_rejected_cells_keep_only_codes(tmp_path: Path) -> None:
    assert shown_code("SA01") == "SA01" and shown_code("d-a") == "d-a" and shown_code("") is None
    for hostile in ("张三", "110101200501011234", "=HYPERLINK(\"http://x\")", "Zhang San", "13812345678"):
        assert shown_code(hostile) == REDACTED
    summary = ImportSummary(kind="bmi", path=tmp_path / "x.csv", import_id=uuid.uuid4(), rejected=[
        Rejected(row_number=1, field="=cmd", reason="=HYPERLINK(\"http://evil\")", school_id="SA01", screener=None),
        Rejected(row_number=2, field="height_cm", reason="@SUM(1)", school_id=None, screener=None)])
    with write_report(summary, tmp_path / "report.csv").open(encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in cells)
    assert "'=HYPERLINK(\"http://evil\")" in cells
