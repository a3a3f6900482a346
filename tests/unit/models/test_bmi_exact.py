"""BMI rounded half-up to 0.1 exactly, and every WS/T 586 / 456 cut-off decided on exact halves.

The oracle is `fractions.Fraction` arithmetic on the decimals as written, independent of the
integer arithmetic in `models.growth.bmi_tenths`.
"""

from __future__ import annotations

import csv
import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from importlib import resources
from typing import Any

import pytest

from models.growth import (
    bmi_rounded,
    bmi_tenths,
    classify_growth,
    exact_bmi,
    recorded_tenths,
    who_lms,
)

# The range the bmi-screening contract accepts: 50.0..230.0 cm and 10.0..250.0 kg.
HEIGHTS_TENTHS = range(500, 2301)
WEIGHT_TENTHS = (100, 2500)


def _rows(name: str) -> list[dict[str, str]]:
    with resources.files("models.reference").joinpath(name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def oracle_tenths(height_text: str, weight_text: str) -> int:
    """BMI * 10 rounded half-up, by Fraction arithmetic on the decimal strings."""
    bmi = Fraction(weight_text) / (Fraction(height_text) / 100) ** 2
    return math.floor(bmi * 10 + Fraction(1, 2))


def pairs_landing_on_a_half() -> list[tuple[int, int]]:
    """Every (height, weight) in tenths on the grid whose exact BMI ends in a 5 at the second decimal.

    BMI * 10 = w * 10^6 / h^2 is a half exactly when 2 * w * 10^6 / h^2 is an odd integer, so w
    must be a multiple of h^2 / gcd(h^2, 2 * 10^6): that enumerates them without a 4-million-pair scan.
    """
    found = []
    for height in HEIGHTS_TENTHS:
        square = height * height
        step = square // math.gcd(square, 2_000_000)
        first = -(-WEIGHT_TENTHS[0] // step) * step
        for weight in range(first, WEIGHT_TENTHS[1] + 1, step):
            if (2_000_000 * weight // square) % 2 == 1:
                found.append((height, weight))
    return found


HALVES = pairs_landing_on_a_half()


def as_text(tenths: int) -> str:
    return f"{tenths // 10}.{tenths % 10}"


def test_the_issue_example_rounds_up() -> None:
    # 60.8 kg at 160.0 cm is exactly 23.75; binary floating point says 23.749999999999993.
    assert 60.8 / 1.6**2 < 23.75
    assert bmi_tenths(160.0, 60.8) == 238
    assert bmi_rounded(160.0, 60.8) == Decimal("23.8")
    assert exact_bmi(160.0, 60.8) == Fraction(2375, 100)
    # A girl of 17.0 years: WS/T 586 overweight from 23.8.
    result = classify_growth(sex="female", age_months=17 * 12 + 1, height_cm=160.0, weight_kg=60.8)
    assert result.bmi_display == 23.8
    assert result.wst586 == "overweight"


def test_the_grid_has_many_halves_and_floats_get_a_fifth_of_them_wrong() -> None:
    # Not a property of the code under test: evidence that the test set exercises the bug.
    assert len(HALVES) > 900
    float_wrong = sum(
        1 for height, weight in HALVES
        if Decimal(repr((weight / 10) / (height / 1000) ** 2)).quantize(Decimal("0.1"), ROUND_HALF_UP) * 10
        != oracle_tenths(as_text(height), as_text(weight))
    )
    assert float_wrong > len(HALVES) // 5


def test_every_grid_pair_landing_on_a_half_rounds_up() -> None:
    for height, weight in HALVES:
        height_cm, weight_kg = height / 10, weight / 10
        expected = oracle_tenths(as_text(height), as_text(weight))
        assert exact_bmi(height_cm, weight_kg) * 10 + Fraction(1, 2) == expected, (height_cm, weight_kg)
        assert bmi_tenths(height_cm, weight_kg) == expected, (height_cm, weight_kg)


def test_bmi_tenths_agrees_with_the_oracle_across_the_grid() -> None:
    for height in range(500, 2301, 13):
        for weight in range(100, 2501, 7):
            assert bmi_tenths(height / 10, weight / 10) == oracle_tenths(as_text(height), as_text(weight))


@pytest.mark.parametrize(
    ("height", "weight", "text"),
    [
        ("100", "16.35", "16.4"),   # off the 0.1 grid: the exact path
        ("100", "16.349", "16.3"),
        ("160.05", "60.8", "23.7"),
        ("150", "45.1125", "20.1"),  # exactly 20.05
        ("150", "45.11249", "20.0"),
    ],
)
def test_values_off_the_grid_are_rounded_exactly(height: str, weight: str, text: str) -> None:
    assert bmi_rounded(float(height), float(weight)) == Decimal(text)
    assert bmi_tenths(float(height), float(weight)) == oracle_tenths(height, weight)


@pytest.mark.parametrize(("value", "tenths"), [(106.3, 1063), (106.35, 1064), (106.349, 1063), (50.0, 500),
                                               (229.95, 2300), (0.05, 1)])
def test_recorded_tenths_rounds_the_written_decimal_half_up(value: float, tenths: int) -> None:
    assert recorded_tenths(value) == tenths


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_measurements_are_value_errors(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        bmi_tenths(bad, 40.0)
    with pytest.raises(ValueError, match="finite"):
        bmi_tenths(150.0, bad)
    with pytest.raises(ValueError, match="finite"):
        recorded_tenths(bad)


# --- Every WS/T cut-off on both sides, with BMIs that are exact halves -------------------------

def grid_pair_with_bmi(bmi_hundredths: int, near_height: float) -> tuple[float, float]:
    """A (height, weight) on the 0.1 grid whose exact BMI is bmi_hundredths / 100, the height
    as close as possible to `near_height` (so the child's other indicators stay plausible)."""
    best: tuple[float, float] | None = None
    for height in HEIGHTS_TENTHS:
        # w * 10^5 / h^2 = bmi_hundredths / 100  <=>  w = bmi_hundredths * h^2 / 10^7
        numerator = bmi_hundredths * height * height
        if numerator % 10_000_000:
            continue
        weight = numerator // 10_000_000
        if WEIGHT_TENTHS[0] <= weight <= WEIGHT_TENTHS[1] and (
            best is None or abs(height / 10 - near_height) < abs(best[0] - near_height)
        ):
            best = (height / 10, weight / 10)
    assert best is not None, bmi_hundredths
    assert exact_bmi(*best) == Fraction(bmi_hundredths, 100)
    return best


def hundredths(text: str) -> int:
    return int(Decimal(text) * 100)


def classify_at(row: dict[str, str], age_key: str, bmi_hundredths: int) -> Any:
    sex: Any = row["sex"]
    age = (float(row[age_key]) + 0.25) * 12
    height, weight = grid_pair_with_bmi(bmi_hundredths, who_lms("height", sex, age).m)
    return classify_growth(sex=sex, age_months=age, height_cm=height, weight_kg=weight)


OVERWEIGHT = _rows("ws_t_586_2018_bmi_overweight_obesity.csv")
WASTING = _rows("ws_t_456_2014_bmi_wasting.csv")


@pytest.mark.parametrize("row", OVERWEIGHT, ids=[f"{r['sex']}-{r['age_from_years']}" for r in OVERWEIGHT])
def test_wst586_cut_offs_on_exact_halves(row: dict[str, str]) -> None:
    # ">= T" on BMI rounded to 0.1: exactly T - 0.05 is in, exactly T - 0.15 (rounds to T - 0.1) is out.
    for column, inside, below in (("overweight_bmi_ge", "overweight", "normal"),
                                  ("obesity_bmi_ge", "obesity", "overweight")):
        cut = hundredths(row[column])
        assert classify_at(row, "age_from_years", cut - 5).wst586 == inside, column
        assert classify_at(row, "age_from_years", cut - 15).wst586 == below, column


@pytest.mark.parametrize("row", WASTING, ids=[f"{r['sex']}-{r['age_from_years']}" for r in WASTING])
def test_wst456_wasting_cut_offs_on_exact_halves(row: dict[str, str]) -> None:
    # "<= T": exactly T + 0.05 rounds to T + 0.1 and is out; exactly T - 0.05 rounds to T and is in.
    for column, inside, above in (("moderate_severe_wasting_bmi_le", "moderate_severe", "mild"),
                                  ("mild_wasting_bmi_le", "mild", "normal")):
        cut = hundredths(row[column])
        assert classify_at(row, "age_from_years", cut - 5).wst456_wasting == inside, column
        assert classify_at(row, "age_from_years", cut + 5).wst456_wasting == above, column


STUNTING = [r for r in _rows("ws_t_456_2014_stunting_height_UNVERIFIED.csv") if float(r["age_label_as_found"]) < 17.5]


@pytest.mark.parametrize("row", STUNTING, ids=[f"{r['sex']}-{r['age_label_as_found']}" for r in STUNTING])
def test_wst456_stunting_cut_offs_on_exact_halves(row: dict[str, str]) -> None:
    # Height "<= T" at one decimal: T + 0.05 rounds up and is out, T + 0.049 and T - 0.05 are in.
    sex: Any = row["sex"]
    age = (float(row["age_label_as_found"]) + 0.25) * 12
    cut = Decimal(row["stunting_height_cm_le"])

    def stunting(height: Decimal) -> str:
        return classify_growth(sex=sex, age_months=age, height_cm=float(height), weight_kg=30.0).wst456_stunting

    assert stunting(cut + Decimal("0.05")) == "normal"
    assert stunting(cut + Decimal("0.049")) == "stunting"
    assert stunting(cut - Decimal("0.05")) == "stunting"
    assert stunting(cut + Decimal("0.1")) == "normal"
