"""Scoring by the national student physical-fitness standard (2014), at every threshold.

The threshold tests are generated from the shipped tables (every item, sex, grade and level,
at the threshold and 0.05 beyond it both ways); the spot values below were written by hand from
the reference CSVs' printed cells, so a misread table fails them even if the generator agrees.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from datetime import date
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from typing import Any

import pytest

from models import fitness
from models.fitness import (
    ITEM_INFO,
    ITEMS,
    ItemNotApplicable,
    band_of,
    bmi_category,
    bonus_points,
    graduation_below_minimum,
    graduation_score,
    items_for,
    score_item,
    score_test,
    year_attempt,
)
from models.growth import bmi_rounded


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("models.reference").joinpath(f"fitness_2014_{name}.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _tables() -> dict[tuple[str, str, int], list[tuple[int, float | None]]]:
    tables: dict[tuple[str, str, int], list[tuple[int, float | None]]] = defaultdict(list)
    for row in _rows("item_scores"):
        threshold = float(row["threshold"]) if row["threshold"] else None
        tables[(row["item"], row["sex"], int(row["grade"]))].append((int(row["score"]), threshold))
    for levels in tables.values():
        levels.sort(key=lambda level: -level[0])
    return tables


TABLES = _tables()


def _threshold_cases() -> list[Any]:
    cases = []
    for (item, sex, grade), levels in sorted(TABLES.items()):
        filled = [(score, threshold) for score, threshold in levels if threshold is not None]
        for position, (score, threshold) in enumerate(filled):
            below = filled[position + 1][0] if position + 1 < len(filled) else 0
            cases.append(pytest.param(item, sex, grade, score, threshold, below,
                                      id=f"{item}-{sex}-{grade}-{score}"))
    return cases


@pytest.mark.parametrize(("item", "sex", "grade", "score", "threshold", "next_lower"), _threshold_cases())
def test_every_threshold_and_just_beyond(item: Any, sex: Any, grade: int, score: int, threshold: float,  # noqa: PLR0917  # pytest passes parameters positionally
                                         next_lower: int) -> None:
    better = 1 if ITEM_INFO[item].direction == "higher_is_better" else -1
    assert score_item(item, sex, grade, threshold) == score
    # 0.05 better stays on this level (levels are at least 0.1 apart), 0.05 worse drops to the
    # next listed level, or to 0 below the lowest.
    assert score_item(item, sex, grade, round(threshold + better * 0.05, 2)) == score
    assert score_item(item, sex, grade, round(threshold - better * 0.05, 2)) == next_lower
    if ITEM_INFO[item].unit in ("count", "ml") or item.startswith("run_1") or item.startswith("run_8"):
        # Whole-number results one unit worse never keep the level.
        assert score_item(item, sex, grade, threshold - better) < score


def test_the_tables_cover_every_grade_sex_and_level() -> None:
    assert len(TABLES) == 132
    assert all(len(levels) == 20 for levels in TABLES.values())
    blanks = sum(threshold is None for levels in TABLES.values() for _, threshold in levels)
    assert blanks == 33  # all in the boys' pull-up table, as the README lists
    for (item, sex, grade) in TABLES:
        assert item in items_for(sex, grade)  # type: ignore[arg-type]


def _doc_cell_value(cell: str) -> Fraction:
    minutes_seconds = re.fullmatch(r"(\d+)'(\d+)\"", cell)
    if minutes_seconds:
        return Fraction(int(minutes_seconds[1]) * 60 + int(minutes_seconds[2]))
    return Fraction(cell)


def test_thresholds_match_the_printed_cells() -> None:
    # An independent reading of every cell as printed (m'ss" for times) against the threshold.
    for row in _rows("item_scores"):
        if row["threshold"]:
            assert _doc_cell_value(row["doc_cell"]) == Fraction(row["threshold"]), row


@pytest.mark.parametrize(("item", "sex", "grade", "result", "expected"), [
    # Written by hand from item_scores.csv (doc_cell column).
    ("run_50m", "male", 1, 10.2, 100),
    ("run_50m", "male", 1, 10.3, 95),
    ("run_50m", "male", 1, 13.6, 10),
    ("run_50m", "male", 1, 13.7, 0),
    ("vital_capacity", "female", 3, 800, 60),
    ("sit_and_reach", "female", 12, 25.3, 100),
    ("sit_and_reach", "male", 9, -6.2, 10),
    ("sit_and_reach", "male", 9, -6.3, 0),
    ("rope_skipping_1min", "male", 2, 117, 100),
    ("rope_skipping_1min", "female", 6, 66, 60),
    ("sit_ups_1min", "female", 4, 37, 80),
    ("sit_ups_1min", "male", 3, 48, 100),
    ("shuttle_run_50m_x8", "female", 6, 139, 60),  # 2'19"
    ("standing_long_jump", "female", 11, 149, 60),  # the document's value (source B has 150)
    ("standing_long_jump", "male", 12, 270, 100),
    ("pull_ups", "male", 7, 9, 80),
    ("pull_ups", "male", 7, 4, 60),
    ("pull_ups", "male", 7, 1, 30),  # grade 7 has no count at levels 20 and 10
    ("pull_ups", "male", 7, 0, 0),
    ("pull_ups", "male", 8, 1, 20),
    ("pull_ups", "male", 12, 18, 100),
    ("run_1000m", "male", 10, 285, 60),  # 4'45"
    ("run_1000m", "male", 8, 230, 100),  # 3'50"
    ("run_800m", "female", 9, 205, 100),  # 3'25"
])
def test_spot_values(item: Any, sex: Any, grade: int, result: float, expected: int) -> None:
    assert score_item(item, sex, grade, result) == expected


def test_pull_up_blank_levels_are_never_awarded() -> None:
    for grade in range(7, 13):
        awarded = {score_item("pull_ups", "male", grade, count) for count in range(0, 40)}
        assert awarded.isdisjoint({78, 74, 70, 66, 62})


@pytest.mark.parametrize(("item", "sex", "grade"), [
    ("run_1000m", "female", 8), ("run_800m", "male", 8), ("pull_ups", "female", 10),
    ("pull_ups", "male", 5), ("rope_skipping_1min", "male", 7), ("sit_ups_1min", "male", 8),
    ("sit_ups_1min", "female", 2), ("shuttle_run_50m_x8", "male", 4), ("standing_long_jump", "female", 6),
])
def test_items_of_another_grade_or_sex_are_refused(item: Any, sex: Any, grade: int) -> None:
    with pytest.raises(ItemNotApplicable, match=f"{item} is not tested in grade {grade}"):
        score_item(item, sex, grade, 10)


# --- BMI -----------------------------------------------------------------------------------


def _bmi_cases() -> list[Any]:
    cases = []
    for row in _rows("bmi_scores"):
        sex, grade, category, score = row["sex"], int(row["grade"]), row["category"], int(row["score"])
        for bound in (row["bmi_min"], row["bmi_max"]):
            if bound:
                cases.append(pytest.param(sex, grade, Decimal(bound), category, score,
                                          id=f"{sex}-{grade}-{category}-{bound}"))
    return cases


@pytest.mark.parametrize(("sex", "grade", "bmi", "category", "score"), _bmi_cases())
def test_bmi_band_bounds_are_inclusive(sex: Any, grade: int, bmi: Decimal, category: str, score: int) -> None:
    assert bmi_category(sex, grade, bmi) == (category, score)


@pytest.mark.parametrize(("sex", "grade"), [(sex, grade) for sex in ("male", "female") for grade in range(1, 13)])
def test_bmi_bands_meet_without_gaps(sex: Any, grade: int) -> None:
    seen = []
    for tenths in range(80, 450):
        seen.append(bmi_category(sex, grade, Decimal(tenths).scaleb(-1))[0])
    # Monotone: underweight, normal, overweight, obese, each a single run.
    runs = [category for position, category in enumerate(seen) if position == 0 or seen[position - 1] != category]
    assert runs == ["underweight", "normal", "overweight", "obese"]


@pytest.mark.parametrize(("sex", "grade", "bmi", "expected"), [
    ("male", 9, "15.7", "underweight"), ("male", 9, "15.8", "normal"), ("male", 9, "22.8", "normal"),
    ("male", 9, "22.9", "overweight"), ("male", 9, "26.0", "overweight"), ("male", 9, "26.1", "obese"),
    # Girls 7: the document's bounds (source C has them 0.1 higher)
    ("female", 7, "24.4", "overweight"), ("female", 7, "24.5", "obese"),
    ("female", 12, "25.7", "overweight"), ("female", 12, "25.8", "obese"),
])
def test_bmi_spot_values(sex: Any, grade: int, bmi: str, expected: str) -> None:
    assert bmi_category(sex, grade, Decimal(bmi))[0] == expected


@pytest.mark.parametrize(("height", "weight", "expected"), [
    (100.0, 18.15, "18.2"),   # exactly 18.15: half rounds up (a float computation gives 18.149999...)
    (100.0, 18.149, "18.1"),
    (200.0, 60.6, "15.2"),    # 15.15 exactly
    (150.0, 40.5, "18.0"),
    (160.0, 50.0, "19.5"),    # 19.53125
    (170.0, 65.0, "22.5"),    # 22.491...
])
def test_bmi_is_exact_and_rounded_half_up(height: float, weight: float, expected: str) -> None:
    assert bmi_rounded(height, weight) == Decimal(expected)
    assert str(bmi_rounded(height, weight)) == expected


# --- bonus, totals, bands -------------------------------------------------------------------


def _top(item: str, sex: str, grade: int) -> float:
    threshold = TABLES[(item, sex, grade)][0][1]
    assert threshold is not None
    return threshold


def test_bonus_steps_from_the_100_point_mark() -> None:
    top = _top("rope_skipping_1min", "male", 2)  # 117
    assert bonus_points("rope_skipping_1min", "male", 2, top) == 0
    assert bonus_points("rope_skipping_1min", "male", 2, top + 1) == 0
    assert bonus_points("rope_skipping_1min", "male", 2, top + 2) == 1
    assert bonus_points("rope_skipping_1min", "male", 2, top + 40) == 20
    assert bonus_points("rope_skipping_1min", "male", 2, top + 80) == 20
    # 1000 m: 4, 8, ... 35 s faster; 800 m: 5 s per point; sit-ups 2, 4, 6, 7 ...; pull-ups +1.
    assert [bonus_points("run_1000m", "male", 9, _top("run_1000m", "male", 9) - s) for s in (3, 4, 7, 8, 35, 60)] \
        == [0, 1, 1, 2, 10, 10]
    top_800 = _top("run_800m", "female", 11)
    assert [bonus_points("run_800m", "female", 11, top_800 - s) for s in (4, 5, 50)] == [0, 1, 10]
    assert [bonus_points("sit_ups_1min", "female", 7, _top("sit_ups_1min", "female", 7) + n)
            for n in (1, 2, 3, 6, 7, 13)] == [0, 1, 1, 3, 4, 10]
    assert [bonus_points("pull_ups", "male", 12, _top("pull_ups", "male", 12) + n) for n in (0, 1, 10, 11)] \
        == [0, 1, 10, 10]
    # No bonus table: girls' sit-ups in primary grades, 50 m, boys' sit-ups.
    assert bonus_points("sit_ups_1min", "female", 4, 80) == 0
    assert bonus_points("run_50m", "male", 8, 5.0) == 0


@pytest.mark.parametrize(("total", "band"), [
    ("120", "excellent"), ("90", "excellent"), ("89.95", "good"), ("80", "good"), ("79.95", "pass"),
    ("60", "pass"), ("59.95", "fail"), ("0", "fail"),
])
def test_bands_at_their_cut_offs(total: str, band: str) -> None:
    assert band_of(Decimal(total)) == band


def _best(item: str, sex: str, grade: int, extra: float) -> float:
    better = 1 if ITEM_INFO[item].direction == "higher_is_better" else -1  # type: ignore[index]
    return _top(item, sex, grade) + better * extra


@pytest.mark.parametrize(("sex", "grade"), [(sex, grade) for sex in ("male", "female") for grade in range(1, 13)])
def test_weights_sum_to_100_and_the_total_is_capped_at_120(sex: Any, grade: int) -> None:
    items = items_for(sex, grade)
    results = {item: _best(item, sex, grade, 100 if ITEM_INFO[item].unit != "s" else 60) for item in items}
    result = score_test(sex=sex, grade=grade, results=results, height_cm=150.0,
                        weight_kg=round(20 * 1.5 * 1.5 * (1 if grade > 4 else 0.8), 1))
    assert result.status == "complete"
    assert result.standard_score == Decimal(100)
    assert result.bonus == 20
    assert result.total == Decimal(120)
    assert result.band == "excellent"


def test_a_worked_total_for_grade_8_boys() -> None:
    result = score_test(sex="male", grade=8, height_cm=160.0, weight_kg=50.0, results={
        "vital_capacity": 3000, "run_50m": 8.0, "sit_and_reach": 10.0, "standing_long_jump": 210,
        "pull_ups": 12, "run_1000m": 226})
    scores = {score.item: score.score for score in result.items}
    assert scores == {"vital_capacity": 76, "run_50m": 78, "sit_and_reach": 76,
                      "standing_long_jump": 80, "pull_ups": 90, "run_1000m": 100}
    # BMI 19.53 -> 19.5 normal (100). 15*100 + 15*76 + 20*78 + 10*76 + 10*80 + 10*90 + 20*100 = 8660.
    assert result.bmi == Decimal("19.5") and result.bmi_score == 100
    assert result.standard_score == Decimal("86.6")
    assert result.bonus == 1  # 4 s faster than 3'50"
    assert result.total == Decimal("87.6") and result.band == "good"
    assert result.failed_items == () and not result.follow_up
    assert result.document_only_tables == ("standing_long_jump",)  # grade 8 long jump: DOCUMENT ONLY
    assert result.table_version == fitness.TABLE_VERSION


def test_missing_is_missing_never_zero() -> None:
    result = score_test(sex="female", grade=3, height_cm=130.0, weight_kg=27.0,
                        results={"vital_capacity": 1400, "run_50m": 10.5, "sit_and_reach": 12.0,
                                 "rope_skipping_1min": 100})
    assert result.status == "incomplete"
    assert result.missing_items == ("sit_ups_1min",)
    assert result.total is None and result.band is None and result.standard_score is None
    assert [score.item for score in result.items] == ["vital_capacity", "run_50m", "sit_and_reach",
                                                      "rope_skipping_1min"]


def test_a_zero_result_is_a_result() -> None:
    result = score_test(sex="male", grade=9, height_cm=165.0, weight_kg=55.0, results={
        "vital_capacity": 3500, "run_50m": 8.0, "sit_and_reach": 8.0, "standing_long_jump": 220,
        "pull_ups": 0, "run_1000m": 240})
    assert result.status == "complete"
    assert result.failed_items == ("pull_ups",) and result.follow_up


def test_exemptions() -> None:
    exempt = score_test(sex="male", grade=5, height_cm=140.0, weight_kg=35.0, results={}, exempt=True)
    assert exempt.status == "exempt" and exempt.total is None and exempt.missing_items == ()
    partial = score_test(sex="female", grade=10, height_cm=160.0, weight_kg=50.0, exempt_items=("run_800m",),
                         results={"vital_capacity": 2800, "run_50m": 9.0, "sit_and_reach": 15.0,
                                  "standing_long_jump": 170, "sit_ups_1min": 40})
    assert partial.status == "incomplete" and partial.exempt_items == ("run_800m",)
    assert partial.missing_items == () and partial.total is None
    with pytest.raises(ItemNotApplicable):
        score_test(sex="female", grade=10, height_cm=160.0, weight_kg=50.0, exempt_items=("run_1000m",), results={})


def test_a_failed_total_needs_follow_up() -> None:
    worst = {}
    for item in items_for("female", 2):
        lowest = TABLES[(item, "female", 2)][-1][1]
        assert lowest is not None
        worst[item] = lowest - (1 if ITEM_INFO[item].direction == "higher_is_better" else -1)
    result = score_test(sex="female", grade=2, height_cm=120.0, weight_kg=22.0, results=worst)
    assert result.band == "fail" and result.follow_up
    assert set(result.failed_items) == set(items_for("female", 2))


def test_every_item_has_a_field_and_names() -> None:
    assert set(ITEM_INFO) == set(ITEMS)
    assert len({info.field for info in ITEM_INFO.values()}) == len(ITEMS)


def test_year_attempt_follows_the_retest_rule() -> None:
    d1, d2, d3 = date(2025, 10, 1), date(2025, 11, 1), date(2025, 12, 1)
    assert year_attempt([("first", d1, "pass")]) == 0
    assert year_attempt([("first", d1, "fail"), ("retest", d2, "pass")]) == 1
    assert year_attempt([("first", d1, "fail"), ("retest", d2, "fail"), ("retest", d3, "pass")]) == 1
    assert year_attempt([("first", d1, "good"), ("retest", d2, "excellent")]) == 0
    assert year_attempt([("retest", d2, "pass")]) == 0
    assert year_attempt([]) is None
    assert year_attempt([("retest", d3, "pass"), ("first", d1, "fail")]) == 0


def test_graduation_score_and_minimum() -> None:
    totals = {7: Decimal(70), 8: Decimal(80), 9: Decimal(90)}
    assert graduation_score(totals, 9) == Decimal(45) + Decimal(75) / 2
    assert graduation_score({6: Decimal(66), 5: Decimal(60), 9: Decimal(10)}, 6) == Decimal(63)
    assert graduation_score({12: Decimal(55)}, 12) == Decimal(55)
    assert graduation_below_minimum(12, Decimal("49.95"))
    assert not graduation_below_minimum(12, Decimal(50))
    assert not graduation_below_minimum(9, Decimal(10))
