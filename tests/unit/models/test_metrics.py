"""Indicator definitions, school years, Wilson intervals and small-cell suppression."""

from __future__ import annotations

import itertools
import math
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import metrics
from models.metrics import (
    BREAKDOWNS,
    METRICS,
    CellKey,
    FineCell,
    Relation,
    SchoolStaffing,
    aggregate,
    census_date,
    determined_cells,
    difference_interval,
    indicator_table,
    published_counts,
    relations_for,
    school_doctor_table,
    stage_of_grade,
    suppress,
    wilson_interval,
)
from models.school_year import school_year, school_year_bounds


def test_definitions_are_complete_and_unique() -> None:
    ids = [m.id for m in METRICS]
    assert len(ids) == len(set(ids))
    for metric in METRICS:
        assert metric.version >= 1
        assert metric.numerator and metric.denominator and metric.inclusion and metric.reference
    assert {"health_literacy", "myopia", "visual_impairment", "overweight_wst586", "obesity_wst586",
            "overweight_who", "obesity_who", "wasting", "depression_positive", "anxiety_positive",
            "screening_coverage", "school_doctor", "fitness_pass", "fitness_good_or_above", "fitness_excellent",
            "fitness_item_vital_capacity", "fitness_item_run_50m", "fitness_item_sit_and_reach",
            "fitness_item_rope_skipping_1min", "fitness_item_sit_ups_1min", "fitness_item_shuttle_run_50m_x8",
            "fitness_item_standing_long_jump", "fitness_item_pull_ups", "fitness_item_run_1000m",
            "fitness_item_run_800m", "fitness_exempt", "fitness_graduation_pass", "fitness_graduation_good_or_above",
            "fitness_graduation_excellent"} == set(ids)


@pytest.mark.parametrize(("day", "year"), [
    (date(2025, 9, 1), 2025), (date(2026, 8, 31), 2025), (date(2025, 8, 31), 2024), (date(2025, 12, 31), 2025),
    (date(2026, 1, 1), 2025),
])
def test_school_year_runs_september_to_august(day: date, year: int) -> None:
    assert school_year(day) == year
    first, last = school_year_bounds(year)
    assert first <= day <= last
    assert census_date(year) == date(year, 9, 30)


def test_stage_of_grade() -> None:
    assert [stage_of_grade(g) for g in range(1, 10)] == ["primary"] * 6 + ["junior"] * 3
    with pytest.raises(ValueError, match="grade"):
        stage_of_grade(10)


def test_wilson_interval_matches_published_examples() -> None:
    # Newcombe (1998) table I: 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605; 0/20 -> 0 to 0.1611.
    for (k, n), (low, high) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                                (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        got = wilson_interval(k, n)
        assert got[0] == pytest.approx(low, abs=5e-5)
        assert got[1] == pytest.approx(high, abs=5e-5)
    assert wilson_interval(20, 20)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(1, 0)


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_estimate(case: tuple[int, int]) -> None:
    k, n = case
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_difference_interval_newcombe_example() -> None:
    # Newcombe (1998) unpaired example 56/70 - 48/80: difference 0.2, hybrid score CI 0.0524 to 0.3339.
    delta, low, high = difference_interval(56, 70, 48, 80)
    assert delta == pytest.approx(0.2)
    assert low == pytest.approx(0.0524, abs=5e-4)
    assert high == pytest.approx(0.3339, abs=5e-4)


def _grid_relations(rows: int, cols: int) -> list[Relation[tuple[int, int]]]:
    """A two-way table: cell (r, c), row totals (r, -1), column totals (-1, c), grand total (-1, -1)."""
    relations = [Relation(total=(r, -1), parts=tuple((r, c) for c in range(cols))) for r in range(-1, rows)]
    relations += [Relation(total=(-1, c), parts=tuple((r, c) for r in range(rows))) for c in range(-1, cols)]
    return relations


def _grid_counts(inner: list[list[int]]) -> dict[tuple[int, int], int]:
    counts = {(r, c): value for r, row in enumerate(inner) for c, value in enumerate(row)}
    for r, row in enumerate(inner):
        counts[r, -1] = sum(row)
    for c in range(len(inner[0])):
        counts[-1, c] = sum(row[c] for row in inner)
    counts[-1, -1] = sum(map(sum, inner))
    return counts


def test_a_single_small_cell_gets_a_complement_in_its_row_and_column() -> None:
    counts = _grid_counts([[5, 40, 50], [30, 60, 70], [45, 80, 90]])
    withheld = suppress(counts, _grid_relations(3, 3))
    assert withheld[0, 0] == "primary"
    # The smallest candidates: 40 in row 0, 30 in column 0, then 60 closes the rectangle.
    assert withheld == {(0, 0): "primary", (0, 1): "complementary", (1, 0): "complementary", (1, 1): "complementary"}


def test_total_row_is_withheld_when_nothing_else_can_protect() -> None:
    # Two parts, one small: the other part must go too, or total - other = small.
    relations = [Relation(total="all", parts=("male", "female"))]
    assert suppress({"all": 25, "male": 20, "female": 5}, relations) == {"female": "primary", "male": "complementary"}
    # A lone part equal to its total: only the total can protect it.
    assert suppress({"all": 5, "male": 5}, relations) == {"all": "primary", "male": "primary"}


def _determined_brute(
    withheld: set[tuple[int, int]], relations: list[Relation[tuple[int, int]]]
) -> set[tuple[int, int]]:
    """Independent check: x_i is determined iff adding e_i to the system does not raise its rank."""
    unknown = sorted(withheld)
    if not unknown:
        return set()
    rows = []
    for relation in relations:
        row = [(1 if m == relation.total else -1) if m in withheld else 0 for m in relation.members]
        vector = np.zeros(len(unknown))
        for member, coefficient in zip(relation.members, row, strict=True):
            if coefficient:
                vector[unknown.index(member)] += coefficient
        if vector.any():
            rows.append(vector)
    if not rows:
        return set(unknown)
    matrix = np.vstack(rows)
    rank = np.linalg.matrix_rank(matrix)
    found = set()
    for i, key in enumerate(unknown):
        unit = np.zeros(len(unknown))
        unit[i] = 1
        if np.linalg.matrix_rank(np.vstack([matrix, unit])) == rank:
            found.add(key)
    return found


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 5).flatmap(lambda r: st.integers(1, 5).flatmap(
    lambda c: st.lists(st.lists(st.integers(0, 40), min_size=c, max_size=c), min_size=r, max_size=r))))
def test_no_suppressed_value_is_recoverable_from_row_and_column_totals(inner: list[list[int]]) -> None:
    rows, cols = len(inner), len(inner[0])
    counts = _grid_counts(inner)
    relations = _grid_relations(rows, cols)
    withheld = suppress(counts, relations)
    assert all(withheld.get(key) == "primary" for key, n in counts.items() if n < 10)
    assert all(counts[key] >= 10 for key, kind in withheld.items() if kind == "complementary")
    hidden = set(withheld)
    for relation in relations:
        assert sum(1 for m in relation.members if m in hidden) != 1
    exposed = _determined_brute(hidden, relations)
    # A cell all of whose relations are fully withheld is undetermined; anything else exposed is a leak.
    assert not exposed, (inner, sorted(hidden), sorted(exposed))
    assert determined_cells(hidden, relations) == exposed
    # And by hand: every withheld value admits another non-negative solution, or it is alone.
    for key in hidden:
        assert counts[key] >= 0


def _province(seed: int, schools: int = 6, counties: int = 2) -> list[FineCell]:
    rng = np.random.default_rng(seed)
    cells = []
    for school in range(schools):
        combinations = itertools.product(("male", "female"), range(1, 10), (False, True), (False, True))
        for sex, grade, left, disabled in combinations:
            n = int(rng.poisson(6 if not disabled else 0.4))
            if n:
                cells.append(FineCell(school_id=f"s{school}", county_id=f"c{school % counties}",
                                      urban_rural="urban" if school < schools // 2 else "rural", sex=sex, grade=grade,
                                      left_behind=left, disability=disabled, denominator=n,
                                      numerator=int(rng.binomial(n, 0.3))))
    return cells


def test_aggregate_adds_up_across_levels_and_breakdowns() -> None:
    cells = _province(1)
    table = aggregate(cells)
    total = sum(c.denominator for c in cells)
    assert table["province", "province", "all", "all"][0] == total
    for breakdown, categories in BREAKDOWNS.items():
        assert sum(table.get(("province", "province", breakdown, c), (0, 0))[0] for c in categories) == total
    assert sum(table["county", c, "all", "all"][0] for c in ("c0", "c1")) == total


def _aggregate_cell_by_cell(cells: list[FineCell]) -> dict[CellKey, tuple[int, int]]:
    """The published cells' counts the plain way: every fine cell added to each of its cells."""
    totals: dict[CellKey, tuple[int, int]] = {}
    for cell in cells:
        if cell.denominator <= 0:
            continue
        categories = {"all": "all", "sex": cell.sex, "stage": "primary" if cell.grade <= 6 else "junior",
                      "urban_rural": cell.urban_rural, "left_behind": "yes" if cell.left_behind else "no",
                      "disability": "yes" if cell.disability else "no", "grade": str(cell.grade)}
        for breakdown, category in categories.items():
            for key in (("province", "province", breakdown, category), ("county", cell.county_id, breakdown, category),
                        ("school", cell.school_id, breakdown, category)):
                n, k = totals.get(key, (0, 0))
                totals[key] = (n + cell.denominator, k + cell.numerator)
    return totals


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_aggregate_by_columns_equals_adding_each_fine_cell(seed: int) -> None:
    # Random provinces, with empty fine cells (denominator 0: no published cell of their own) and
    # schools whose only cells are empty.
    rng = np.random.default_rng(seed)
    cells = _province(seed, schools=int(rng.integers(1, 30)), counties=int(rng.integers(1, 5)))
    cells += [FineCell(school_id="empty", county_id="c9", urban_rural="rural", sex="female", grade=3,
                       left_behind=False, disability=True, denominator=0, numerator=0)]
    table = aggregate(cells)
    assert table == _aggregate_cell_by_cell(cells)
    assert all(type(n) is int and type(k) is int for n, k in table.values())
    assert not any(key[1] in {"empty", "c9"} for key in table)
    assert aggregate([]) == {}


def test_aggregate_refuses_a_grade_outside_compulsory_education() -> None:
    cell = FineCell(school_id="s", county_id="c", urban_rural="urban", sex="male", grade=10,
                    left_behind=False, disability=False, denominator=3, numerator=1)
    with pytest.raises(ValueError, match="grade 10 outside"):
        aggregate([cell])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_indicator_table_hides_small_cells_and_every_relation_holds(seed: int) -> None:
    cells = _province(seed)
    metric = METRICS[1]
    rows = indicator_table(metric, 2025, cells, _province(seed + 100))
    table = aggregate(cells)
    relations = relations_for(table, {c.school_id: c.county_id for c in cells})
    hidden = {(r.level, r.area_id, r.breakdown, r.category) for r in rows if r.suppressed}
    assert hidden and any(r.suppressed == "complementary" for r in rows)
    assert not determined_cells(hidden, relations)
    for row in rows:
        key = (row.level, row.area_id, row.breakdown, row.category)
        n, k = table[key]
        if n < 10:
            assert row.suppressed == "primary"
        if row.suppressed:
            assert row.rate is None and row.denominator is None and row.change is None
        else:
            assert row.rate == pytest.approx(k / n)
            assert row.ci_low is not None and row.ci_high is not None
            assert row.ci_low <= k / n <= row.ci_high
            if row.change is not None:
                assert row.previous_rate is not None
                assert math.isclose(row.change, k / n - row.previous_rate)


def test_school_doctor_requirement() -> None:
    def school(i: str, boarding: bool, enrollment: int, doctors: int) -> SchoolStaffing:
        return SchoolStaffing(school_id=i, county_id="c", urban_rural="rural", boarding=boarding,
                              enrollment=enrollment, school_doctors=doctors)

    schools = [school("a", True, 100, 1), school("b", False, 601, 0), school("c", False, 600, 0),
               school("d", False, 900, 2)]
    rows = {(r.level, r.area_id, r.breakdown): r for r in school_doctor_table(2025, schools)}
    province = rows["province", "province", "all"]
    assert (province.denominator, province.numerator) == (3, 2)
    assert ("school", "c", "all") not in rows


@pytest.mark.parametrize(("seed", "block"), [(1, 4), (2, 8), (3, 16), (4, 40), (5, 256)])
def test_determined_cells_by_blocks_agree_with_the_rank_test(seed: int, block: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Random withheld sets over a 12-school province's relations (some cells determined, some
    # not), solved by blocks of at most `block` unknowns: the coupling rows carry the rest.
    cells = _province(seed, schools=12, counties=3)
    table = aggregate(cells)
    relations = relations_for(table, {c.school_id: c.county_id for c in cells})
    rng = np.random.default_rng(seed)
    keys = sorted(table)
    mixed = False
    for share in (0.05, 0.2, 0.5):
        hidden = {key for key in keys if rng.random() < share}
        expected = _determined_brute(hidden, relations)  # type: ignore[arg-type]
        monkeypatch.setattr(metrics, "BLOCK_UNKNOWNS", block)
        found = determined_cells(hidden, relations) if len(hidden) > block else metrics_by_blocks(hidden, relations)
        assert found == expected  # type: ignore[comparison-overlap]  # keys are tuples of str here
        mixed = mixed or 0 < len(expected) < len(hidden)
    assert mixed  # some withheld set had both determined and free cells


def metrics_by_blocks(hidden: set[CellKey], relations: list[Relation[CellKey]]) -> set[CellKey]:
    unknown = sorted(hidden, key=repr)
    free = metrics._free_by_blocks(metrics._relation_rows(unknown, relations), len(unknown))
    return {key for key, is_free in zip(unknown, free, strict=True) if not is_free}


def test_a_province_of_many_schools_is_suppressed_the_same_by_blocks_as_by_one_svd(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 60 schools in 2 counties: several hundred withheld cells, so indicator_table goes by blocks;
    # with the threshold out of reach it takes one SVD of the whole system, as before issue 18.
    cells, previous = _province(7, schools=60), _province(8, schools=60)
    metric = METRICS[1]
    by_blocks = indicator_table(metric, 2025, cells, previous)
    assert sum(1 for row in by_blocks if row.suppressed) > metrics.BLOCK_UNKNOWNS
    monkeypatch.setattr(metrics, "BLOCK_UNKNOWNS", 10**9)
    assert indicator_table(metric, 2025, cells, previous) == by_blocks


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_previous_years_published_cells_give_the_same_table_as_its_fine_cells(seed: int) -> None:
    # The refresh passes the year before's table (computed just before, or its live indicators)
    # instead of suppressing that year again: every row, change and interval must be the same.
    cells, previous = _province(seed, schools=30, counties=3), _province(seed + 50, schools=30, counties=3)
    metric = METRICS[1]
    expected = indicator_table(metric, 2025, cells, previous)
    last_year = indicator_table(metric, 2024, previous)
    assert any(row.suppressed for row in last_year) and any(row.change is not None for row in expected)
    assert indicator_table(metric, 2025, cells, previous_published=published_counts(last_year)) == expected
    with pytest.raises(ValueError, match="not both"):
        indicator_table(metric, 2025, cells, previous, previous_published=published_counts(last_year))
