"""The class sheet's fitness row (`models.importing` kind ``fitness``), its columns by grade, the
Chinese reasons of its rejections, and the report's exempt counts and graduation rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from models.fitness import ITEM_INFO, items_for
from models.fitness_upload import row_to_fitness_event
from models.importing import COLUMNS, RowRejected, check_header, row_to_event
from services.reporting.report_fitness import fitness_section
from services.web.class_sheet import RosterStudent, fitness_column_applies, fitness_columns, sheet_rows
from services.web.reasons import translate_reason

SECRET = b"unit-test-secret-unit-test-secret"
NOW = datetime(2025, 10, 14, 16, 0, tzinfo=timezone(timedelta(hours=8)))
NUMBER = "G110101201203070012"
GIRL = {"vital_capacity_ml": "2600", "run_50m_s": "8.9", "sit_and_reach_cm": "15.2", "sit_ups_count": "44",
        "standing_long_jump_cm": "178", "run_800m_s": "3'41"}


def fitness_row(**cells: str) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS["fitness"], "") | {
        "school_id": "S1", "student_number": NUMBER, "sex": "女", "grade": "8", "measured_on": "2025-10-14",
        "screener": "pe-1", "height_cm": "158.5", "weight_kg": "47.2"} | GIRL
    return row | cells


def event(**cells: str) -> Any:
    return row_to_event("fitness", fitness_row(**cells), secret=SECRET, submitted_by="d-a", now=NOW)


def rejected(**cells: str) -> tuple[str, str]:
    with pytest.raises(RowRejected) as caught:
        event(**cells)
    return caught.value.field, caught.value.reason


def test_a_complete_row_becomes_one_fitness_test_with_times_in_seconds() -> None:
    test = event()
    assert (test.sex, test.grade, test.attempt, test.run_800m_s, test.sit_ups_count) == (
        "female", 8, "first", 221.0, 44)
    assert test.exempt is False and test.exempt_items == () and test.exemption_reason is None
    assert event(run_800m_s="221").event_id == test.event_id  # 3'41 and 221 s are one result
    assert event(attempt="补测").attempt == "retest"
    check_header("fitness", [*COLUMNS["fitness"], "attempt", "exemption_reason"])


def test_the_class_sheet_and_the_upload_sheet_give_one_event_for_one_test() -> None:
    sheet = {"年级编号": "22", "学籍号": NUMBER, "性别": "2", "身高": "158.5", "体重": "47.2", "肺活量": "2600",
             "50米跑": "8.9", "坐位体前屈": "15.2", "一分钟仰卧起坐": "44", "立定跳远": "178", "800米跑": "3'41"}
    uploaded = row_to_fitness_event(sheet, secret=SECRET, school_id="S1", measured_on=date(2025, 10, 14),
                                    screener="pe-1", submitted_by="d-a", now=NOW)
    assert uploaded.event_id == event().event_id


def test_missing_is_missing_never_zero() -> None:
    test = event(run_800m_s="", sit_ups_count="")
    assert test.run_800m_s is None and test.sit_ups_count is None
    assert event(sit_ups_count="0").sit_ups_count == 0  # 0 is a result
    assert rejected(**dict.fromkeys(GIRL, ""), weight_kg="") == (
        "row", "no test result (an item, or height and weight) and no item marked 免测")
    assert event(**dict.fromkeys(GIRL, "")).height_cm == 158.5  # height and weight alone: the BMI item


def test_an_item_not_tested_in_the_grade_and_sex_is_refused_with_the_grades_items() -> None:
    reason = ("pull_ups is not tested in grade 8 (female); that grade's items are vital_capacity, run_50m, "
              "sit_and_reach, sit_ups_1min, standing_long_jump, run_800m")
    assert rejected(pull_ups_count="3") == ("pull_ups_count", reason)
    assert rejected(pull_ups_count="免测") == ("pull_ups_count", reason)
    assert rejected(grade="3", standing_long_jump_cm="")[0] == "run_800m_s"  # no 800 m in grade 3
    assert rejected(grade="13") == ("grade", "13 outside 1..12")
    assert translate_reason("zh-CN", reason) == (
        "8年级女生不测引体向上；该年级女生的测试项目为：肺活量、50米跑、坐位体前屈、一分钟仰卧起坐、立定跳远、800米跑")
    assert translate_reason("en", reason) == reason


@pytest.mark.parametrize(("cells", "field", "chinese"), [
    ({"run_50m_s": "3"}, "run_50m_s", "3.0 超出范围（5.5 至 30）"),
    ({"run_800m_s": "3'75"}, "run_800m_s", "\"3'75\" 的秒数为 75，应小于 60"),
    ({"run_800m_s": "fast"}, "run_800m_s", "'fast' 不是时间（应为 分'秒，如 3'35，或秒数）"),
    ({"height_cm": "1585"}, "height_cm", "1585 像是以毫米为单位（即 158.5 厘米）；请按厘米填写"),
    ({"sit_ups_count": "4x"}, "sit_ups_count", "'4x' 不是数字"),
    ({"exemption_reason": "疾病"}, "exemption_reason", "填写了免测原因，但没有项目填“免测”"),
    ({"exemption_reason": "lazy", "run_800m_s": "免测"}, "exemption_reason", None),
])
def test_implausible_and_malformed_cells_name_their_column_in_both_languages(
        cells: dict[str, str], field: str, chinese: str | None) -> None:
    found, reason = rejected(**cells)
    assert found == field
    if chinese is not None:
        assert translate_reason("zh-CN", reason) == chinese
    assert translate_reason("en", reason) == reason


def test_exemptions_single_items_and_whole_with_their_reason() -> None:
    one = event(run_800m_s="免测")
    assert (one.exempt, one.exempt_items, one.exemption_reason, one.run_800m_s) == (False, ("run_800m",), "not_stated",
                                                                                   None)
    assert event(run_800m_s="免测", exemption_reason="受伤").exemption_reason == "injury"
    whole = event(**dict.fromkeys(GIRL, "免测"), exemption_reason="残疾")
    assert (whole.exempt, whole.exempt_items, whole.exemption_reason) == (True, (), "disability")
    assert whole.height_cm == 158.5  # height and weight may still be measured
    assert whole.event_id != event(**dict.fromkeys(GIRL, "免测"), exemption_reason="疾病").event_id


def test_fitness_columns_follow_the_grade_and_each_students_sex() -> None:
    names = [c.name for c in fitness_columns(8)]
    assert names == ["height_cm", "weight_kg", "vital_capacity_ml", "run_50m_s", "sit_and_reach_cm", "sit_ups_count",
                     "standing_long_jump_cm", "pull_ups_count", "run_1000m_s", "run_800m_s", "exemption_reason"]
    assert "rope_skipping_count" in [c.name for c in fitness_columns(2)]
    assert "shuttle_run_50m_x8_s" in [c.name for c in fitness_columns(5)]
    for grade in range(1, 13):
        for sex in ("male", "female"):
            applying = {c.name for c in fitness_columns(grade) if fitness_column_applies(c, sex, grade)}
            assert applying == {"height_cm", "weight_kg", "exemption_reason",
                                *(ITEM_INFO[i].field for i in items_for(sex, grade))}


def test_a_sheet_row_becomes_a_fitness_row_with_the_students_grade_and_the_sheets_attempt() -> None:
    student = RosterStudent(school_id="S1", student_number=NUMBER, sex="female", birth_date=date(2012, 3, 7))
    rows = sheet_rows(student, {"height_cm": "158.5", "run_800m_s": "3'41", "pull_ups_count": ""},
                      measured_on=date(2025, 10, 14), screener="d-a", columns=fitness_columns(8), grade=8,
                      attempt="retest")
    assert list(rows) == ["fitness"]
    assert rows["fitness"] == fitness_row(**(dict.fromkeys(GIRL, "") | {"run_800m_s": "3'41"}), weight_kg="",
                                          sex="female", screener="d-a") | {"attempt": "retest", "exemption_reason": ""}
    assert sheet_rows(student, {}, measured_on=date(2025, 10, 14), screener="d-a", columns=fitness_columns(8),
                      grade=8) == {}
    # A reason typed alone is submitted (and refused with its reason), never dropped.
    assert "fitness" in sheet_rows(student, {"exemption_reason": "疾病"}, measured_on=date(2025, 10, 14),
                                   screener="d-a", columns=fitness_columns(8), grade=8)


def _cell(metric: str, breakdown: str, category: str, numerator: int | None, denominator: int | None, *,
          suppressed: str | None = None) -> dict[str, Any]:
    rate = None if numerator is None or not denominator else numerator / denominator
    return {"metric_id": metric, "breakdown": breakdown, "category": category, "numerator": numerator,
            "denominator": denominator, "rate": rate, "ci_low": rate, "ci_high": rate, "suppressed": suppressed}


def test_the_report_shows_exempt_counts_withheld_like_every_cell_and_the_graduation_rule() -> None:
    cells = [
        _cell("fitness_pass", "all", "all", 900, 1000),
        _cell("fitness_exempt", "all", "all", 12, 1012),
        _cell("fitness_exempt", "sex", "male", None, None, suppressed="primary"),
        _cell("fitness_exempt", "sex", "female", None, None, suppressed="complementary"),
        _cell("fitness_graduation_pass", "all", "all", 190, 200),
        _cell("fitness_graduation_excellent", "stage", "junior", 30, 100),
    ]
    html = fitness_section(cells)
    exempt = html.split('id="fitness-exempt"')[1].split("</table>")[0]
    assert "12 (1.2%, n=1,012)" in exempt and exempt.count("withheld") == 2
    graduation = html.split('id="fitness-graduation"')[1].split("</table>")[0]
    assert "95.0%" in graduation and "30.0%" in graduation
    assert "毕业成绩 = 毕业当年" in html and "50% of the final year&#39;s total" in html
    assert "毕业成绩 / graduation score" in html  # in the definitions too
