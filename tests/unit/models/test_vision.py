"""Vision: notation conversions, impairment grades, screening myopia and myopia grades."""

from __future__ import annotations

import csv
import math
from importlib import resources
from typing import Any

import pytest

from models.vision import (
    chart_line,
    classify_vision,
    decimal_to_five_point,
    five_point_to_decimal,
    five_point_to_logmar,
    impairment_grade,
    logmar_to_five_point,
    myopia_grade,
    screening_myopia,
    spherical_equivalent,
    walk_closer_five_point,
)

with (
    resources.files("models.reference").joinpath("visual_acuity_5point_conversion.csv").open(encoding="utf-8") as handle
):
    CONVERSION_ROWS = list(csv.DictReader(handle))


def eyes(**overrides: object) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "age_years": 10.0,
        "ucva_right": 5.0,
        "ucva_left": 5.0,
        "se_right": 0.25,
        "se_left": 0.25,
    }
    arguments.update(overrides)
    return arguments


@pytest.mark.parametrize("row", CONVERSION_ROWS, ids=[row["five_point_L"] for row in CONVERSION_ROWS])
def test_conversion_table_row(row: dict[str, str]) -> None:
    five_point, logmar = float(row["five_point_L"]), float(row["logMAR"])
    assert five_point_to_logmar(five_point) == pytest.approx(logmar, abs=1e-9)
    assert logmar_to_five_point(logmar) == pytest.approx(five_point, abs=1e-9)
    assert five_point_to_decimal(five_point) == pytest.approx(float(row["decimal_exact"]), abs=5e-5)
    # decimal_exact is rounded to 4 places (0.0200 for 0.01995), so compare on the chart line.
    assert chart_line(decimal_to_five_point(float(row["decimal_exact"]))) == five_point
    if row["decimal_chart_label"]:
        # The printed labels are rounded, but each still maps back to its own line.
        assert chart_line(decimal_to_five_point(float(row["decimal_chart_label"]))) == five_point


@pytest.mark.parametrize(("distance", "line"), [(4.0, 3.9), (3.0, 3.8), (2.5, 3.7), (2.0, 3.6), (1.0, 3.3)])
def test_walk_closer_method(distance: float, line: float) -> None:
    assert chart_line(walk_closer_five_point(distance)) == line


def test_conversion_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        decimal_to_five_point(0.0)
    with pytest.raises(ValueError, match="metres"):
        walk_closer_five_point(6.0)


def expected_grade(line: float) -> str:
    # GB/T 11533 lines against the guideline's table: mild 4.9, moderate 4.6-4.8, severe <= 4.5.
    if line >= 5.0:
        return "normal"
    if line == 4.9:
        return "mild"
    if 4.6 <= line <= 4.8:
        return "moderate"
    return "severe"


@pytest.mark.parametrize("row", CONVERSION_ROWS, ids=[row["five_point_L"] for row in CONVERSION_ROWS])
def test_impairment_grade_of_every_chart_line(row: dict[str, str]) -> None:
    line = float(row["five_point_L"])
    assert impairment_grade(line) == expected_grade(line)
    # The same line reached through a decimal conversion lands in the same grade.
    assert impairment_grade(decimal_to_five_point(five_point_to_decimal(line))) == expected_grade(line)


@pytest.mark.parametrize(("value", "grade"), [(4.95, "mild"), (4.85, "moderate"), (4.55, "severe"), (5.05, "normal")])
def test_values_between_lines_belong_to_the_lower_band(value: float, grade: str) -> None:
    assert impairment_grade(value) == grade


def test_student_grade_is_the_worse_eye() -> None:
    result = classify_vision(**eyes(ucva_right=4.9, ucva_left=4.5))
    assert (result.right_grade, result.left_grade, result.student_grade) == ("mild", "severe", "severe")
    result = classify_vision(**eyes(ucva_right=4.7, ucva_left=5.1))
    assert result.student_grade == "moderate"


@pytest.mark.parametrize(
    ("ucva", "se", "myopic"),
    [
        (4.9, -0.50, True),  # the guideline's "SE <= -0.50 D": the boundary is myopic
        (4.9, -0.49, False),
        (4.9, -0.25, False),
        (4.0, -0.75, True),
        (5.0, -3.00, False),  # acuity 5.0 is not "< 5.0", whatever the SE
        (5.3, -6.00, False),
        (4.9, None, None),
        (5.0, None, False),
    ],
)
def test_screening_myopia_boundary(ucva: float, se: float | None, myopic: bool | None) -> None:
    assert screening_myopia(ucva, se) is myopic


def test_student_screening_myopia_combines_the_eyes() -> None:
    assert classify_vision(**eyes(ucva_right=4.8, se_right=-1.0)).screening_myopia is True
    assert classify_vision(**eyes()).screening_myopia is False
    unknown = classify_vision(**eyes(ucva_left=4.8, se_left=None))
    assert unknown.screening_myopia is None
    assert unknown.screening_myopia_left is None
    positive_despite_unknown = classify_vision(**eyes(ucva_right=4.8, se_right=-1.0, ucva_left=4.8, se_left=None))
    assert positive_despite_unknown.screening_myopia is True


def test_missing_se_still_grades_impairment_and_says_why() -> None:
    result = classify_vision(**eyes(ucva_right=4.6, se_right=None))
    assert result.right_grade == "moderate"
    assert result.student_grade == "moderate"
    assert result.screening_myopia is None
    assert result.myopia_grade_right is None
    assert any("right eye" in reason and "screening myopia is unknown" in reason for reason in result.reasons)


@pytest.mark.parametrize(
    ("se", "grade"),
    [
        (0.0, "none"),
        (-0.25, "none"),
        (-0.5, "low"),
        (-2.75, "low"),
        (-3.0, "moderate"),
        (-5.75, "moderate"),
        (-6.0, "high"),
        (-12.0, "high"),
    ],
)
def test_myopia_grade_boundaries(se: float, grade: str) -> None:
    assert myopia_grade(se) == grade


def test_student_myopia_grade_is_the_worse_eye_when_it_is_known() -> None:
    assert classify_vision(**eyes(se_right=-1.0, se_left=-3.5)).myopia_grade == "moderate"
    assert classify_vision(**eyes(se_right=-1.0, se_left=None)).myopia_grade is None
    assert classify_vision(**eyes(se_right=-7.0, se_left=None)).myopia_grade == "high"


def test_spherical_equivalent() -> None:
    assert spherical_equivalent(-1.25, -0.5) == -1.5


def test_under_six_is_not_applicable_with_a_reason() -> None:
    result = classify_vision(**eyes(age_years=5.5, ucva_right=4.7, se_right=-1.0))
    assert result.student_grade == "not_applicable"
    assert result.screening_myopia is None
    assert result.myopia_grade_right == "low"
    assert any("from 6 years" in reason for reason in result.reasons)
    assert classify_vision(**eyes(age_years=6.0, ucva_right=4.7)).student_grade == "moderate"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ucva_right", 5.4),
        ("ucva_left", 2.9),
        ("ucva_left", math.nan),
        ("se_right", -30.25),
        ("se_left", 20.5),
        ("age_years", -1.0),
    ],
)
def test_range_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        classify_vision(**eyes(**{field: value}))


def test_range_ends_are_accepted() -> None:
    result = classify_vision(**eyes(ucva_right=3.0, ucva_left=5.3, se_right=-30.0, se_left=20.0))
    assert result.right_grade == "severe"
    assert result.wears_glasses is False
