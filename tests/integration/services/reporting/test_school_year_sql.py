"""The school year of a date has one rule, kept twice: `models.school_year.school_year` in Python and
`metrics.school_year(day)` in the database (migration 0020). They must agree on every day."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest

from models.school_year import school_year, school_year_bounds
from services.platform.settings import Settings

pytestmark = pytest.mark.integration


def test_the_database_and_python_name_the_same_school_year_for_every_day(isolated: Settings) -> None:
    first = date(2019, 1, 1)
    days = [first + timedelta(days=offset) for offset in range(366 * 8)]  # 2019 .. 2026, leap years included
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        rows = conn.execute("SELECT day, metrics.school_year(day) FROM unnest(%s::date[]) AS day", (days,)).fetchall()
    assert len(rows) == len(days)
    disagree = [(day, in_sql) for day, in_sql in rows if in_sql != school_year(day)]
    assert disagree == []
    # The boundaries themselves, named by the same rule.
    for year in range(2019, 2026):
        start, end = school_year_bounds(year)
        assert school_year(start) == school_year(end) == year
        assert school_year(start - timedelta(days=1)) == year - 1
