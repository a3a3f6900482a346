"""The synthetic province's grade structure and classes look like compulsory education in China."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest

from models.synthetic import ProvinceSpec, generate


@pytest.fixture(scope="module")
def first_year_roster() -> list[dict[str, str]]:
    spec = ProvinceSpec(students=4000, seed=20251, counties=3)
    first = spec.school_years[0]
    rows = [dict(row.row) for row in generate(spec) if row.kind == "roster"]
    return [r for r in rows if r["enrolled_on"].startswith(str(first))]


def test_about_two_thirds_primary_one_third_junior(first_year_roster: list[dict[str, str]]) -> None:
    junior = sum(1 for r in first_year_roster if int(r["grade"]) >= 7) / len(first_year_roster)
    assert 0.28 <= junior <= 0.40
    per_grade = Counter(int(r["grade"]) for r in first_year_roster)
    assert min(per_grade[g] for g in (7, 8, 9)) >= 250  # junior figures rest on real numbers


def test_classes_have_realistic_sizes_and_every_pupil_a_guardian(first_year_roster: list[dict[str, str]]) -> None:
    sizes = Counter((r["school_id"], r["grade"], r["class_name"]) for r in first_year_roster)
    assert max(sizes.values()) <= 50  # the standard class size (45 primary, 50 junior)
    big_schools = [n for (school, grade, _), n in sizes.items()
                   if sum(m for (s, g, _), m in sizes.items() if (s, g) == (school, grade)) >= 90]
    assert 35 <= statistics.median(big_schools) <= 50  # several classes per grade fill to near the standard
    assert all(r["guardian_name"] and r["class_name"] for r in first_year_roster)
