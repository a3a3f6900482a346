"""Age in months has one home (`models.ages`): the importer, the contracts, the growth standards,
the classify command and the synthetic province all count it the same way."""

from __future__ import annotations

import io
import tokenize
from datetime import date, timedelta

import numpy as np
import pytest

from models.ages import DAYS_PER_MONTH, age_in_months, completed_months, completed_months_arrays, months_between
from tests.paths import ROOT

MODELS = ROOT / "models"


def test_months_between_is_signed_and_age_in_months_refuses_a_date_before_birth() -> None:
    assert months_between(date(2015, 1, 1), date(2016, 1, 1)) == 365 / DAYS_PER_MONTH
    assert months_between(date(2016, 1, 2), date(2016, 1, 1)) == -1 / DAYS_PER_MONTH
    assert age_in_months(date(2015, 1, 1), date(2016, 1, 1)) == months_between(date(2015, 1, 1), date(2016, 1, 1))
    with pytest.raises(ValueError, match="before birth_date"):
        age_in_months(date(2016, 1, 2), date(2016, 1, 1))
    assert completed_months(date(2015, 1, 31), date(2015, 2, 28)) == 1


def test_no_module_of_models_writes_its_own_days_per_month() -> None:
    """The number 30.4375 appears in code only in models/ages.py (comments may name it)."""
    found = []
    for path in sorted(MODELS.rglob("*.py")):
        if path.name == "ages.py":
            continue
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        found += [f"{path.name}:{token.start[0]}" for token in tokens
                  if token.type == tokenize.NUMBER and float(token.string) == DAYS_PER_MONTH]
    assert found == []


def test_completed_months_arrays_count_as_completed_months_does() -> None:
    """Every birthday on the 28th-31st and 29 February, measured on every day of four years
    (leap and century rules included: 2000 is a leap year, 2100 is not), and random pairs."""
    births = [date(2012, 2, 29), date(2013, 1, 31), date(2013, 3, 30), date(2013, 1, 28), date(2013, 5, 1),
              date(2092, 2, 29)]
    pairs = [(birth, birth + timedelta(days=day)) for birth in births for day in range(0, 4 * 366)]
    pairs += [(date(1999, 1, 31), date(2000, 2, 29)), (date(2096, 2, 29), date(2100, 2, 28)),
              (date(2096, 2, 29), date(2100, 3, 1))]
    rng = np.random.default_rng(3)
    for start, length in zip(rng.integers(730000, 740000, 3000).tolist(), rng.integers(0, 7000, 3000).tolist(),
                             strict=True):
        pairs.append((date.fromordinal(start), date.fromordinal(start + length)))
    birth = np.array([(b.year, b.month, b.day) for b, _ in pairs], dtype=np.int64)
    on = np.array([(o.year, o.month, o.day) for _, o in pairs], dtype=np.int64)
    assert completed_months_arrays(birth, on).tolist() == [completed_months(b, o) for b, o in pairs]


def test_completed_months_arrays_refuse_a_date_before_birth() -> None:
    birth = np.array([[2015, 1, 1], [2015, 3, 10]], dtype=np.int64)
    with pytest.raises(ValueError, match=r"\(2015, 3, 9\) is before birth_date \(2015, 3, 10\)"):
        completed_months_arrays(birth, np.array([[2016, 1, 1], [2015, 3, 9]], dtype=np.int64))
