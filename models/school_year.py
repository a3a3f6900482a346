"""School years, current grades and ages: what a person reading a page means by "now".

A Chinese school year starts on 1 September. This is the one home of that rule in Python; the
database has it once too, as `metrics.school_year(day)` (migration 0020), and an integration test
checks that the two agree. A roster or health record states a pupil's grade on
a date; a year later the pupil is one grade higher. Pages show the grade of the school year a
person reads them in, never the grade at registration.
"""

from __future__ import annotations

from datetime import date

__all__ = ["age_years", "current_grade", "school_year", "school_year_bounds"]

#: Month in which the school year starts (1 September).
FIRST_MONTH = 9


def school_year(on: date) -> int:
    """The calendar year in which the school year containing ``on`` began (2025 for 2026-03-01)."""
    return on.year if on.month >= FIRST_MONTH else on.year - 1


def school_year_bounds(year: int) -> tuple[date, date]:
    """First and last day of school year `year` ("2025" is 2025-09-01 .. 2026-08-31)."""
    return date(year, FIRST_MONTH, 1), date(year + 1, FIRST_MONTH - 1, 31)


def current_grade(grade: int, stated_on: date | None, today: date) -> int | None:
    """The grade in ``today``'s school year of a pupil who was in ``grade`` on ``stated_on``.

    None when it would be past grade 9 (the pupil has left compulsory education) or below 1.
    Without ``stated_on`` the stated grade is returned as it is.
    """
    if stated_on is None:
        return grade
    now = grade + school_year(today) - school_year(stated_on)
    return now if 1 <= now <= 9 else None


def age_years(birth_date: date, today: date) -> int:
    """Completed years of age on ``today``."""
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - before_birthday
