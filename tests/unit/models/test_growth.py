"""Growth classification against WHO's own reference output and every row of the WS/T tables."""

from __future__ import annotations

import csv
import dataclasses
import math
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest

from models import growth
from models.ages import age_in_months, completed_months
from models.growth import (
    LMS,
    OutOfRange,
    classify_growth,
    lms_z,
    value_at_z,
    who_bmi_category,
    who_lms,
)
from models.types import Sex


def reference_rows(name: str) -> list[dict[str, str]]:
    with resources.files("models.reference").joinpath(name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


VECTORS = reference_rows("who2007_bmi_zscore_vectors.csv")
OVERWEIGHT_ROWS = reference_rows("ws_t_586_2018_bmi_overweight_obesity.csv")
WASTING_ROWS = reference_rows("ws_t_456_2014_bmi_wasting.csv")
STUNTING_ROWS = reference_rows("ws_t_456_2014_stunting_height_UNVERIFIED.csv")
TENTH = Decimal("0.1")


def months_inside_group(age_from: str) -> float:
    """An age a quarter-year into the half-year group, in decimal months."""
    return (float(age_from) + 0.25) * 12


def with_bmi(sex: Any, age_months: float, bmi: Decimal) -> str:
    # At 100 cm, BMI equals the weight exactly, so the boundary value reaches the classifier
    # without float error.
    result = classify_growth(sex=sex, age_months=age_months, height_cm=100.0, weight_kg=float(bmi))
    assert result.bmi == float(bmi)
    return f"{result.wst586}/{result.wst456_wasting}"


def test_the_vector_file_holds_the_64_cases() -> None:
    assert len(VECTORS) == 64


@pytest.mark.parametrize("row", VECTORS, ids=[f"{row['case_id']}@{row['age_months']}" for row in VECTORS])
def test_reproduces_who_reference_z_scores(row: dict[str, str]) -> None:
    result = classify_growth(
        sex=row["sex"],  # type: ignore[arg-type]
        age_months=float(row["age_months"]),
        height_cm=float(row["height_cm"]),
        weight_kg=float(row["weight_kg"]),
    )
    assert result.bmi == pytest.approx(float(row["bmi"]), abs=5e-5)
    assert result.bmi_for_age_z == pytest.approx(float(row["expected_zbfa"]), abs=0.005)
    assert result.height_for_age_z == pytest.approx(float(row["expected_zhfa"]), abs=0.005)
    assert ("implausible_bmi_for_age_z" in result.flags) == (abs(float(row["expected_zbfa"])) > 5)


@pytest.mark.parametrize("row", VECTORS, ids=[row["case_id"] for row in VECTORS])
def test_raw_lms_z_matches_the_unadjusted_column(row: dict[str, str]) -> None:
    lms = who_lms("bmi", row["sex"], float(row["age_months"]))  # type: ignore[arg-type]
    assert lms_z(lms, float(row["bmi"])) == pytest.approx(float(row["raw_lms_z_unadjusted"]), abs=5e-4)


def test_restricted_adjustment_beyond_plus_three() -> None:
    # WHO survey case 323: raw LMS z 4.52, WHO's restricted z 7.04.
    result = classify_growth(sex="male", age_months=187.34, height_cm=170.0, weight_kg=181.3)
    lms = who_lms("bmi", "male", 187.34)
    assert result.bmi is not None
    assert lms_z(lms, result.bmi) == pytest.approx(4.52, abs=0.005)
    assert result.bmi_for_age_z == 7.04
    # WHO flags |z| > 5 as implausible: the flag, and no nutritional category.
    assert result.who_category == "not_applicable"
    assert result.wst586 == "not_applicable"
    assert result.flags == ("implausible_bmi_for_age_z",)


def test_restricted_adjustment_below_minus_three() -> None:
    # WHO survey case 230: raw -3.275, WHO -3.24.
    result = classify_growth(sex="male", age_months=144.13, height_cm=145.2, weight_kg=27.7)
    assert result.bmi_for_age_z == -3.24
    assert result.who_category == "severe_thinness"


def test_height_for_age_is_never_restricted() -> None:
    lms = who_lms("height", "female", 150.0)
    tall = value_at_z(lms, 4.5)
    assert lms_z(lms, tall) == pytest.approx(4.5)
    assert lms_z(lms, tall, restricted=False) == pytest.approx((tall - lms.m) / (lms.m * lms.s))
    result = classify_growth(sex="female", age_months=150.0, height_cm=tall, weight_kg=45.0)
    assert result.height_for_age_z == pytest.approx(4.5, abs=0.005)


def test_interpolates_between_whole_months() -> None:
    rows = {(row["sex"], int(row["age_months"])): row for row in reference_rows("who2007_bmi_for_age_lms.csv")}
    low, high = rows["female", 100], rows["female", 101]
    lms = who_lms("bmi", "female", 100.25)
    for field, letter in (("l", "L"), ("m", "M"), ("s", "S")):
        expected = float(low[letter]) + 0.25 * (float(high[letter]) - float(low[letter]))
        assert getattr(lms, field) == pytest.approx(expected, rel=1e-12)
    assert who_lms("bmi", "female", 100.0) == LMS(l=float(low["L"]), m=float(low["M"]), s=float(low["S"]))


def test_the_60_month_row_serves_only_ages_60_to_61() -> None:
    at_60 = who_lms("bmi", "male", 60.0)
    assert at_60 == LMS(l=-0.7151, m=15.2679, s=0.08366)
    halfway = who_lms("bmi", "male", 60.5)
    assert halfway.m == pytest.approx((15.2679 + 15.2641) / 2)
    assert who_lms("height", "female", 60.0).m == 109.0725


@pytest.mark.parametrize("age", [0.0, 59.99, 229.0, 240.0])
def test_out_of_range_age_is_not_applicable_with_a_reason(age: float) -> None:
    with pytest.raises(OutOfRange, match="outside the WHO 2007 reference"):
        who_lms("bmi", "male", age)
    result = classify_growth(sex="male", age_months=age, height_cm=120.0, weight_kg=25.0)
    assert result.bmi_for_age_z is None
    assert result.height_for_age_z is None
    assert result.who_category == "not_applicable"
    assert any(reason.startswith("WHO 2007: age") for reason in result.not_applicable_reasons)


def test_out_of_range_is_a_value_error() -> None:
    assert issubclass(OutOfRange, ValueError)


@pytest.mark.parametrize("age", [60.0, 228.0, 228.5, 228.99])
def test_range_is_60_to_below_229_months(age: float) -> None:
    # anthroplus 1.1.0: "Increased the upper age limit to 229 months exclusive"; its test
    # "age upper bounds are exclusive" gives z-scores at 228.5 and none at 229.
    result = classify_growth(sex="female", age_months=age, height_cm=140.0, weight_kg=35.0)
    assert result.bmi_for_age_z is not None and result.height_for_age_z is not None
    assert not any(reason.startswith(("WHO 2007:", "WHO 2007 BMI")) for reason in result.not_applicable_reasons)


@pytest.mark.parametrize(
    ("z", "category"),
    [
        (-3.01, "severe_thinness"),
        (-3.0, "thinness"),
        (-2.01, "thinness"),
        (-2.0, "normal"),
        (1.0, "normal"),
        (1.01, "overweight"),
        (2.0, "overweight"),
        (2.01, "obesity"),
    ],
)
def test_who_categories_use_strict_inequalities(z: float, category: str) -> None:
    assert who_bmi_category(z) == category


def test_categories_use_the_rounded_z() -> None:
    lms = who_lms("bmi", "male", 120.0)
    bmi = value_at_z(lms, 2.004)
    result = classify_growth(sex="male", age_months=120.0, height_cm=100.0, weight_kg=bmi)
    assert result.bmi_for_age_z == 2.0
    assert result.who_category == "overweight"


@pytest.mark.parametrize(
    "row", OVERWEIGHT_ROWS, ids=[f"{row['sex']}-{row['age_from_years']}" for row in OVERWEIGHT_ROWS]
)
def test_wst586_every_row_at_both_sides_of_its_cut_offs(row: dict[str, str]) -> None:
    age = months_inside_group(row["age_from_years"])
    overweight, obesity = Decimal(row["overweight_bmi_ge"]), Decimal(row["obesity_bmi_ge"])
    assert with_bmi(row["sex"], age, overweight - TENTH).startswith("normal/")
    assert with_bmi(row["sex"], age, overweight).startswith("overweight/")
    assert with_bmi(row["sex"], age, obesity - TENTH).startswith("overweight/")
    assert with_bmi(row["sex"], age, obesity).startswith("obesity/")


@pytest.mark.parametrize("row", WASTING_ROWS, ids=[f"{row['sex']}-{row['age_from_years']}" for row in WASTING_ROWS])
def test_wst456_wasting_every_row_at_both_sides_of_its_cut_offs(row: dict[str, str]) -> None:
    age = months_inside_group(row["age_from_years"])
    moderate, mild = Decimal(row["moderate_severe_wasting_bmi_le"]), Decimal(row["mild_wasting_bmi_le"])
    assert with_bmi(row["sex"], age, moderate).endswith("/moderate_severe")
    assert with_bmi(row["sex"], age, moderate + TENTH).endswith("/mild")
    assert with_bmi(row["sex"], age, mild).endswith("/mild")
    assert with_bmi(row["sex"], age, mild + TENTH).endswith("/normal")


USED_STUNTING_ROWS = [row for row in STUNTING_ROWS if float(row["age_label_as_found"]) < 17.5]


@pytest.mark.parametrize(
    "row", USED_STUNTING_ROWS, ids=[f"{row['sex']}-{row['age_label_as_found']}" for row in USED_STUNTING_ROWS]
)
def test_wst456_stunting_every_used_row_at_both_sides(row: dict[str, str]) -> None:
    age = months_inside_group(row["age_label_as_found"])
    cut_off = Decimal(row["stunting_height_cm_le"])

    def stunting(height: Decimal) -> str:
        result = classify_growth(sex=row["sex"], age_months=age, height_cm=float(height), weight_kg=30.0)  # type: ignore[arg-type]
        assert "UNVERIFIED" in result.reference
        return result.wst456_stunting

    assert stunting(cut_off) == "stunting"
    assert stunting(cut_off + TENTH) == "normal"


def test_stunting_has_no_result_where_the_unverified_table_has_no_row() -> None:
    result = classify_growth(sex="male", age_months=17.75 * 12, height_cm=150.0, weight_kg=50.0)
    assert result.wst456_stunting == "not_applicable"
    assert any("no 17.5~ row" in reason for reason in result.not_applicable_reasons)
    assert result.wst456_wasting != "not_applicable"


def test_bmi_is_compared_at_one_decimal_rounded_half_up() -> None:
    # Boys 6.0~: overweight at 16.4. 16.35 displays as 16.4, 16.349 as 16.3.
    assert with_bmi("male", 75.0, Decimal("16.35")).startswith("overweight/")
    assert with_bmi("male", 75.0, Decimal("16.349")).startswith("normal/")
    result = classify_growth(sex="male", age_months=75.0, height_cm=100.0, weight_kg=16.35)
    assert result.bmi_display == 16.4
    assert dataclasses.asdict(result)["bmi_display"] == 16.4  # what the API and pages show


def test_half_year_groups_are_closed_below_and_open_above() -> None:
    # Boys: 6.0~ overweight at 16.4, 6.5~ at 16.7.
    assert with_bmi("male", 78.0, Decimal("16.5")).startswith("normal/")
    assert with_bmi("male", 77.99, Decimal("16.5")).startswith("overweight/")


def test_wst_standards_start_at_six_years() -> None:
    result = classify_growth(sex="female", age_months=71.9, height_cm=115.0, weight_kg=20.0)
    assert (result.wst586, result.wst456_wasting, result.wst456_stunting) == ("not_applicable",) * 3
    assert result.who_category != "not_applicable"
    assert len(result.not_applicable_reasons) == 3


def test_calendar_age_puts_a_sixth_birthday_in_the_six_year_group() -> None:
    birth, measured = date(2017, 3, 1), date(2023, 3, 1)
    months = age_in_months(birth, measured)
    assert months < 72  # 2191 days: one leap day in six years
    by_decimal = classify_growth(sex="male", age_months=months, height_cm=115.0, weight_kg=20.0)
    by_calendar = classify_growth(
        sex="male",
        age_months=months,
        height_cm=115.0,
        weight_kg=20.0,
        calendar_months=completed_months(birth, measured),
    )
    assert by_decimal.wst586 == "not_applicable"
    assert by_calendar.wst586 == "normal"


@pytest.mark.parametrize(
    ("birth", "measured", "months"),
    [
        (date(2018, 3, 1), date(2024, 3, 1), 72),
        (date(2018, 3, 1), date(2024, 2, 29), 71),
        (date(2016, 1, 31), date(2016, 2, 29), 1),
        (date(2016, 1, 31), date(2016, 2, 28), 0),
        (date(2015, 8, 15), date(2015, 8, 15), 0),
    ],
)
def test_completed_months(birth: date, measured: date, months: int) -> None:
    assert completed_months(birth, measured) == months


def test_age_in_months_uses_days_over_30_4375() -> None:
    assert age_in_months(date(2015, 1, 1), date(2016, 1, 1)) == pytest.approx(365 / 30.4375)
    with pytest.raises(ValueError, match="before birth_date"):
        age_in_months(date(2016, 1, 2), date(2016, 1, 1))


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("height_cm", {"height_cm": 1.45}),
        ("weight_kg", {"weight_kg": 0.0}),
        ("weight_kg", {"weight_kg": math.nan}),
        ("age_months", {"age_months": -1.0}),
        ("sex", {"sex": "M"}),
    ],
)
def test_invalid_measurements_raise_naming_the_field(field: str, kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"sex": "male", "age_months": 120.0, "height_cm": 140.0, "weight_kg": 35.0}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=field):
        classify_growth(**arguments)  # type: ignore[arg-type]


def test_implausible_height_for_age_is_flagged() -> None:
    result = classify_growth(sex="female", age_months=61.0, height_cm=160.0, weight_kg=40.0)
    assert result.height_for_age_z is not None and result.height_for_age_z > 6
    assert "implausible_height_for_age_z" in result.flags


@pytest.mark.parametrize("z", [-4.5, -3.0, -1.2, 0.0, 0.7, 3.0, 4.2, 6.0])
def test_value_at_z_inverts_the_restricted_z(z: float) -> None:
    lms = who_lms("bmi", "female", 131.4)
    assert lms_z(lms, value_at_z(lms, z, restricted=True), restricted=True) == pytest.approx(z)
    if abs(z) <= 3:
        assert value_at_z(lms, z) == pytest.approx(value_at_z(lms, z, restricted=True))


def test_value_at_z_is_the_lms_inverse() -> None:
    lms = who_lms("bmi", "male", 100.0)
    assert value_at_z(lms, 0.0) == pytest.approx(lms.m)
    assert lms_z(lms, value_at_z(lms, 4.0)) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="domain"):
        value_at_z(lms, 20.0)


def _scanned(table: tuple[Any, ...], sex: str, age_years: float) -> Any:
    """The row of `table` covering `age_years` for `sex`, by a plain scan (the lookup's reference)."""
    found = [row for row in table if row.sex == sex and row.age_from <= age_years < row.age_to]
    assert len(found) <= 1, "the half-year groups of a table overlap"
    return found[0] if found else None


def _ws_t_ages() -> list[float]:
    tables = (growth._overweight_table(), growth._wasting_table(), growth._stunting_table())
    edges = {edge for table in tables for row in table for edge in (row.age_from, row.age_to)}
    return sorted({age for edge in edges for age in (edge, math.nextafter(edge, -math.inf),
                                                     math.nextafter(edge, math.inf), edge + 0.25)} | {0.0, 30.0})


@pytest.mark.parametrize("sex", ["male", "female"])
def test_one_lookup_finds_the_row_of_each_ws_t_table_that_a_scan_finds(sex: Sex) -> None:
    tables = (growth._overweight_table(), growth._wasting_table(), growth._stunting_table())
    for age in _ws_t_ages():
        expected = tuple(_scanned(table, sex, age) for table in tables)
        assert growth._wst_rows(sex, age) == expected, f"{sex} at {age!r} years"
