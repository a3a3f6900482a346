"""The synthetic province uses the standards' own code and tables (`models.growth`): its WHO LMS
values come from `who_lms`, its WS/T 586 cut-offs from the shipped table as `growth` reads it, and
its vectorised LMS formulas give what `growth`'s scalar ones give."""

from __future__ import annotations

import numpy as np
import pytest

from models.growth import lms_z, value_at_z, who_lms, wst586_overweight_cutoffs
from models.synthetic import _lms_table, _overweight_cutoffs, _value_at_z, _z_of_value
from models.types import SEXES


def test_the_overweight_cutoffs_are_the_standards_table() -> None:
    table = _overweight_cutoffs()
    cutoffs = wst586_overweight_cutoffs()
    assert len(cutoffs) == 2 * 25
    for sex, age_from, bmi in cutoffs:
        assert table[SEXES.index(sex), round(age_from * 2) - 12] == bmi


@pytest.mark.parametrize("indicator", ["bmi", "height"])
def test_the_vectorised_lms_formulas_give_what_growth_gives(indicator: str) -> None:
    rng = np.random.default_rng(7)
    ages = rng.uniform(60, 228, 400)
    female = rng.random(400) < 0.5
    z = rng.uniform(-5, 5, 400)
    l_, m, s = _lms_table(indicator).at(female, ages)
    values = _value_at_z(l_, m, s, z)
    back = _z_of_value(l_, m, s, values)
    for i in range(400):
        lms = who_lms(indicator, "female" if female[i] else "male", float(ages[i]))  # type: ignore[arg-type]
        assert (l_[i], m[i], s[i]) == pytest.approx((lms.l, lms.m, lms.s), rel=1e-12)
        assert values[i] == pytest.approx(value_at_z(lms, float(z[i]), restricted=True), rel=1e-12)
        # `_z_of_value` restricts the upper tail only; growth's lms_z restricts both. They agree
        # from -3 up. The generator applies it only to WS/T 586 overweight cut-offs, which lie
        # above the WHO median, so the lower tail never reaches the generated data.
        if z[i] >= -3:
            assert back[i] == pytest.approx(lms_z(lms, float(values[i]), restricted=True), rel=1e-9, abs=1e-9)
