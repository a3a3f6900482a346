"""`models.growth_arrays`, the array forms of `models.growth`: exactly what the scalar forms give,
and refusing what they refuse.

They are the only LMS code besides the scalar one: the synthetic province draws its heights and BMIs
through them (its output did not change when its own copies were replaced by these)."""

from __future__ import annotations

import csv
from importlib import resources
from typing import Any

import numpy as np
import pytest

from models.growth import (
    WFA_MAX_AGE_MONTHS,
    WHO_MAX_AGE_MONTHS,
    WHO_MIN_AGE_MONTHS,
    Indicator,
    OutOfRange,
    lms_z,
    value_at_z,
    who_lms,
)
from models.growth_arrays import WST586_MONTHS, lms_zs, values_at_z, who_lms_arrays, wst586_overweight_bmis
from models.types import Sex

INDICATORS: list[Indicator] = ["bmi", "height", "weight"]


def _ages(indicator: Indicator, rng: np.random.Generator, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    last = WFA_MAX_AGE_MONTHS if indicator == "weight" else WHO_MAX_AGE_MONTHS
    # Whole months, the last month's padding (228.x / 120.x) and ages anywhere between.
    whole = np.arange(WHO_MIN_AGE_MONTHS, last + 1, dtype=np.float64)
    return np.concatenate([whole, [last + 0.5, last + 0.999], rng.uniform(WHO_MIN_AGE_MONTHS, last + 1, n)])


def _sex(female: bool) -> Sex:
    return "female" if female else "male"


@pytest.mark.parametrize("indicator", INDICATORS)
def test_who_lms_arrays_are_who_lms_to_the_last_bit(indicator: Indicator) -> None:
    rng = np.random.default_rng(11)
    ages = _ages(indicator, rng, 500)
    female = rng.random(len(ages)) < 0.5
    l_, m, s = who_lms_arrays(indicator, female, ages)
    for i, age in enumerate(ages):
        lms = who_lms(indicator, _sex(bool(female[i])), float(age))
        assert (l_[i], m[i], s[i]) == (lms.l, lms.m, lms.s), (indicator, age)


@pytest.mark.parametrize("indicator", INDICATORS)
@pytest.mark.parametrize("restricted", [True, False])
def test_values_at_z_and_lms_zs_are_the_scalar_formulas(indicator: Indicator, restricted: bool) -> None:
    rng = np.random.default_rng(5)
    ages = _ages(indicator, rng, 400)
    female = rng.random(len(ages)) < 0.5
    # Both restricted tails, the +-3 and +-2 SD curves themselves, and the middle.
    z = np.concatenate([rng.uniform(-4.5, 4.5, len(ages) - 6), [-3.0, -2.0, 0.0, 2.0, 3.0, 4.5]])
    lms_arrays = who_lms_arrays(indicator, female, ages)
    values = values_at_z(*lms_arrays, z, restricted=restricted)
    back = lms_zs(*lms_arrays, values, restricted=restricted)
    for i, age in enumerate(ages):
        lms = who_lms(indicator, _sex(bool(female[i])), float(age))
        value = value_at_z(lms, float(z[i]), restricted=restricted)
        assert values[i] == pytest.approx(value, rel=1e-13), (indicator, age, z[i])
        assert back[i] == pytest.approx(lms_z(lms, value, restricted=restricted), rel=1e-12, abs=1e-12)
        assert back[i] == pytest.approx(z[i], abs=1e-9)


def test_the_array_forms_refuse_what_the_scalar_forms_refuse() -> None:
    female = np.array([False, True])
    with pytest.raises(OutOfRange, match=r"59\.90 months"):
        who_lms_arrays("bmi", female, np.array([100.0, 59.9]))
    with pytest.raises(OutOfRange, match="weight-for-age"):
        who_lms_arrays("weight", female, np.array([121.0, 100.0]))
    with pytest.raises(OutOfRange):
        who_lms_arrays("height", female, np.array([np.nan, 100.0]))
    lms = who_lms_arrays("bmi", female, np.array([100.0, 100.0]))
    with pytest.raises(ValueError, match=r"positive number, got 0\.0"):
        lms_zs(*lms, np.array([16.0, 0.0]))
    with pytest.raises(ValueError, match="positive number, got inf"):
        lms_zs(*lms, np.array([np.inf, 16.0]), restricted=True)
    with pytest.raises(ValueError, match="finite"):
        values_at_z(*lms, np.array([0.0, np.nan]))
    # Far below the curve's domain the unrestricted inverse has no value, as `value_at_z` says.
    with pytest.raises(ValueError, match="outside the domain"):
        values_at_z(*lms, np.array([0.0, 40.0]))
    with pytest.raises(ValueError, match="outside the domain"):
        value_at_z(who_lms("bmi", "female", 100.0), 40.0)


def test_wst586_overweight_bmis_are_the_published_table_in_every_month() -> None:
    with resources.files("models.reference").joinpath("ws_t_586_2018_bmi_overweight_obesity.csv").open(
            encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected: dict[tuple[bool, int], float] = {}
    for row in rows:
        start = round(float(row["age_from_years"]) * 12)
        end = round(float(row["age_to_years_exclusive"] or 19) * 12)
        for month in range(start, end):
            expected[row["sex"] == "female", month] = float(row["overweight_bmi_ge"])
    keys = sorted(expected)
    assert len(keys) == 2 * (WST586_MONTHS[1] - WST586_MONTHS[0])
    found = wst586_overweight_bmis(np.array([k[0] for k in keys]), np.array([k[1] for k in keys], dtype=np.int64))
    assert found.tolist() == [expected[k] for k in keys]
    for outside in (WST586_MONTHS[0] - 1, WST586_MONTHS[1]):
        with pytest.raises(OutOfRange, match="WS/T 586"):
            wst586_overweight_bmis(np.array([True]), np.array([outside], dtype=np.int64))
