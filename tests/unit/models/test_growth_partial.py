"""Weight-for-age, partial measurements, oedema and WHO's flags, as WHO's software gives them."""

from __future__ import annotations

import csv
import math
from importlib import resources
from typing import Any, Literal

import pytest

from models.growth import (
    LMS,
    OutOfRange,
    classify_growth,
    lms_z,
    value_at_z,
    who_lms,
    who_weight_for_age_category,
)


def reference_rows(name: str) -> list[dict[str, str]]:
    with resources.files("models.reference").joinpath(name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


WEIGHT_VECTORS = reference_rows("who2007_weight_for_age_vectors.csv")
WEIGHT_LMS = {(row["sex"], int(row["age_months"])): row for row in reference_rows("who2007_weight_for_age_lms.csv")}


@pytest.mark.parametrize("row", WEIGHT_VECTORS, ids=[row["case_id"] for row in WEIGHT_VECTORS])
def test_reproduces_whos_own_weight_for_age_test_values(row: dict[str, str]) -> None:
    sex: Any = row["sex"]
    age = float(row["age_months"])
    result = classify_growth(sex=sex, age_months=age, height_cm=float(row["height_cm"]),
                             weight_kg=float(row["weight_kg"]))
    assert result.weight_for_age_z == float(row["expected_zwfa"])
    # Unrounded, to WHO's 3-decimal output.
    cases: tuple[tuple[Literal["weight", "height"], float, str], ...] = (
        ("weight", float(row["weight_kg"]), "expected_zwfa_3dp"),
        ("height", float(row["height_cm"]), "expected_zhfa_3dp"),
    )
    for indicator, value, column in cases:
        z = lms_z(who_lms(indicator, sex, age), value, restricted=indicator == "weight")
        assert round(z, 3) == float(row[column])
    assert result.bmi is not None
    assert round(lms_z(who_lms("bmi", sex, age), result.bmi, restricted=True), 3) == float(row["expected_zbfa_3dp"])


def test_the_weight_table_is_whos_60_to_120_months_padded_at_121() -> None:
    assert {month for _, month in WEIGHT_LMS} == set(range(60, 122))
    for sex in ("male", "female"):
        assert {k: v for k, v in WEIGHT_LMS[sex, 121].items() if k != "age_months"} == \
               {k: v for k, v in WEIGHT_LMS[sex, 120].items() if k != "age_months"}


@pytest.mark.parametrize("month", [60, 61, 84, 100, 120])
@pytest.mark.parametrize("sex", ["male", "female"])
def test_weight_for_age_uses_the_table_row_at_whole_months(sex: Any, month: int) -> None:
    row = WEIGHT_LMS[sex, month]
    assert who_lms("weight", sex, float(month)) == LMS(l=float(row["L"]), m=float(row["M"]), s=float(row["S"]))
    median = classify_growth(sex=sex, age_months=float(month), height_cm=None, weight_kg=float(row["M"]))
    assert median.weight_for_age_z == 0.0


def restricted_by_hand(row: dict[str, str], weight: float) -> float:
    """WHO's restricted z (STANDARDS.md §1.1), computed straight from one table row."""
    l, m, s = float(row["L"]), float(row["M"]), float(row["S"])  # noqa: E741

    def sd(k: float) -> float:
        return float(m * (1 + l * s * k) ** (1 / l))

    z = float(((weight / m) ** l - 1) / (l * s))
    if z > 3:
        return 3 + (weight - sd(3)) / (sd(3) - sd(2))
    if z < -3:
        return -3 + (weight - sd(-3)) / (sd(-2) - sd(-3))
    return z


@pytest.mark.parametrize("weight", [9.0, 11.0, 14.0, 20.0, 30.0, 45.0, 60.0, 80.0])
def test_weight_for_age_is_restricted_beyond_three_sd(weight: float) -> None:
    row = WEIGHT_LMS["male", 96]
    result = classify_growth(sex="male", age_months=96.0, height_cm=None, weight_kg=weight)
    assert result.weight_for_age_z == round(restricted_by_hand(row, weight), 2) + 0.0
    raw = lms_z(who_lms("weight", "male", 96.0), weight)
    if abs(raw) > 3:  # the adjustment changes the answer out there
        assert abs(raw - restricted_by_hand(row, weight)) > 0.01


@pytest.mark.parametrize(("age", "given"), [(60.0, True), (120.0, True), (120.99, True), (121.0, False),
                                            (130.0, False), (59.9, False)])
def test_weight_for_age_is_given_from_60_to_below_121_months(age: float, given: bool) -> None:
    # anthroplus 1.1.0: "the upper age limit of 121 months for WFA is now exclusive".
    result = classify_growth(sex="female", age_months=age, height_cm=None, weight_kg=25.0)
    assert (result.weight_for_age_z is not None) == given
    assert (result.who_weight_for_age == "not_applicable") != given
    if not given:
        assert "WHO 2007 weight-for-age: given for ages 60..<121 months only (WHO: up to 10 years)" \
            in result.not_applicable_reasons
    if 60 <= age < 121:
        who_lms("weight", "female", age)
    else:
        with pytest.raises(OutOfRange):
            who_lms("weight", "female", age)


@pytest.mark.parametrize(("z", "category"), [(-3.01, "severe_underweight"), (-3.0, "underweight"),
                                             (-2.01, "underweight"), (-2.0, "not_underweight"),
                                             (0.0, "not_underweight"), (4.0, "not_underweight")])
def test_weight_for_age_categories_are_strict_as_anthroplus(z: float, category: str) -> None:
    assert who_weight_for_age_category(z) == category


def weight_at(sex: Any, age: float, z: float) -> float:
    return value_at_z(who_lms("weight", sex, age), z, restricted=True)


@pytest.mark.parametrize(("z", "flagged"), [(4.99, False), (5.0, False), (5.02, True), (-5.99, False),
                                            (-6.0, False), (-6.02, True)])
def test_weight_for_age_flag_is_below_minus_6_or_above_5(z: float, flagged: bool) -> None:
    result = classify_growth(sex="male", age_months=100.0, height_cm=None, weight_kg=weight_at("male", 100.0, z))
    assert result.weight_for_age_z == pytest.approx(z, abs=0.006)
    assert ("implausible_weight_for_age_z" in result.flags) == flagged
    assert (result.who_weight_for_age == "not_applicable") == flagged


def bmi_weight(sex: Any, age: float, height: float, z: float) -> float:
    return value_at_z(who_lms("bmi", sex, age), z, restricted=True) * (height / 100) ** 2


@pytest.mark.parametrize(("z", "flagged"), [(4.99, False), (5.0, False), (5.02, True), (-4.98, False),
                                            (-5.02, True)])
def test_a_flagged_bmi_for_age_gets_the_flag_and_no_category(z: float, flagged: bool) -> None:
    result = classify_growth(sex="female", age_months=150.0, height_cm=150.0,
                             weight_kg=bmi_weight("female", 150.0, 150.0, z))
    assert ("implausible_bmi_for_age_z" in result.flags) == flagged
    categories = (result.who_category, result.wst586, result.wst456_wasting)
    if flagged:
        assert categories == ("not_applicable",) * 3
        assert sum("WHO flag" in reason for reason in result.not_applicable_reasons) == 3
    else:
        assert "not_applicable" not in categories
        assert result.who_category in ("obesity", "severe_thinness")


def test_the_issue_example_bmi_for_age_plus_15_is_only_a_flag() -> None:
    weight = bmi_weight("male", 120.0, 140.0, 15)
    result = classify_growth(sex="male", age_months=120.0, height_cm=140.0, weight_kg=weight)
    assert result.bmi_for_age_z == pytest.approx(15, abs=0.01)
    assert result.who_category == "not_applicable" and result.wst586 == "not_applicable"
    assert "implausible_bmi_for_age_z" in result.flags


def test_a_flagged_height_gets_no_stunting_class_but_bmi_is_still_classified() -> None:
    # WHO flags each indicator on its own.
    result = classify_growth(sex="female", age_months=100.0, height_cm=70.0, weight_kg=8.0)
    assert "implausible_height_for_age_z" in result.flags
    assert result.wst456_stunting == "not_applicable"
    assert any("height-for-age z" in reason for reason in result.not_applicable_reasons)


# --- partial measurements ------------------------------------------------------------------

def test_height_without_weight_classifies_height_for_age_and_stunting() -> None:
    result = classify_growth(sex="male", age_months=100.0, height_cm=120.0, weight_kg=None)
    assert result.height_for_age_z is not None
    assert result.wst456_stunting in ("normal", "stunting")
    assert result.bmi is None and result.bmi_display is None
    assert result.bmi_for_age_z is None and result.weight_for_age_z is None
    assert (result.who_category, result.who_weight_for_age, result.wst586, result.wst456_wasting) == \
        ("not_applicable",) * 4
    assert sum("no weight recorded" in reason for reason in result.not_applicable_reasons) == 4


def test_weight_without_height_classifies_weight_for_age_only() -> None:
    result = classify_growth(sex="female", age_months=90.0, height_cm=None, weight_kg=22.0)
    assert result.weight_for_age_z is not None and result.who_weight_for_age == "not_underweight"
    assert result.height_for_age_z is None and result.bmi is None
    assert result.wst456_stunting == "not_applicable"
    assert "WS/T 456-2014 stunting: no height recorded" in result.not_applicable_reasons


def test_no_measurement_at_all_is_an_error() -> None:
    with pytest.raises(ValueError, match="height_cm and weight_kg are both missing"):
        classify_growth(sex="female", age_months=90.0, height_cm=None, weight_kg=None)


# --- bilateral pitting oedema --------------------------------------------------------------

@pytest.mark.parametrize("oedema", [None, False])
def test_oedema_not_recorded_or_absent_changes_nothing(oedema: bool | None) -> None:
    base = classify_growth(sex="male", age_months=100.0, height_cm=125.0, weight_kg=24.0)
    result = classify_growth(sex="male", age_months=100.0, height_cm=125.0, weight_kg=24.0, oedema=oedema)
    assert result.bmi_for_age_z == base.bmi_for_age_z is not None
    assert result.weight_for_age_z == base.weight_for_age_z is not None
    assert result.oedema is oedema


def test_oedema_gives_no_bmi_or_weight_for_age_z_as_who() -> None:
    result = classify_growth(sex="male", age_months=100.0, height_cm=125.0, weight_kg=24.0, oedema=True)
    assert result.oedema is True
    assert result.bmi_for_age_z is None and result.weight_for_age_z is None
    # WHO's prevalence counts oedema below -3 SD (anthroplus: auxiliary z -3.1); WS/T has no class.
    assert (result.who_category, result.who_weight_for_age) == ("severe_thinness", "severe_underweight")
    assert (result.wst586, result.wst456_wasting) == ("not_applicable",) * 2
    # Height is unaffected (anthroplus computes zhfa with oedema).
    assert result.height_for_age_z is not None and result.wst456_stunting != "not_applicable"
    assert sum("oedema" in reason for reason in result.not_applicable_reasons) == 4
    assert result.bmi_display == 15.4  # the measurement itself is still reported


def test_oedema_after_ten_years_has_no_weight_for_age_class_and_alerts_the_doctor() -> None:
    from models.pipeline import ProcessedMessages, classify_event
    from models.rules import evaluate_growth
    from tests import factories

    result = classify_growth(sex="female", age_months=150.0, height_cm=None, weight_kg=30.0, oedema=True)
    assert (result.who_category, result.who_weight_for_age) == ("severe_thinness", "not_applicable")
    batch = ProcessedMessages()
    classify_event(factories.bmi(11, height_cm=125.0, weight_kg=24.0, age_months=100.0, oedema=True), batch)
    assert [alert.concern for alert in evaluate_growth(batch.growth[0])] == ["severe_thinness"]


def test_oedema_must_be_a_boolean() -> None:
    with pytest.raises(ValueError, match="oedema"):
        classify_growth(sex="male", age_months=100.0, height_cm=125.0, weight_kg=24.0, oedema="y")  # type: ignore[arg-type]


def test_results_carry_no_nan() -> None:
    result = classify_growth(sex="female", age_months=72.5, height_cm=None, weight_kg=18.0)
    for value in (result.weight_for_age_z, result.height_for_age_z, result.bmi_for_age_z):
        assert value is None or math.isfinite(value)
