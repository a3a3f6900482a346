"""Age, the one way the project counts it.

WHO's software (AnthroPlus) takes age in decimal months, days / 30.4375 (`DAYS_PER_MONTH`); the
Chinese standards group children by completed calendar months (实足月龄). Everything that needs an
age in months (the growth standards, the importer, the contracts' plausibility checks, the
synthetic province) takes it from here. Completed years for pages are `models.school_year.age_years`.
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["DAYS_PER_MONTH", "age_in_months", "completed_months", "completed_months_arrays", "months_between"]

#: WHO AnthroPlus: a month is 365.25 / 12 days.
DAYS_PER_MONTH: Final = 30.4375


def months_between(birth_date: date, on: date) -> float:
    """Decimal months from ``birth_date`` to ``on`` (days / 30.4375), negative when ``on`` is earlier.

    For validators that refuse a date before birth with their own message.
    """
    return (on - birth_date).days / DAYS_PER_MONTH


def age_in_months(birth_date: date, measured_on: date) -> float:
    """Decimal age in months as WHO AnthroPlus computes it: days / 30.4375."""
    days = (measured_on - birth_date).days
    if days < 0:
        raise ValueError(f"measured_on {measured_on} is before birth_date {birth_date}")
    return days / DAYS_PER_MONTH


def completed_months(birth_date: date, measured_on: date) -> int:
    """Completed calendar months of age (实足月龄), for the WS/T half-year age groups.

    Decimal months put a child one day short of their sixth birthday group whenever the
    interval holds one leap day; the Chinese standards group by calendar age instead. A
    birthday on the 29th-31st is reached on the last day of a shorter month.
    """
    months = (measured_on.year - birth_date.year) * 12 + measured_on.month - birth_date.month
    month_length = calendar.monthrange(measured_on.year, measured_on.month)[1]
    if measured_on.day < min(birth_date.day, month_length):
        months -= 1
    if months < 0:
        raise ValueError(f"measured_on {measured_on} is before birth_date {birth_date}")
    return months


def completed_months_arrays(birth: npt.NDArray[np.int64], on: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """`completed_months` for many pupils at once: `birth` and `on` are numpy rows of (year, month, day).

    Raises ValueError if any `on` is before its birth date, as `completed_months` does. Only the
    arrays' own operators are used, so this module loads no numpy for the callers of the others.
    """
    by, bm, bd = birth[:, 0], birth[:, 1], birth[:, 2]
    oy, om, od = on[:, 0], on[:, 1], on[:, 2]
    leap = ((oy % 4 == 0) & (oy % 100 != 0)) | (oy % 400 == 0)
    # Days in the month of `on`: 31, but 30 in April, June, September and November, 28 or 29 in February.
    month_length = 31 - ((om == 4) | (om == 6) | (om == 9) | (om == 11)) - (om == 2) * (3 - leap)
    months: npt.NDArray[np.int64] = (oy - by) * 12 + om - bm - (od < bd.clip(None, month_length))
    before = months < 0
    if before.any():
        first = int(before.argmax())
        raise ValueError(f"measured_on {tuple(on[first].tolist())} is before birth_date {tuple(birth[first].tolist())}")
    return months
