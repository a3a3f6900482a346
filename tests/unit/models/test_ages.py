"""Age in months has one home (`models.ages`): the importer, the contracts, the growth standards,
the classify command and the synthetic province all count it the same way."""

from __future__ import annotations

import io
import tokenize
from datetime import date

import pytest

from models.ages import DAYS_PER_MONTH, age_in_months, completed_months, months_between
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
