"""Synthetic physical-fitness results with a known generating model (no real student behind any).

Each student has a stable fitness trait; a test's expected level on the standard's 0-100 score
scale is

    level = BASE_LEVEL + LEVEL_SD * (trait + BMI effect + spring effect + year trend) + item noise

and each item's result is that level read back through the item's own table (thresholds
interpolated between the published levels, extrapolated past the ends), then rounded to how the
item is measured. Results are therefore in the item's units and plausible for the grade and sex,
worse with underweight, overweight and obesity (the BMI comes from the province's own growth
screening), better in spring tests and slowly better year on year. A few students are exempted
(more with a disability), a few miss an item, and students rated fail may retest.

The model's parameters are the true distribution; `SyntheticTest.truth` records each test's
trait and expected level, and scoring the generated results (the same scoring as the pipeline)
gives the true band that an archive must reproduce.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

from models.fitness import (
    ITEM_INFO,
    FitnessResult,
    Item,
    bmi_category,
    item_thresholds,
    items_for,
    score_test,
)
from models.growth import bmi_rounded
from models.types import Sex

__all__ = ["BASE_LEVEL", "BMI_EFFECT", "LEVEL_SD", "SPRING_EFFECT", "YEAR_TREND", "SyntheticTest",
           "result_at_level", "student_trait", "synthetic_test", "takes_retest"]

BASE_LEVEL: Final = 76.0
LEVEL_SD: Final = 13.0
#: Shift of the trait (in SD) by the student's BMI band (the standard's own bands).
BMI_EFFECT: Final[Mapping[str, float]] = {"underweight": -0.35, "normal": 0.0, "overweight": -0.45, "obese": -1.1}
SPRING_EFFECT: Final = 0.15
YEAR_TREND: Final = 0.04  # per school year after 2022
ITEM_NOISE_SD: Final = 0.6
EXEMPT_SHARE: Final = 0.008
EXEMPT_SHARE_DISABILITY: Final = 0.35
ITEM_EXEMPT_SHARE: Final = 0.01
MISSING_ITEM_SHARE: Final = 0.005
RETEST_SHARE: Final = 0.7
RETEST_GAIN: Final = 0.35

_COUNTS: Final = frozenset({"count", "ml"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticTest:
    """One generated test: the sheet's values, the scoring, and the generator's truth."""

    results: dict[Item, float]
    exempt: bool
    exempt_items: tuple[Item, ...]
    scored: FitnessResult
    trait: float
    expected_level: float

    @property
    def truth(self) -> dict[str, object]:
        return {"trait": round(self.trait, 4), "expected_level": round(self.expected_level, 2),
                "status": self.scored.status, "total": self.scored.total, "band": self.scored.band}


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("/".join(str(part) for part in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311  # synthetic data, not secrets


def student_trait(seed: int, student: str) -> float:
    """The student's stable fitness trait (standard normal), the same in every year."""
    return _rng(seed, "trait", student).gauss(0.0, 1.0)


def result_at_level(item: Item, sex: Sex, grade: int, level: float) -> float:
    """The result that sits at `level` on the item's score scale, in the item's units and precision."""
    points = sorted(item_thresholds(item, sex, grade))
    scores = [float(score) for score, _ in points]
    values = [float(threshold) for _, threshold in points]
    if level <= scores[0]:
        step = (values[1] - values[0]) / (scores[1] - scores[0])
        value = values[0] - (scores[0] - level) * step
    elif level >= scores[-1]:
        step = (values[-1] - values[-2]) / (scores[-1] - scores[-2])
        value = values[-1] + (level - scores[-1]) * step
    else:
        upper = next(index for index, score in enumerate(scores) if score >= level)
        low_s, high_s, low_v, high_v = scores[upper - 1], scores[upper], values[upper - 1], values[upper]
        value = low_v + (level - low_s) / (high_s - low_s) * (high_v - low_v)
    info = ITEM_INFO[item]
    if info.unit in _COUNTS or item in ("run_800m", "run_1000m", "standing_long_jump"):
        value = float(max(0, round(value)))
    else:
        value = round(value, 1)
    # Inside the contract's plausibility bounds, whatever the tails of the normal draw.
    bounds = {"vital_capacity": (300, 8000), "run_50m": (5.6, 25.0), "sit_and_reach": (-30.0, 40.0),
              "rope_skipping_1min": (0, 280), "sit_ups_1min": (0, 90), "shuttle_run_50m_x8": (65.0, 300.0),
              "standing_long_jump": (40, 330), "pull_ups": (0, 50), "run_800m": (140, 600),
              "run_1000m": (160, 600)}[item]
    return min(max(value, bounds[0]), bounds[1])


def synthetic_test(
    *, seed: int, student: str, sex: Sex, grade: int, height_cm: float, weight_kg: float, measured_on: date,
    school_year: int, disability: bool, retest: bool = False,
) -> SyntheticTest:
    """Generate one student's test (or retest) from the model; deterministic in its arguments."""
    rng = _rng(seed, "test", student, school_year, "retest" if retest else "first")
    trait = student_trait(seed, student)
    category, _ = bmi_category(sex, grade, bmi_rounded(height_cm, weight_kg))
    spring = SPRING_EFFECT if 3 <= measured_on.month <= 7 else 0.0
    shift = trait + BMI_EFFECT[category] + spring + YEAR_TREND * (school_year - 2022) + (RETEST_GAIN if retest else 0)
    expected = BASE_LEVEL + LEVEL_SD * shift
    exempt = not retest and rng.random() < (EXEMPT_SHARE_DISABILITY if disability else EXEMPT_SHARE)
    results: dict[Item, float] = {}
    exempt_items: list[Item] = []
    if not exempt:
        for item in items_for(sex, grade):
            draw = rng.random()
            if ITEM_INFO[item].unit == "s" and item != "run_50m" and draw < ITEM_EXEMPT_SHARE:
                exempt_items.append(item)
                continue
            if draw > 1 - MISSING_ITEM_SHARE:
                continue
            level = expected + LEVEL_SD * rng.gauss(0.0, ITEM_NOISE_SD)
            results[item] = result_at_level(item, sex, grade, level)
    scored = score_test(sex=sex, grade=grade, results=results, height_cm=height_cm, weight_kg=weight_kg,
                        exempt=exempt, exempt_items=tuple(exempt_items))
    return SyntheticTest(results=results, exempt=exempt, exempt_items=tuple(exempt_items), scored=scored,
                         trait=trait, expected_level=expected)


def takes_retest(seed: int, student: str, school_year: int) -> bool:
    """Whether a student rated fail retests this year (a fixed share of them)."""
    return _rng(seed, "retest?", student, school_year).random() < RETEST_SHARE
