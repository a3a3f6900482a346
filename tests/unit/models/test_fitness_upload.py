"""The national upload sheet: codes, columns, times, exemptions, and export → import round trips."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from models.fitness_upload import (
    GRADE_BY_CODE,
    UPLOAD_COLUMNS,
    UploadHeaderRejected,
    UploadRowRejected,
    check_upload_header,
    code_of_grade,
    export_row,
    format_time,
    row_to_fitness_event,
)

SECRET = b"test-secret"
NOW = datetime(2025, 11, 1, 8, 0, tzinfo=UTC)


def _row(**cells: str) -> dict[str, str]:
    base = {"年级编号": "22", "班级编号": "3", "班级名称": "初二(3)班", "学籍号": "G110101201201011234",
            "民族代码": "01", "姓名": "测试学生", "性别": "2", "出生日期": "2012-01-01", "家庭住址": "某地",
            "身高": "158", "体重": "48.5", "肺活量": "2600", "50米跑": "9.1", "坐位体前屈": "14.5",
            "一分钟仰卧起坐": "38", "立定跳远": "172", "800米跑": "3'48"}
    return base | cells


def _event(row: dict[str, str]) -> Any:
    return row_to_fitness_event(row, secret=SECRET, school_id="S001", measured_on=date(2025, 10, 10),
                                screener="pe-1", submitted_by="fitness-importer", now=NOW)


def test_grade_codes_from_the_template() -> None:
    assert GRADE_BY_CODE == {"11": 1, "12": 2, "13": 3, "14": 4, "15": 5, "16": 6, "21": 7, "22": 8, "23": 9,
                             "31": 10, "32": 11, "33": 12}
    assert [code_of_grade(grade) for grade in (1, 6, 7, 9, 10, 12)] == ["11", "16", "21", "23", "31", "33"]


def test_a_row_becomes_an_event_without_names() -> None:
    event = _event(_row())
    assert (event.grade, event.sex, event.run_800m_s, event.sit_ups_count, event.height_cm) == (8, "female", 228.0,
                                                                                                  38, 158.0)
    assert event.run_1000m_s is None and event.pull_ups_count is None
    wire = event.model_dump_json()
    assert "测试学生" not in wire and "G110101201201011234" not in wire and "某地" not in wire
    # Same content, same id: importing a sheet twice stores it once.
    assert _event(_row()).event_id == event.event_id
    assert _event(_row(肺活量="2601")).event_id != event.event_id


@pytest.mark.parametrize(("text", "seconds"), [("3'48", 228.0), ("3'48\"", 228.0), ("3:48", 228.0),
                                               ("3分48秒", 228.0), ("228", 228.0), ("3'48.5", 228.5)])
def test_run_times(text: str, seconds: float) -> None:
    assert _event(_row(**{"800米跑": text})).run_800m_s == seconds


@pytest.mark.parametrize(("cells", "column", "reason"), [
    ({"年级编号": "41"}, "年级编号", "41 is a university year"),
    ({"年级编号": "24"}, "年级编号", "'24' is not a grade code"),
    ({"年级编号": ""}, "年级编号", "blank"),
    ({"性别": "3"}, "性别", "not a sex code"),
    ({"学籍号": ""}, "学籍号", "blank"),
    ({"1000米跑": "3'40"}, "1000米跑", "run_1000m is not tested in grade 8 (female)"),
    ({"50米跑": "3.0"}, "50米跑", "3.0 outside 5.5..30"),
    ({"800米跑": "3'75"}, "800米跑", "has 75 seconds past the minute"),
    ({"800米跑": "fast"}, "800米跑", "'fast' is not a time"),
    ({"肺活量": "abc"}, "肺活量", "'abc' is not a number"),
    ({"身高": "免测"}, "身高", "免测 applies to test items"),
])
def test_rejected_rows_name_the_column(cells: dict[str, str], column: str, reason: str) -> None:
    with pytest.raises(UploadRowRejected) as caught:
        _event(_row(**cells))
    assert caught.value.column == column
    assert reason in caught.value.reason


def test_exemptions_marked_mianche() -> None:
    one = _event(_row(**{"800米跑": "免测"}))
    assert one.exempt_items == ("run_800m",) and one.exemption_reason == "not_stated" and not one.exempt
    items = ("肺活量", "50米跑", "坐位体前屈", "一分钟仰卧起坐", "立定跳远", "800米跑")
    whole = _event(_row(**dict.fromkeys(items, "免测")))
    assert whole.exempt and whole.exempt_items == () and whole.height_cm == 158.0


def test_the_header() -> None:
    assert check_upload_header(["年级编号", "学籍号", "性别", "身高(cm)", "体重（kg）"])[3:] == ["身高", "体重"]
    # The importer's reader turns some Chinese headings into English names; they are accepted.
    assert check_upload_header(["年级编号", "student_number", "sex", "height_cm"]) == [
        "年级编号", "学籍号", "性别", "身高"]
    with pytest.raises(UploadHeaderRejected, match="missing 年级编号"):
        check_upload_header(["学籍号", "性别"])
    with pytest.raises(UploadHeaderRejected, match="unexpected '400米跑'"):
        check_upload_header([*UPLOAD_COLUMNS, "400米跑"])


@pytest.mark.parametrize(("seconds", "text"), [(215, "3'35"), (215.5, "3'35.5"), (96, "1'36"), (65, "1'05"),
                                               (245.0, "4'05")])
def test_time_format(seconds: float, text: str) -> None:
    assert format_time(seconds) == text


def test_export_then_import_gives_the_same_event() -> None:
    event = _event(_row(**{"800米跑": "3'48", "立定跳远": "免测"}))
    student = {"national_number": "G110101201201011234", "name": "测试学生", "birth_date": date(2012, 1, 1),
               "class_name": "3"}
    exported = export_row(student, event.model_dump())
    assert exported["年级编号"] == "22" and exported["性别"] == "2" and exported["800米跑"] == "3'48"
    assert exported["立定跳远"] == "免测" and exported["1000米跑"] == "" and exported["引体向上"] == ""
    assert exported["民族代码"] == "" and exported["家庭住址"] == ""  # not kept by the platform
    again = _event(exported)
    assert again == event
