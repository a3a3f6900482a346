"""Current grades from the school year, ages, and alert evidence in words."""

from __future__ import annotations

from datetime import date

import pytest

from models.evidence_text import describe_evidence
from models.school_year import age_years, current_grade, school_year


@pytest.mark.parametrize(("on", "year"), [(date(2025, 9, 1), 2025), (date(2025, 8, 31), 2024),
                                          (date(2026, 3, 1), 2025), (date(2025, 12, 31), 2025)])
def test_school_year_starts_on_1_september(on: date, year: int) -> None:
    assert school_year(on) == year


def test_the_grade_moves_up_with_each_school_year_not_with_the_registration() -> None:
    # Registered in grade 1 on 1 September 2022: grade 4 in school year 2025-26.
    assert current_grade(1, date(2022, 9, 1), date(2025, 12, 2)) == 4
    # A summer record (July 2023) still belongs to school year 2022-23.
    assert current_grade(1, date(2023, 7, 15), date(2025, 12, 2)) == 4
    assert current_grade(9, date(2024, 9, 1), date(2025, 10, 1)) is None  # left compulsory education
    assert current_grade(5, None, date(2025, 10, 1)) == 5


def test_age_in_completed_years() -> None:
    assert age_years(date(2015, 12, 3), date(2025, 12, 2)) == 9
    assert age_years(date(2015, 12, 2), date(2025, 12, 2)) == 10


Evidence = dict[str, str | int | float | bool | None]
PHQ_ITEM9: Evidence = {"instrument": "phq-a", "instrument_version": "1", "total": 3, "band": "minimal",
                      "item": 9, "answer": 1}


def test_self_harm_evidence_reads_as_the_answer_given() -> None:
    assert describe_evidence("self_harm", PHQ_ITEM9, "en") == (
        "answered 'several days' to item 9 of PHQ-A; total 3, minimal")
    assert describe_evidence("self_harm", PHQ_ITEM9, "zh-CN") == "PHQ-A 第 9 题回答“有几天”；总分 3，无或极轻"


def test_band_and_supplement_evidence() -> None:
    assert describe_evidence("depression", {"instrument": "phq-9", "total": 22, "band": "severe"}, "en") == (
        "PHQ-9 total 22, severe")
    text = describe_evidence("self_harm", {"instrument": "phq-a", "total": 9, "band": "mild", "item12": 1,
                                           "item13": 0}, "en")
    assert text == "answered 'yes' to item 12 of PHQ-A; total 9, mild"


def test_growth_and_vision_evidence() -> None:
    growth: Evidence = {"bmi": 30.6, "bmi_for_age_z": 2.81, "who_category": "obesity", "wst586": "obesity"}
    assert describe_evidence("obesity", growth, "en") == (
        "BMI 30.6 (BMI-for-age z 2.81); WHO 2007: obesity; WS/T 586-2018: obesity")
    vision = {"se_right": -6.5, "se_left": None, "ucva_right": 4.0, "ucva_left": 4.1}
    assert describe_evidence("high_myopia", vision, "zh-CN") == (
        "裸眼视力 右/左 4.0 / 4.1；等效球镜 右 -6.50 D，左 –；高度近视：等效球镜 ≤ -6.00 D")
