"""A class sheet row becomes one import row per screening kind typed, with the roster's identity."""

from __future__ import annotations

from datetime import date

from models.importing import COLUMNS
from services.web.class_sheet import SHEET_COLUMNS, RosterStudent, sheet_rows

STUDENT = RosterStudent(school_id="SA01", student_number="G110101201503070011", sex="female",
                        birth_date=date(2015, 3, 7))


def test_each_kind_typed_becomes_a_row_of_its_import_columns() -> None:
    rows = sheet_rows(STUDENT, {"height_cm": "140.2", "weight_kg": "33", "ucva_right": "4.9", "ucva_left": "5.0",
                                "wears_glasses": "true"}, measured_on=date(2025, 10, 1), screener="d-a")
    assert set(rows) == {"bmi", "vision"}
    for kind, row in rows.items():
        assert tuple(row) == COLUMNS[kind]
    assert rows["bmi"]["student_number"] == STUDENT.student_number and rows["bmi"]["birth_date"] == "2015-03-07"
    assert rows["vision"]["wears_glasses"] == "true" and rows["vision"]["se_left"] == ""


def test_a_kind_left_blank_is_not_submitted_and_a_checkbox_alone_starts_nothing() -> None:
    assert sheet_rows(STUDENT, {"wears_glasses": "true"}, measured_on=date(2025, 10, 1), screener="d") == {}
    only = sheet_rows(STUDENT, {"height_cm": "140"}, measured_on=date(2025, 10, 1), screener="d")
    assert set(only) == {"bmi"} and only["bmi"]["weight_kg"] == ""  # refused later as blank, with its column


def test_every_sheet_column_is_a_column_of_its_kind() -> None:
    for column in SHEET_COLUMNS:
        assert column.name in COLUMNS[column.kind]
