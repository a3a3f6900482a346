"""`models.growth` for whole cohorts at once: its WHO 2007 LMS values and formulas and its WS/T 586
overweight cut-offs over numpy arrays, for code that works on thousands of pupils at a time (the
synthetic province).

Each function is the array form of the `models.growth` function it names, from the same tables, and
tests/unit/models/test_growth_arrays.py holds each equal to its scalar form; no other module computes
LMS values. It is a module of its own because of numpy: the services that classify one event at a
time (API, alert service, importer) import `models.growth` and do not load numpy.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt

# The tables and checks as `models.growth` reads and applies them (one reader for each).
from models.growth import (
    WFA_AGE_LIMIT_MONTHS,
    WHO_AGE_LIMIT_MONTHS,
    WHO_MIN_AGE_MONTHS,
    WST586_AGE_RANGE_YEARS,
    Indicator,
    OutOfRange,
    _check_who_age,
    _find_row,
    _overweight_table,
    _who_rows,
    _years_range,
)
from models.types import SEXES

__all__ = ["WST586_MONTHS", "lms_zs", "values_at_z", "who_lms_arrays", "wst586_overweight_bmis"]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


@cache
def _who_array(indicator: Indicator) -> Floats:
    """`_who_rows` of both sexes as one array: [0 male / 1 female, month 0..limit, (L, M, S)]."""
    return np.array([_who_rows(indicator, sex) for sex in SEXES], dtype=np.float64)


def who_lms_arrays(indicator: Indicator, female: Bools, age_months: Floats) -> tuple[Floats, Floats, Floats]:
    """`who_lms` for many pupils: L, M and S, each an array, interpolated exactly as `who_lms` does.

    Raises `OutOfRange` if any age lies outside WHO's range; callers clip first if they mean to.
    """
    limit = WFA_AGE_LIMIT_MONTHS if indicator == "weight" else WHO_AGE_LIMIT_MONTHS
    outside = ~(np.isfinite(age_months) & (age_months >= WHO_MIN_AGE_MONTHS) & (age_months < limit))
    if outside.any():
        _check_who_age(float(age_months[outside][0]), indicator)
    table = _who_array(indicator)
    sex = female.astype(np.int64)
    low_age = np.floor(age_months).astype(np.int64)
    fraction = (age_months - low_age)[:, np.newaxis]
    low = table[sex, low_age]
    # A whole month gives its row unchanged (`low + 0 * ...` is `low`), as in `_interpolated_lms`.
    lms = low + fraction * (table[sex, low_age + 1] - low)
    return lms[:, 0], lms[:, 1], lms[:, 2]


def _sd_curves(l: Floats, m: Floats, s: Floats, z: Floats) -> Floats:  # noqa: E741
    """`_sd_curve` over arrays; raises `ValueError` where the curve has no value at `z`."""
    power = l != 0
    safe_l = np.where(power, l, 1.0)
    base = 1 + safe_l * s * z
    if (power & (base <= 0)).any():
        raise ValueError(f"z {float(z[power & (base <= 0)][0])} is outside the domain of this LMS curve")
    result: Floats = np.where(power, m * np.power(np.where(power, base, 1.0), 1 / safe_l), m * np.exp(s * z))
    return result


def lms_zs(l: Floats, m: Floats, s: Floats, value: Floats, *, restricted: bool = False) -> Floats:  # noqa: E741
    """`lms_z` for many values at once (unrounded), with the same restricted adjustment."""
    if not (np.isfinite(value) & (value > 0)).all():
        bad = value[~(np.isfinite(value) & (value > 0))][0]
        raise ValueError(f"measurement must be a positive number, got {float(bad)!r}")
    power = l != 0
    safe_l = np.where(power, l, 1.0)
    ratio = value / m
    z: Floats = np.where(power, (np.power(ratio, safe_l) - 1) / (safe_l * s), np.log(ratio) / s)
    if not restricted or not (np.abs(z) > 3).any():
        return z
    sd3, sd2 = _sd_curves(l, m, s, np.full_like(z, 3.0)), _sd_curves(l, m, s, np.full_like(z, 2.0))
    sd3neg, sd2neg = _sd_curves(l, m, s, np.full_like(z, -3.0)), _sd_curves(l, m, s, np.full_like(z, -2.0))
    result: Floats = np.where(
        z > 3, 3 + (value - sd3) / (sd3 - sd2), np.where(z < -3, -3 + (value - sd3neg) / (sd2neg - sd3neg), z)
    )
    return result


def values_at_z(l: Floats, m: Floats, s: Floats, z: Floats, *, restricted: bool = False) -> Floats:  # noqa: E741
    """`value_at_z` for many z at once: the measurements whose z-scores are `z`."""
    if not np.isfinite(z).all():
        raise ValueError(f"z must be finite, got {float(z[~np.isfinite(z)][0])!r}")
    if not restricted or not (np.abs(z) > 3).any():
        return _sd_curves(l, m, s, z)
    sd3, sd2 = _sd_curves(l, m, s, np.full_like(z, 3.0)), _sd_curves(l, m, s, np.full_like(z, 2.0))
    sd3neg, sd2neg = _sd_curves(l, m, s, np.full_like(z, -3.0)), _sd_curves(l, m, s, np.full_like(z, -2.0))
    inner = _sd_curves(l, m, s, np.clip(z, -3.0, 3.0))
    result: Floats = np.where(
        z > 3, sd3 + (z - 3) * (sd3 - sd2), np.where(z < -3, sd3neg + (z + 3) * (sd2neg - sd3neg), inner)
    )
    if (result <= 0).any():
        raise ValueError(f"z {float(z[result <= 0][0])} lies below zero on the restricted scale")
    return result


#: Completed months at which the WS/T 586 table starts and ends (6.0 ..< 19.0 years).
WST586_MONTHS: Final = (round(WST586_AGE_RANGE_YEARS[0] * 12), round(WST586_AGE_RANGE_YEARS[1] * 12))


@cache
def _overweight_array() -> Floats:
    """WS/T 586 overweight BMI (at or above) by [0 male / 1 female, half-year group from 6.0 years],
    each cell the row `_find_row` picks for that group's first month."""
    groups = range((WST586_MONTHS[1] - WST586_MONTHS[0]) // 6)
    table = np.full((len(SEXES), len(groups)), np.nan)
    for sex_index, sex in enumerate(SEXES):
        for group in groups:
            row = _find_row(_overweight_table(), sex, (WST586_MONTHS[0] + 6 * group) / 12)
            if row is None:
                raise AssertionError(f"the WS/T 586 table has no row for {sex} at half-year group {group}")
            table[sex_index, group] = row.overweight / 10
    return table


def wst586_overweight_bmis(female: Bools, calendar_months: Ints) -> Floats:
    """The WS/T 586 overweight cut-off (BMI at or above) of each pupil, by completed months of age,
    from the table `classify_growth` uses. Raises `OutOfRange` for an age outside 6 ..< 19 years."""
    outside = (calendar_months < WST586_MONTHS[0]) | (calendar_months >= WST586_MONTHS[1])
    if outside.any():
        raise OutOfRange(f"age {int(calendar_months[outside][0])} completed months is outside WS/T 586-2018 "
                         f"({_years_range(WST586_AGE_RANGE_YEARS)})")
    result: Floats = _overweight_array()[female.astype(np.int64), (calendar_months - WST586_MONTHS[0]) // 6]
    return result
