"""Files as schools write them: Chinese headings, units, unreadable files, GB18030 CSV."""

from __future__ import annotations

import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from models.importing import (
    COLUMN_NAMES_ZH,
    COLUMNS,
    OPTIONAL_COLUMNS,
    RowRejected,
    canonical_column,
    check_header,
    expected_columns_text,
    parse_roster_row,
    row_to_event,
)
from services.intake.importer import UnreadableFile, read_rows

SECRET = b"unit-test-secret"
NOW = datetime(2025, 10, 14, 8, 0, tzinfo=UTC)
BMI_ZH = "学校代码,学籍号,性别,出生日期,检查日期,身高(cm),体重(kg),检查人员"
BMI_ROW = "5201020001,G110101201503070012,女,2015-03-07,2025-10-14,141.5,35.2,nurse-3"


def bmi(**cells: str) -> dict[str, str]:
    row = dict(zip(COLUMNS["bmi"], BMI_ROW.split(","), strict=True))
    row.update(cells)
    return row


def test_every_column_has_one_chinese_heading_that_maps_back() -> None:
    every = {column for columns in COLUMNS.values() for column in columns}
    every |= {column for columns in OPTIONAL_COLUMNS.values() for column in columns}
    assert every <= set(COLUMN_NAMES_ZH)
    for column, heading in COLUMN_NAMES_ZH.items():
        assert canonical_column(heading) == column
        assert canonical_column(column) == column


@pytest.mark.parametrize(("heading", "column"), [
    ("学籍号", "student_number"), ("身高（厘米）", "height_cm"), ("身高", "height_cm"),
    (" 体重 (kg) ", "weight_kg"), ("\ufeff学校代码", "school_id"), ("右眼裸眼视力", "ucva_right"),
    ("班级", "class_name"), ("监护人", "guardian_name"),
])
def test_chinese_headings_and_their_variants(heading: str, column: str) -> None:
    assert canonical_column(heading) == column


def test_an_unknown_heading_stays_as_it_is_so_the_header_check_names_it() -> None:
    assert canonical_column("身高体重") == "身高体重"


def test_a_csv_with_chinese_headings_is_read_as_the_english_columns(tmp_path: Path) -> None:
    path = tmp_path / "体检.csv"
    path.write_text(f"{BMI_ZH}\n{BMI_ROW}\n", encoding="utf-8-sig")
    header, rows = read_rows(path)
    check_header("bmi", header)
    event = row_to_event("bmi", next(rows), secret=SECRET, submitted_by="importer", now=NOW)
    assert event.height_cm == 141.5  # type: ignore[union-attr]


def test_a_gb18030_csv_from_excel_on_chinese_windows_is_read(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(f"{BMI_ZH}\n{BMI_ROW}\n".encode("gb18030"))
    header, rows = read_rows(path)
    check_header("bmi", header)
    assert next(rows)["sex"] == "女"


def test_an_xlsx_with_chinese_headings(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(BMI_ZH.split(","))
    sheet.append(BMI_ROW.split(","))
    path = tmp_path / "screening.xlsx"
    book.save(path)
    header, rows = read_rows(path)
    check_header("bmi", header)
    assert next(rows)["height_cm"] == "141.5"


@pytest.mark.parametrize(("name", "content", "code"), [
    ("screening.xlsx", b"school_id,student_number\n1,2\n", "not_xlsx"),
    ("screening.xlsx", b"", "not_xlsx"),
    ("screening.csv", bytes(range(256)) * 8, "not_text"),
])
def test_an_unreadable_file_is_one_sentence(tmp_path: Path, name: str, content: bytes, code: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableFile) as caught:
        _header, rows = read_rows(path)
        list(rows)
    assert caught.value.code == code
    assert name in caught.value.problem
    assert "\n" not in caught.value.problem and "BadZipFile" not in caught.value.problem


def test_a_zip_that_is_not_a_workbook_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "photos.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("photo.txt", "not a workbook")
    with pytest.raises(UnreadableFile):
        read_rows(path)


@pytest.mark.parametrize(("cells", "field", "said"), [
    ({"height_cm": "1750"}, "height_cm", "1750 looks like millimetres (175 cm)"),
    ({"height_cm": "1.42"}, "height_cm", "1.42 looks like metres (142 cm)"),
    ({"weight_kg": "35200"}, "weight_kg", "35200 looks like grams (35.2 kg)"),
    ({"height_cm": "512"}, "height_cm", "512.0 outside 50..230"),
    ({"measured_on": "2025-10-20"}, "measured_on", "2025-10-20 is in the future (today is 2025-10-14)"),
])
def test_units_and_dates_are_explained(cells: dict[str, str], field: str, said: str) -> None:
    with pytest.raises(RowRejected) as caught:
        row_to_event("bmi", bmi(**cells), secret=SECRET, submitted_by="importer", now=NOW)
    assert caught.value.field == field
    assert said in caught.value.reason
    assert "occurred_at" not in caught.value.reason


def test_the_roster_may_carry_class_and_guardian() -> None:
    base = {"school_id": "5201020001", "student_number": "G110101201503070012", "name": "张小花", "sex": "女",
            "birth_date": "2015-03-07", "grade": "5", "enrolled_on": "2021-09-01", "boarding": "0",
            "left_behind": "0", "disability": "0"}
    check_header("roster", [*base, "class_name", "guardian_name"])
    entry = parse_roster_row({**base, "class_name": "（三）班", "guardian_name": "张建国"}, secret=SECRET)
    assert (entry.class_name, entry.guardian_name) == ("3", "张建国")
    assert "张建国" not in repr(entry)
    assert parse_roster_row(base, secret=SECRET).class_name is None


def test_expected_columns_text_names_both_languages() -> None:
    text = expected_columns_text("roster")
    assert "student_number (学籍号)" in text and "optional: class_name (班级)" in text


@pytest.mark.parametrize(("english", "chinese"), [
    ("1750 looks like millimetres (175 cm); enter centimetres", "1750 像是以毫米为单位（即 175 厘米）；请按厘米填写"),
    ("2025-10-20 is in the future (today is 2025-10-14)", "2025-10-20 是将来的日期（今天是 2025-10-14）"),
    ("'x' is not a number", "'x' 不是数字"),
    ("the value (12 characters) is not a date (YYYY-MM-DD)",
     "该值（12 个字符） 不是日期（应为 YYYY-MM-DD，如 2015-03-07）"),
    ("512.0 outside 50..230; also weight_kg: blank; a value is required",
     "512.0 超出范围（50 至 230）；另外 体重（千克）：空白；此项必填"),
    ("age 40 years on measured_on is implausible for a pupil", "按测量日期计年龄 40 岁，不像在校学生，请核对出生日期"),
])
def test_rejection_reasons_read_in_chinese(english: str, chinese: str) -> None:
    from services.web.reasons import translate_reason

    assert translate_reason("zh-CN", english) == chinese
    assert translate_reason("en", english) == english


def test_every_reason_the_intake_tests_produce_has_a_chinese_form() -> None:
    from services.web.reasons import translate_reason

    cases = [{"height_cm": "1750"}, {"height_cm": "1.42"}, {"weight_kg": "35200"}, {"height_cm": "512"},
             {"measured_on": "2025-10-20"}, {"birth_date": "yesterday"}, {"sex": "x"},
             {"height_cm": "", "weight_kg": ""}, {"age_months": "130", "birth_date": "2015-03-07"}, {"birth_date": ""},
             {"screener": "张三"}, {"weight_kg": "abc"}, {"birth_date": "1960-01-01"}]
    for cells in cases:
        with pytest.raises(RowRejected) as caught:
            row_to_event("bmi", bmi(**cells), secret=SECRET, submitted_by="importer", now=NOW)
        translated = translate_reason("zh-CN", caught.value.reason)
        assert translated != caught.value.reason, caught.value.reason
        words = re.sub(r"'[^']*'|YYYY-MM-DD", "", translated)
        assert not re.search(r"[A-Za-z]", words), translated
