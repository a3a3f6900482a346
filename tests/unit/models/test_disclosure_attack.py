"""The attacker: from every published cell of a year's indicator, try to recover each withheld cell
by differences along every breakdown (categories within an area, schools within a county, counties
within the province) and by linear algebra over all of them together. No published count from 1 to
9 either: students counted, those with the outcome, those without it."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from models.metrics import METRICS, FineCell, indicator_table

Key = tuple[str, str, str, str]


def _province(seed: int) -> list[FineCell]:
    rng = random.Random(seed)
    cells = []
    for school in range(8):
        for sex in ("male", "female"):
            for grade in range(1, 10):
                n = rng.choice([0, 3, 8, 15, 25, 40])
                # A rare outcome (depression-positive): numerators of 0 to a few.
                k = min(n, rng.choice([0, 0, 1, 2, 4, 12]))
                cells.append(FineCell(school_id=f"s{school}", county_id=f"c{school % 3}", urban_rural="urban",
                                      sex=sex, grade=grade, left_behind=rng.random() < 0.2,
                                      disability=rng.random() < 0.05, denominator=n, numerator=k))
    return cells


@pytest.mark.parametrize("seed", range(6))
def test_no_small_count_is_published_and_no_withheld_cell_is_recoverable(seed: int) -> None:
    rows = indicator_table(METRICS[1], 2025, _province(seed))
    published: dict[Key, tuple[int, int]] = {}
    withheld: set[Key] = set()
    for row in rows:
        key = (row.level, row.area_id, row.breakdown, row.category)
        if row.suppressed is None:
            assert row.denominator is not None and row.numerator is not None
            published[key] = (row.denominator, row.numerator)
        else:
            assert row.denominator is None and row.numerator is None and row.rate is None
            withheld.add(key)
    assert withheld, "the synthetic province must have small cells"
    for n, k in published.values():
        assert not 0 < n < 10 and not 0 < k < 10 and not 0 < n - k < 10, (n, k)

    # The attacker's relations, rebuilt from the keys alone.
    every = set(published) | withheld
    relations: list[tuple[Key, list[Key]]] = []
    by_area: dict[tuple[str, str], dict[str, list[Key]]] = defaultdict(lambda: defaultdict(list))
    for key in every:
        if key[2] != "all":
            by_area[(key[0], key[1])][key[2]].append(key)
    for (level, area), breakdowns in by_area.items():
        for parts in breakdowns.values():
            relations.append(((level, area, "all", "all"), parts))
    schools_of: dict[str, set[str]] = defaultdict(set)
    for cell in _province(seed):
        schools_of[cell.county_id].add(cell.school_id)
    for (level, area, breakdown, category) in every:
        if level == "county":
            parts = [("school", s, breakdown, category) for s in schools_of[area]
                     if ("school", s, breakdown, category) in every]
            relations.append(((level, area, breakdown, category), parts))
        if level == "province":
            parts = [("county", c, breakdown, category) for c in schools_of
                     if ("county", c, breakdown, category) in every]
            relations.append(((level, area, breakdown, category), parts))

    # Differences: a relation with exactly one withheld member gives it away.
    for total, parts in relations:
        hidden = [m for m in (total, *parts) if m in withheld]
        assert len(hidden) != 1, f"{hidden[0]} = difference along {total}"

    # All relations together: a withheld cell is exposed if it is fixed by the linear system.
    unknown = sorted(withheld)
    index = {key: i for i, key in enumerate(unknown)}
    matrix = []
    for total, parts in relations:
        coefficients = np.zeros(len(unknown))
        if total in index:
            coefficients[index[total]] += 1
        for part in parts:
            if part in index:
                coefficients[index[part]] -= 1
        if coefficients.any():
            matrix.append(coefficients)
    if matrix:
        a = np.array(matrix)
        _, singular, vt = np.linalg.svd(a)
        rank = int(np.sum(singular > 1e-9))
        null_space = vt[rank:]
        exposed = [unknown[i] for i in range(len(unknown))
                   if null_space.shape[0] == 0 or not np.any(np.abs(null_space[:, i]) > 1e-9)]
        assert not exposed, f"recoverable by combining relations: {exposed[:5]}"
