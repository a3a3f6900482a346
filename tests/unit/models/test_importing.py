"""Bulk-import rows into events: each file kind, bad rows naming their column, stable ids."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from models.ages import DAYS_PER_MONTH, age_in_months
from models.codecs import decode_event, encode_event
from models.contracts import BmiScreening, HealthRecord, PsychSurvey, VisionScreening
from models.identity import event_id_for, student_key
from models.importing import (
    COLUMNS,
    HeaderRejected,
    RosterEntry,
    RowRejected,
    School,
    check_header,
    check_row,
    parse_roster_row,
    parse_school_row,
    roster_to_event,
    row_to_event,
)

SECRET = b"unit-test-secret"
NOW = datetime(2025, 10, 14, 16, 0, tzinfo=timezone(timedelta(hours=8)))
NUMBER = "G110101201503070012"
BIRTH = date(2015, 3, 7)


def row(kind: str, **cells: str) -> dict[str, str]:
    """A valid row of ``kind`` with ``cells`` replaced."""
    defaults: dict[str, dict[str, str]] = {
        "schools": {
            "school_id": "5201020001", "name": "贵阳市第一小学", "county_id": "520102",
            "county_name": "南明区", "urban_rural": "urban", "stage": "primary", "boarding": "否",
            "enrollment": "1200", "school_doctors": "2",
        },
        "roster": {
            "school_id": "5201020001", "student_number": NUMBER, "name": "张小花", "sex": "女",
            "birth_date": "2015-03-07", "grade": "5", "enrolled_on": "2021-09-01",
            "boarding": "no", "left_behind": "yes", "disability": "0",
        },
        "records": {
            "school_id": "5201020001", "student_number": NUMBER, "sex": "female",
            "birth_date": "2015-03-07", "county_id": "520102", "grade": "5", "action": "update",
            "effective_on": "2025-09-01", "to_school_id": "", "boarding": "false",
            "left_behind": "true", "disability": "false",
        },
        "vision": {
            "school_id": "5201020001", "student_number": NUMBER, "sex": "female",
            "birth_date": "2015-03-07", "measured_on": "2025-10-14", "ucva_right": "4.9",
            "ucva_left": "5.0", "se_right": "-1.25", "se_left": "", "wears_glasses": "否",
            "screener": "nurse-3",
        },
        "bmi": {
            "school_id": "5201020001", "student_number": NUMBER, "sex": "female",
            "birth_date": "2015-03-07", "measured_on": "2025-10-14", "height_cm": "141.5",
            "weight_kg": "35.2", "screener": "nurse-3",
        },
        "survey": {
            "school_id": "5201020001", "student_number": NUMBER, "sex": "female",
            "birth_date": "2015-03-07", "answered_on": "2025-10-14", "instrument": "PHQ-9",
            "instrument_version": "", "answers": "0;1;2;3;0;1;2;1;0",
        },
    }
    result = dict(defaults[kind])
    assert set(result) == set(COLUMNS[kind])
    result.update(cells)
    return result


def convert(kind: Any, cells: dict[str, str], now: datetime = NOW) -> Any:
    return row_to_event(kind, cells, secret=SECRET, submitted_by="importer-1", now=now)


def rejected(kind: str, **cells: str) -> RowRejected:
    with pytest.raises(RowRejected) as caught:
        convert(kind, row(kind, **cells))
    return caught.value


# --- each kind -------------------------------------------------------------------------------


def test_records_row() -> None:
    event = convert("records", row("records"))
    assert isinstance(event, HealthRecord)
    assert event.student_key == student_key(SECRET, NUMBER)
    assert event.school_id == "5201020001"
    assert (event.action, event.effective_on, event.grade) == ("update", date(2025, 9, 1), 5)
    assert (event.sex, event.birth_date, event.county_id) == ("female", BIRTH, "520102")
    assert (event.boarding, event.left_behind, event.disability) == (False, True, False)
    assert event.to_school_id is None
    assert event.occurred_at == NOW
    assert event.submitted_by == "importer-1"


def test_records_transfer_needs_the_receiving_school() -> None:
    event = convert("records", row("records", action="transfer", to_school_id="5201020002"))
    assert event.to_school_id == "5201020002"
    problem = rejected("records", action="Transfer")
    assert problem.field == "to_school_id"
    assert "required when action is transfer" in problem.reason


def test_vision_row() -> None:
    event = convert("vision", row("vision"))
    assert isinstance(event, VisionScreening)
    assert event.measured_on == date(2025, 10, 14)
    assert event.age_months == pytest.approx((date(2025, 10, 14) - BIRTH).days / DAYS_PER_MONTH)
    assert (event.ucva_right, event.ucva_left) == (4.9, 5.0)
    assert (event.se_right, event.se_left) == (-1.25, None)
    assert event.wears_glasses is False
    assert event.screener == "nurse-3"


def test_bmi_row() -> None:
    event = convert("bmi", row("bmi"))
    assert isinstance(event, BmiScreening)
    assert (event.height_cm, event.weight_kg) == (141.5, 35.2)
    # The age WHO's software takes: decimal months to two decimals (3874 days / 30.4375 = 127.277...).
    assert event.age_months == round(age_in_months(BIRTH, date(2025, 10, 14)), 2) == 127.28


def test_survey_row() -> None:
    event = convert("survey", row("survey"))
    assert isinstance(event, PsychSurvey)
    assert event.instrument == "phq-9"
    assert event.instrument_version == "1"
    assert event.answers == (0, 1, 2, 3, 0, 1, 2, 1, 0)
    assert event.answered_on == date(2025, 10, 14)


def test_imported_events_survive_the_kafka_contract() -> None:
    for kind in ("records", "vision", "bmi", "survey"):
        event = convert(kind, row(kind))
        assert decode_event(encode_event(event)) == event


def test_age_in_months_is_days_over_30_4375() -> None:
    assert age_in_months(date(2015, 1, 1), date(2016, 1, 1)) == 365 / 30.4375
    assert age_in_months(BIRTH, BIRTH) == 0


# --- cell formats ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-14", date(2025, 10, 14)),
        ("2025/10/14", date(2025, 10, 14)),
        ("2025/1/4", date(2025, 1, 4)),
        ("2025.10.14", date(2025, 10, 14)),
        ("2025年10月14日", date(2025, 10, 14)),
        ("20251014", date(2025, 10, 14)),
        ("2025-10-14 00:00:00", date(2025, 10, 14)),
        (" 2025-10-14 ", date(2025, 10, 14)),
    ],
)
def test_date_cells(text: str, expected: date) -> None:
    assert convert("bmi", row("bmi", measured_on=text)).measured_on == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("Yes", True), ("是", True),
        ("false", False), ("False", False), ("0", False), ("no", False), ("否", False),
    ],
)
def test_boolean_cells(text: str, expected: bool) -> None:
    assert convert("vision", row("vision", wears_glasses=text)).wears_glasses is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("male", "male"), ("Female", "female"), ("男", "male"), ("女", "female")],
)
def test_sex_cells(text: str, expected: str) -> None:
    assert convert("bmi", row("bmi", sex=text)).sex == expected


def test_spreadsheet_number_forms() -> None:
    event = convert("records", row("records", grade="5.0"))
    assert event.grade == 5
    assert convert("bmi", row("bmi", height_cm="141.50", weight_kg="35")).weight_kg == 35.0


def test_non_text_cells_from_a_spreadsheet_are_read_as_text() -> None:
    cells: dict[str, Any] = row("bmi")
    cells["measured_on"] = datetime(2025, 10, 14)
    cells["height_cm"] = 141.5
    event = convert("bmi", cells)
    assert (event.measured_on, event.height_cm) == (date(2025, 10, 14), 141.5)


def test_survey_answers_tolerate_spaces_and_a_trailing_semicolon() -> None:
    event = convert("survey", row("survey", answers=" 0; 1;2;3;0;1;2;1;0;"))
    assert event.answers == (0, 1, 2, 3, 0, 1, 2, 1, 0)


# --- bad rows --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "cells", "field", "fragment"),
    [
        ("bmi", {"height_cm": "abc"}, "height_cm", "'abc' is not a number"),
        ("bmi", {"height_cm": "512"}, "height_cm", "512.0 outside 50..230"),
        ("bmi", {"height_cm": "", "weight_kg": ""}, "weight_kg", "both blank"),
        ("bmi", {"birth_date": ""}, "birth_date", "blank"),
        ("bmi", {"weight_kg": "1e3"}, "weight_kg", "not a number"),
        ("bmi", {"sex": "x"}, "sex", "not male/female"),
        ("bmi", {"measured_on": "2015-03-06"}, "measured_on", "measured before birth"),
        ("bmi", {"measured_on": "2015-03-07"}, "measured_on", "measured before birth"),
        ("bmi", {"measured_on": "2025-10-16"}, "measured_on", "in the future"),
        ("bmi", {"measured_on": "2025-02-30"}, "measured_on", "not a date"),
        ("bmi", {"birth_date": "1990-01-01"}, "birth_date", "implausible"),
        ("bmi", {"birth_date": "07/03/2015"}, "birth_date", "not a date"),
        ("bmi", {"student_number": ""}, "student_number", "blank"),
        ("bmi", {"student_number": "G 1101"}, "student_number", "ASCII letters and digits"),
        ("bmi", {"school_id": "第一小学"}, "school_id", "not a code"),
        ("bmi", {"screener": "Wang Fang"}, "screener", "not a code"),
        ("bmi", {"screener": ""}, "screener", "blank"),
        ("records", {"grade": "10"}, "grade", "10 outside 1..9"),
        ("records", {"grade": "5.5"}, "grade", "not a whole number"),
        ("records", {"action": "expel"}, "action", "not one of register, update, transfer, leave"),
        ("records", {"to_school_id": "5201020002"}, "to_school_id", "only allowed"),
        ("records", {"boarding": "maybe"}, "boarding", "not a yes/no value"),
        ("records", {"birth_date": "2025-09-02"}, "birth_date", "not before effective_on"),
        ("vision", {"ucva_right": "0.8"}, "ucva_right", "looks like decimal acuity"),
        ("vision", {"ucva_left": "4.85"}, "ucva_left", "not 5-point notation"),
        ("vision", {"se_left": "-35"}, "se_left", "outside -30..20"),
        ("vision", {"wears_glasses": ""}, "wears_glasses", "blank"),
        ("survey", {"answers": "0;1;x"}, "answers", "item 3"),
        ("survey", {"answers": "0;1;2"}, "answers", "expected 9 answers, got 3"),
        ("survey", {"answers": "0;1;2;3;0;1;2;1;7"}, "answers", "item 9"),
        ("survey", {"instrument": "bdi-2"}, "instrument", "unknown instrument"),
        ("survey", {"answered_on": "2014-01-01"}, "answered_on", "measured before birth"),
    ],
)
def test_bad_row_names_the_column(kind: str, cells: dict[str, str], field: str, fragment: str) -> None:
    problem = rejected(kind, **cells)
    assert problem.field == field
    assert fragment in problem.reason, problem.reason
    assert str(problem).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("student_number", "G 110101201503070012"),
        ("birth_date", "07/03/2015"),
        ("screener", "王芳"),
        ("screener", "110101201503070012X"),
    ],
)
def test_bad_personal_cells_are_not_repeated(column: str, value: str) -> None:
    problem = rejected("bmi", **{column: value})
    assert problem.field == column
    assert value not in str(problem)


def test_row_with_more_cells_than_the_header() -> None:
    cells: dict[Any, Any] = row("bmi")
    cells[None] = ["surplus"]
    with pytest.raises(RowRejected) as caught:
        convert("bmi", cells)
    assert caught.value.field == "row"


def test_row_missing_a_column_is_a_header_problem() -> None:
    cells = row("bmi")
    del cells["screener"]
    with pytest.raises(HeaderRejected) as caught:
        convert("bmi", cells)
    assert caught.value.missing == ("screener",)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        convert("bmi", row("bmi"), now=datetime(2025, 10, 14, 16, 0))


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        convert("roster", row("roster"))


# --- deterministic ids -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["records", "vision", "bmi", "survey"])
def test_same_row_gives_the_same_event_id(kind: str) -> None:
    first = convert(kind, row(kind))
    later = convert(kind, row(kind), now=NOW + timedelta(hours=5))
    assert first.event_id == later.event_id
    assert first.event_id.version == 5


@pytest.mark.parametrize(
    ("kind", "cells"),
    [
        ("bmi", {"height_cm": "141.6"}),
        ("bmi", {"measured_on": "2025-10-13"}),
        ("bmi", {"student_number": "G110101201503070013"}),
        ("bmi", {"school_id": "5201020002"}),
        ("vision", {"se_left": "-0.5"}),
        ("vision", {"wears_glasses": "yes"}),
        ("survey", {"answers": "0;1;2;3;0;1;2;1;1"}),
        ("records", {"grade": "6"}),
        ("records", {"action": "leave"}),
    ],
)
def test_different_content_gives_a_different_event_id(kind: str, cells: dict[str, str]) -> None:
    assert convert(kind, row(kind)).event_id != convert(kind, row(kind, **cells)).event_id


def test_equivalent_spellings_give_the_same_event_id() -> None:
    base = convert("bmi", row("bmi")).event_id
    assert convert("bmi", row("bmi", height_cm="141.50", measured_on="2025/10/14")).event_id == base
    assert convert("bmi", row("bmi", student_number=NUMBER.lower())).event_id == base


def test_event_id_does_not_depend_on_who_imports() -> None:
    cells = row("bmi")
    mine = row_to_event("bmi", cells, secret=SECRET, submitted_by="importer-1", now=NOW)
    theirs = row_to_event("bmi", cells, secret=SECRET, submitted_by="importer-2", now=NOW)
    assert mine.event_id == theirs.event_id


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(COLUMNS))
def test_exact_header_passes_in_any_order(kind: str) -> None:
    check_header(kind, list(COLUMNS[kind]))
    check_header(kind, list(reversed(COLUMNS[kind])))


def test_header_with_missing_and_unexpected_columns() -> None:
    names = [name for name in COLUMNS["bmi"] if name != "weight_kg"] + ["weight"]
    with pytest.raises(HeaderRejected) as caught:
        check_header("bmi", names)
    assert caught.value.missing == ("weight_kg",)
    assert caught.value.unexpected == ("weight",)
    assert "missing weight_kg" in str(caught.value)


def test_header_with_a_byte_order_mark_says_so() -> None:
    names = list(COLUMNS["bmi"])
    names[0] = "\ufeff" + names[0]
    with pytest.raises(HeaderRejected, match="utf-8-sig"):
        check_header("bmi", names)


def test_header_with_a_repeated_column() -> None:
    with pytest.raises(HeaderRejected, match="repeated screener"):
        check_header("bmi", [*COLUMNS["bmi"], "screener"])


def test_empty_file_has_no_header() -> None:
    with pytest.raises(HeaderRejected, match="empty"):
        check_header("bmi", None)


def test_csv_reader_rows_convert() -> None:
    text = ",".join(COLUMNS["bmi"]) + "\n" + ",".join(row("bmi").values()) + "\n"
    reader = csv.DictReader(io.StringIO(text))
    check_header("bmi", reader.fieldnames)
    [event] = [convert("bmi", cells) for cells in reader]
    assert event == convert("bmi", row("bmi"))


# --- schools and roster ----------------------------------------------------------------------


def test_school_row() -> None:
    school = parse_school_row(row("schools"))
    assert school == School(
        school_id="5201020001",  # type: ignore[arg-type]
        name="贵阳市第一小学",
        county_id="520102",
        county_name="南明区",
        urban_rural="urban",
        stage="primary",
        boarding=False,
        enrollment=1200,
        school_doctors=2,
    )


def test_school_row_optional_counts_and_bad_stage() -> None:
    school = parse_school_row(row("schools", enrollment="", school_doctors=" ", stage="Nine_Year"))
    assert (school.enrollment, school.school_doctors, school.stage) == (None, None, "nine_year")
    with pytest.raises(RowRejected) as caught:
        parse_school_row(row("schools", stage="senior"))
    assert caught.value.field == "stage"
    with pytest.raises(RowRejected) as caught:
        parse_school_row(row("schools", school_doctors="-1"))
    assert caught.value.field == "school_doctors"


def test_roster_row() -> None:
    entry = parse_roster_row(row("roster", student_number=NUMBER.lower()), secret=SECRET)
    assert isinstance(entry, RosterEntry)
    assert entry.student_key == student_key(SECRET, NUMBER)
    assert entry.student_number == NUMBER
    assert entry.name == "张小花"
    assert (entry.sex, entry.birth_date, entry.grade) == ("female", BIRTH, 5)
    assert (entry.boarding, entry.left_behind, entry.disability) == (False, True, False)
    assert entry.enrolled_on == date(2021, 9, 1)


def test_roster_entry_repr_hides_name_and_number() -> None:
    text = repr(parse_roster_row(row("roster"), secret=SECRET))
    assert "张小花" not in text
    assert NUMBER not in text
    assert student_key(SECRET, NUMBER) in text


@pytest.mark.parametrize(
    ("cells", "field"),
    [
        ({"name": ""}, "name"),
        ({"grade": "0"}, "grade"),
        ({"sex": "未知"}, "sex"),
        ({"birth_date": "2021-09-01"}, "birth_date"),
        ({"student_number": "123"}, "student_number"),
        ({"enrolled_on": "next year"}, "enrolled_on"),
    ],
)
def test_bad_roster_rows(cells: dict[str, str], field: str) -> None:
    with pytest.raises(RowRejected) as caught:
        parse_roster_row(row("roster", **cells), secret=SECRET)
    assert caught.value.field == field


def test_roster_register_event() -> None:
    entry = parse_roster_row(row("roster"), secret=SECRET)
    event = roster_to_event(entry, county_id="520102", submitted_by="importer-1", now=NOW)
    assert isinstance(event, HealthRecord)
    assert event.action == "register"
    assert event.effective_on == entry.enrolled_on
    assert event.student_key == entry.student_key
    assert event.left_behind is True
    # The same registration imported from records.csv is the same event.
    as_record = row(
        "records", action="register", effective_on="2021-09-01", boarding="0", left_behind="1",
        disability="0",
    )
    assert convert("records", as_record).event_id == event.event_id


def test_roster_register_event_rejects_a_bad_county() -> None:
    entry = parse_roster_row(row("roster"), secret=SECRET)
    with pytest.raises(RowRejected) as caught:
        roster_to_event(entry, county_id="南明区", submitted_by="importer-1", now=NOW)
    assert caught.value.field == "county_id"


def test_roster_register_event_needs_an_aware_now() -> None:
    entry = parse_roster_row(row("roster"), secret=SECRET)
    with pytest.raises(ValueError, match="timezone-aware"):
        roster_to_event(entry, county_id="520102", submitted_by="x", now=datetime(2025, 1, 1))
    assert roster_to_event(
        entry, county_id="520102", submitted_by="x", now=datetime(2025, 1, 1, tzinfo=UTC)
    ).occurred_at.tzinfo is UTC


# --- partial growth measurements, oedema and age-only records (issue 15) ------------------------


def test_bmi_row_with_height_only_or_weight_only() -> None:
    height_only = convert("bmi", row("bmi", weight_kg=""))
    assert isinstance(height_only, BmiScreening)
    assert (height_only.height_cm, height_only.weight_kg) == (141.5, None)
    weight_only = convert("bmi", row("bmi", height_cm=""))
    assert (weight_only.height_cm, weight_only.weight_kg) == (None, 35.2)
    assert len({height_only.event_id, weight_only.event_id, convert("bmi", row("bmi")).event_id}) == 3


def test_bmi_row_carries_completed_calendar_months_from_the_birth_date() -> None:
    event = convert("bmi", row("bmi"))
    assert event.age_completed_months == 127  # 2015-03-07 to 2025-10-14
    assert event.oedema is None


def test_the_id_of_a_row_without_the_new_columns_is_unchanged() -> None:
    # Re-importing an old file must not duplicate what it imported before.
    plain = convert("bmi", row("bmi"))
    assert plain.event_id == event_id_for("bmi", plain.school_id, plain.student_key, "2025-10-14", "141.5", "35.2")


@pytest.mark.parametrize(("cell", "expected"), [("", None), ("是", True), ("false", False), ("1", True)])
def test_bmi_file_may_add_an_oedema_column(cell: str, expected: bool | None) -> None:
    cells = row("bmi") | {"oedema": cell}
    check_header("bmi", list(cells))
    event = convert("bmi", cells)
    assert event.oedema is expected
    if expected is not None:
        assert event.event_id != convert("bmi", row("bmi")).event_id


def test_bmi_file_with_only_an_age() -> None:
    cells = {k: v for k, v in row("bmi").items() if k != "birth_date"} | {"age_months": "130.25"}
    check_header("bmi", list(cells))
    event = convert("bmi", cells)
    assert event.age_months == 130.25 and event.age_completed_months is None
    both = row("bmi") | {"age_months": "130.25"}
    with pytest.raises(RowRejected, match="not both"):
        convert("bmi", both)
    with pytest.raises(RowRejected, match="not an age"):
        convert("bmi", cells | {"age_months": "0"})


def test_other_files_do_not_take_the_bmi_optional_columns() -> None:
    with pytest.raises(HeaderRejected, match="unexpected 'oedema'"):
        check_header("vision", [*COLUMNS["vision"], "oedema"])
    with pytest.raises(HeaderRejected, match="missing birth_date"):
        check_header("bmi", [c for c in COLUMNS["bmi"] if c != "birth_date"])


def test_check_row_validates_then_classifies_as_the_worker_will() -> None:
    checked = check_row("bmi", row("bmi"), secret=SECRET, submitted_by="doctor-1", now=NOW)
    assert checked.event == row_to_event("bmi", row("bmi"), secret=SECRET, submitted_by="doctor-1", now=NOW)
    (growth,) = checked.batch.growth
    assert growth.event is checked.event
    assert growth.result.bmi_display == 17.6  # 35.2 kg / 1.415 m squared
    with pytest.raises(RowRejected) as refused:
        check_row("vision", row("vision", ucva_right="5.9"), secret=SECRET, submitted_by="doctor-1", now=NOW)
    assert refused.value.field == "ucva_right"
