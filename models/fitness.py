"""The national student physical-fitness standard (国家学生体质健康标准, 2014 revision), grades 1-12.

Each tested item is scored from its table by sex and grade (20 levels from 100 down to 10),
BMI from its four bands; the item scores are weighted by grade group into the standard score
(at most 100); bonus points for results beyond the 100-point mark (at most 20) give the year
total (at most 120) and its band. The tables are shipped in ``models/reference/fitness_2014_*.csv``
unchanged from the project's transcription of the Ministry of Education's document, with each
table's verification status (see ``models/reference/README.md``).

The document is silent on a few points; these are this module's choices, stated once here and
in the report's definitions (``DEFINITIONS``):

* **Between two levels**: the score is the highest level whose threshold the result reaches
  (result >= threshold for counts, distances and volumes; result <= threshold for times). No
  interpolation. Blank levels (the pull-up table's 78/74/70/66/62) are skipped.
* **Below the lowest level**: a result worse than the 10-point threshold scores 0.
* **Item results are not rounded**: a result is compared with the thresholds as measured
  (a 50 m time of 9.35 s does not reach a 9.3 s threshold).
* **BMI** = weight / height² from the numbers as written, computed exactly (no binary floating
  point) and rounded to 0.1 half-up before the band lookup (the bands meet at 0.1 steps):
  `models.growth.bmi_rounded`, the same rounding as the WS/T tables.
* **Weighted and total scores are not rounded**: they are exact decimals (multiples of 0.05),
  and the bands read the printed ranges as cut-offs: excellent >= 90, good >= 80, pass >= 60,
  fail below 60 (so 79.95 is pass: rounding never lifts a student into a higher band).
* **Missing or exempted items**: every item of the grade group is compulsory, so a test with a
  missing or an exempted item gets its item scores but no standard score, total or band
  (status ``incomplete``); the document does not say how an exempted item would be weighted
  and nothing is re-weighted here. A wholly exempted student (免测) has status ``exempt``.
* **Retest**: a student whose first test of a school year is rated fail may retest once; the
  year's result is then the retest's. A retest after a first test that did not fail, or a
  second retest, does not replace anything (`year_attempt`).
* **Graduation**: 50 % of the final year's total plus 50 % of the mean of the stage's other
  years' totals; with no other year on record, the final year's total alone. Each year's total
  is the year's result by the retest rule; a year without a total (a missing or exempted item)
  is left out of the mean; a repeated grade counts once, with its latest year; a final year
  without a total has no graduation score (免测 where the student was wholly exempted). The
  archive's view ``archive.fitness_graduation`` computes the same (migration 0064).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Final, Literal, get_args

from models.growth import bmi_rounded
from models.types import SEXES, Sex

if TYPE_CHECKING:
    from models.contracts import FitnessTest

__all__ = [
    "BAND_LABELS",
    "DEFINITIONS",
    "ITEMS",
    "ITEM_INFO",
    "REFERENCE",
    "TABLE_VERSION",
    "Band",
    "BmiCategory",
    "FitnessResult",
    "Item",
    "ItemInfo",
    "ItemNotApplicable",
    "ItemScore",
    "band_of",
    "bmi_category",
    "bonus_points",
    "grade_group",
    "graduation_below_minimum",
    "graduation_score",
    "item_level",
    "item_thresholds",
    "items_for",
    "score_fitness_event",
    "score_item",
    "score_test",
    "stage_of",
    "table_status",
    "year_attempt",
]

Item = Literal[
    "vital_capacity", "run_50m", "sit_and_reach", "rope_skipping_1min", "sit_ups_1min",
    "shuttle_run_50m_x8", "standing_long_jump", "pull_ups", "run_1000m", "run_800m",
]
ITEMS: Final[tuple[Item, ...]] = get_args(Item)

Band = Literal["excellent", "good", "pass", "fail"]
BmiCategory = Literal["underweight", "normal", "overweight", "obese"]
Status = Literal["complete", "incomplete", "exempt"]
Direction = Literal["higher_is_better", "lower_is_better"]
Stage = Literal["primary", "junior", "senior"]

BAND_LABELS: Final[Mapping[Band, tuple[str, str]]] = {
    "excellent": ("优秀", "excellent"), "good": ("良好", "good"),
    "pass": ("及格", "pass"), "fail": ("不及格", "fail"),
}

REFERENCE: Final = "国家学生体质健康标准（2014年修订）, 教体艺〔2014〕5号"
_REFERENCE_PACKAGE: Final = "models.reference"
_TABLE_FILES: Final = ("item_scores", "bmi_scores", "weights", "bonus")

_EXCELLENT: Final = Decimal(90)
_GOOD: Final = Decimal(80)
_PASS: Final = Decimal(60)
_BONUS_MAX: Final = 20
_GRADUATION_MINIMUM: Final = Decimal(50)


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemInfo:
    """One test item: its event field, unit, direction and names (the upload file's column)."""

    item: Item
    field: str
    unit: str
    direction: Direction
    name_zh: str
    name_en: str


ITEM_INFO: Final[Mapping[Item, ItemInfo]] = {
    info.item: info for info in (
        ItemInfo(item="vital_capacity", field="vital_capacity_ml", unit="ml",
                 direction="higher_is_better", name_zh="肺活量", name_en="vital capacity"),
        ItemInfo(item="run_50m", field="run_50m_s", unit="s", direction="lower_is_better",
                 name_zh="50米跑", name_en="50 m run"),
        ItemInfo(item="sit_and_reach", field="sit_and_reach_cm", unit="cm",
                 direction="higher_is_better", name_zh="坐位体前屈", name_en="sit-and-reach"),
        ItemInfo(item="rope_skipping_1min", field="rope_skipping_count", unit="count",
                 direction="higher_is_better", name_zh="一分钟跳绳", name_en="1-minute rope skipping"),
        ItemInfo(item="sit_ups_1min", field="sit_ups_count", unit="count",
                 direction="higher_is_better", name_zh="一分钟仰卧起坐", name_en="1-minute sit-ups"),
        ItemInfo(item="shuttle_run_50m_x8", field="shuttle_run_50m_x8_s", unit="s",
                 direction="lower_is_better", name_zh="50米×8往返跑", name_en="50 m × 8 shuttle run"),
        ItemInfo(item="standing_long_jump", field="standing_long_jump_cm", unit="cm",
                 direction="higher_is_better", name_zh="立定跳远", name_en="standing long jump"),
        ItemInfo(item="pull_ups", field="pull_ups_count", unit="count",
                 direction="higher_is_better", name_zh="引体向上", name_en="pull-ups"),
        ItemInfo(item="run_1000m", field="run_1000m_s", unit="s", direction="lower_is_better",
                 name_zh="1000米跑", name_en="1000 m run"),
        ItemInfo(item="run_800m", field="run_800m_s", unit="s", direction="lower_is_better",
                 name_zh="800米跑", name_en="800 m run"),
    )
}

DEFINITIONS: Final[tuple[tuple[str, str], ...]] = (
    ("两级之间 / between levels",
     "取成绩达到的最高分值等级，不插值 / the highest level whose threshold the result reaches; "
     "no interpolation"),
    ("最低等级以下 / below the lowest level", "低于10分标准记0分 / a result worse than the 10-point level scores 0"),
    ("成绩取值 / item results", "按实测值比较，不取整 / compared as measured, not rounded"),
    ("BMI", "体重(kg)/身高(m)²，精确计算后四舍五入到0.1再查表 / weight/height² computed exactly, "
     "rounded to 0.1 half-up before the band lookup"),
    ("总分 / total", "标准分与附加分不取整；≥90优秀，≥80良好，≥60及格，<60不及格 / standard score and "
     "bonus are not rounded; excellent >= 90, good >= 80, pass >= 60, fail < 60"),
    ("缺测、单项免测 / missing or exempted items", "有单项成绩，不计总分与等级 / item scores only; no "
     "total or band (every item of the grade group is compulsory; nothing is re-weighted)"),
    ("免测 / exempt", "全部免测者不计入及格率等分母 / wholly exempted students are left out of the rates' "
     "denominators and counted separately"),
    ("补测 / retest", "首测不及格者可补测一次，以补测成绩为当年成绩 / a student failing the first test "
     "may retest once; the retest is then the year's result"),
    ("毕业成绩 / graduation score", "毕业当年总分×50% + 本学段其他学年总分平均分×50%；无总分的学年不计入平均，"
     "重读年级只计最后一学年，无其他学年时取毕业当年总分 / 50% of the final year's total + 50% of the mean of the "
     "stage's other years' totals; years without a total are left out, a repeated grade counts once (its latest "
     "year), with no other year the final year's total alone"),
)


class ItemNotApplicable(ValueError):
    """An item that the standard does not test for this sex and grade."""


@dataclass(frozen=True, slots=True)
class _Level:
    score: int
    threshold: Fraction | None  # None: the document leaves this level blank


@dataclass(frozen=True, slots=True, kw_only=True)
class _ItemTable:
    direction: Direction
    levels: tuple[_Level, ...]  # highest score first
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _BmiBand:
    category: BmiCategory
    score: int
    low: Fraction | None
    high: Fraction | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemScore:
    """One item's result, its score and level label, and its bonus points (0 if none)."""

    item: Item
    result: float
    score: int
    level: Band
    bonus: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FitnessResult:
    """A student's scored test. `total` and `band` are None unless every item was tested."""

    sex: Sex
    grade: int
    status: Status
    bmi: Decimal | None
    bmi_category: BmiCategory | None
    bmi_score: int | None
    items: tuple[ItemScore, ...]
    missing_items: tuple[str, ...]
    exempt_items: tuple[str, ...]
    standard_score: Decimal | None
    bonus: int
    total: Decimal | None
    band: Band | None
    failed_items: tuple[Item, ...]
    document_only_tables: tuple[str, ...]
    table_version: str
    reference: str = REFERENCE

    @property
    def follow_up(self) -> bool:
        """A failed total or a failed item: the school's follow-up list (PE teacher, school doctor)."""
        return self.band == "fail" or bool(self.failed_items)


# --- reference tables ------------------------------------------------------------------------


def _read_csv(name: str) -> Iterator[dict[str, str]]:
    with resources.files(_REFERENCE_PACKAGE).joinpath(f"fitness_2014_{name}.csv").open(encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def _sex(value: str) -> Sex:
    if value == "male":
        return "male"
    if value == "female":
        return "female"
    raise ValueError(f"unknown sex {value!r} in the fitness tables")


@cache
def _table_version() -> str:
    digest = hashlib.sha256()
    for name in _TABLE_FILES:
        digest.update(resources.files(_REFERENCE_PACKAGE).joinpath(f"fitness_2014_{name}.csv").read_bytes())
    return f"nspfs-2014+{digest.hexdigest()[:12]}"


TABLE_VERSION: Final = _table_version()
"""The standard and the exact shipped tables that scored a result (stored with every result)."""


@cache
def _status_by_table() -> dict[tuple[str, str, str], str]:
    return {(row["item"], row["sex"], row["grade"]): row["status"]
            for row in _read_csv("verification_summary") if not row["file"].startswith("university")}


@cache
def _item_tables() -> dict[tuple[Item, Sex, int], _ItemTable]:
    levels: dict[tuple[Item, Sex, int], list[_Level]] = {}
    directions: dict[tuple[Item, Sex, int], Direction] = {}
    for row in _read_csv("item_scores"):
        item = row["item"]
        if item not in ITEMS:
            raise ValueError(f"unknown item {item!r} in the fitness tables")
        key = (item, _sex(row["sex"]), int(row["grade"]))
        direction = row["direction"]
        if direction != ITEM_INFO[item].direction:
            raise ValueError(f"{item}: direction {direction!r} disagrees with ITEM_INFO")
        directions[key] = ITEM_INFO[item].direction
        threshold = Fraction(row["threshold"]) if row["threshold"] else None
        levels.setdefault(key, []).append(_Level(int(row["score"]), threshold))
    statuses = _status_by_table()
    return {
        key: _ItemTable(direction=directions[key],
                        levels=tuple(sorted(rows, key=lambda level: -level.score)),
                        status=statuses[(key[0], key[1], str(key[2]))])
        for key, rows in levels.items()
    }


@cache
def _bmi_tables() -> dict[tuple[Sex, int], tuple[_BmiBand, ...]]:
    tables: dict[tuple[Sex, int], list[_BmiBand]] = {}
    for row in _read_csv("bmi_scores"):
        category = row["category"]
        if category not in get_args(BmiCategory):
            raise ValueError(f"unknown BMI category {category!r}")
        tables.setdefault((_sex(row["sex"]), int(row["grade"])), []).append(_BmiBand(
            category=category,  # type: ignore[arg-type]  # checked above
            score=int(row["score"]),
            low=Fraction(row["bmi_min"]) if row["bmi_min"] else None,
            high=Fraction(row["bmi_max"]) if row["bmi_max"] else None,
        ))
    return {key: tuple(bands) for key, bands in tables.items()}


@cache
def _weights() -> dict[tuple[str, Sex], dict[str, int]]:
    weights: dict[tuple[str, Sex], dict[str, int]] = {}
    for row in _read_csv("weights"):
        sexes = SEXES if row["sex"] == "both" else (_sex(row["sex"]),)
        for sex in sexes:
            weights.setdefault((row["grade_group"], sex), {})[row["item"]] = int(row["weight_percent"])
    return weights


@cache
def _bonus_tables() -> dict[tuple[Item, Sex, int], tuple[tuple[int, Fraction], ...]]:
    tables: dict[tuple[Item, Sex, int], list[tuple[int, Fraction]]] = {}
    for row in _read_csv("bonus"):
        key = (row["item"], _sex(row["sex"]), int(row["grade"]))
        tables.setdefault(key, []).append((int(row["bonus_points"]), Fraction(row["beyond_100_by"])))  # type: ignore[arg-type]
    # Most points first: the first step the margin reaches is the award.
    return {key: tuple(sorted(steps, key=lambda step: -step[0])) for key, steps in tables.items()}


# --- lookups ---------------------------------------------------------------------------------


def grade_group(grade: int) -> str:
    """The weights' grade group: ``1-2``, ``3-4``, ``5-6`` or ``7-12``."""
    _check_grade(grade)
    if grade <= 6:
        first = grade - (grade + 1) % 2
        return f"{first}-{first + 1}"
    return "7-12"


def stage_of(grade: int) -> Stage:
    """Primary (1-6), junior (7-9) or senior (10-12) high school."""
    _check_grade(grade)
    return "primary" if grade <= 6 else "junior" if grade <= 9 else "senior"


def items_for(sex: Sex, grade: int) -> tuple[Item, ...]:
    """The tested items (BMI apart) of this sex and grade, in the order of `ITEMS`."""
    weights = _weights()[(grade_group(grade), _checked_sex(sex))]
    return tuple(item for item in ITEMS if item in weights)


def table_status(item: Item | Literal["bmi"], sex: Sex, grade: int) -> str:
    """The table's verification status: ``VERIFIED`` or ``DOCUMENT ONLY`` (see the README)."""
    return _status_by_table()[(item, sex, str(grade))]


def _check_grade(grade: int) -> None:
    if type(grade) is not int or not 1 <= grade <= 12:
        raise ValueError(f"grade must be 1..12, got {grade!r}")


def _checked_sex(sex: str) -> Sex:
    if sex not in SEXES:
        raise ValueError(f"sex must be 'male' or 'female', got {sex!r}")
    return sex


def _item_table(item: str, sex: Sex, grade: int) -> _ItemTable:
    _check_grade(grade)
    table = _item_tables().get((item, _checked_sex(sex), grade))  # type: ignore[arg-type]
    if table is None or item not in items_for(sex, grade):
        tested = ", ".join(items_for(sex, grade))
        raise ItemNotApplicable(f"{item} is not tested in grade {grade} ({sex}); that grade's items are {tested}")
    return table


def _exact(value: float | int | Decimal | str) -> Fraction:
    """The number as written (shortest repr of a float), exactly."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


def score_item(item: Item, sex: Sex, grade: int, result: float) -> int:
    """The item's score: the highest level whose threshold `result` reaches, 0 below the lowest."""
    table = _item_table(item, sex, grade)
    exact = _exact(result)
    higher = table.direction == "higher_is_better"
    for level in table.levels:
        if level.threshold is None:
            continue
        if (exact >= level.threshold) if higher else (exact <= level.threshold):
            return level.score
    return 0


def item_thresholds(item: Item, sex: Sex, grade: int) -> tuple[tuple[int, Fraction], ...]:
    """The item's (score, threshold) levels, highest first, blank levels left out."""
    return tuple((level.score, level.threshold) for level in _item_table(item, sex, grade).levels
                 if level.threshold is not None)


def item_level(score: int) -> Band:
    """The document's label of an item score: 100-90 excellent, 85-80 good, 78-60 pass, below fail."""
    return band_of(Decimal(score))


def bonus_points(item: Item, sex: Sex, grade: int, result: float) -> int:
    """Bonus points for the part of `result` beyond the item's 100-point threshold (0 if none)."""
    steps = _bonus_tables().get((item, _checked_sex(sex), grade))
    if steps is None:
        return 0
    table = _item_table(item, sex, grade)
    top = table.levels[0]
    if top.score != 100 or top.threshold is None:  # pragma: no cover - checked by the table tests
        raise ValueError(f"{item} grade {grade} {sex}: no 100-point threshold")
    exact = _exact(result)
    margin = exact - top.threshold if table.direction == "higher_is_better" else top.threshold - exact
    for points, needed in steps:
        if margin >= needed:
            return points
    return 0


def bmi_category(sex: Sex, grade: int, bmi: Decimal) -> tuple[BmiCategory, int]:
    """The BMI band (and its score) of a BMI already rounded to 0.1."""
    _check_grade(grade)
    value = Fraction(bmi)
    for band in _bmi_tables()[(_checked_sex(sex), grade)]:
        if (band.low is None or value >= band.low) and (band.high is None or value <= band.high):
            return band.category, band.score
    raise ValueError(f"BMI {bmi} falls between the bands of grade {grade} ({sex}); round it to 0.1 first")


def band_of(total: Decimal) -> Band:
    """The band of a total (or an item score): >= 90 excellent, >= 80 good, >= 60 pass, else fail."""
    if total >= _EXCELLENT:
        return "excellent"
    if total >= _GOOD:
        return "good"
    if total >= _PASS:
        return "pass"
    return "fail"


def score_test(
    *,
    sex: Sex,
    grade: int,
    results: Mapping[Item, float],
    height_cm: float | None,
    weight_kg: float | None,
    exempt: bool = False,
    exempt_items: Sequence[str] = (),
) -> FitnessResult:
    """Score one student's test: item scores, BMI, standard score, bonus, total and band.

    `results` holds only the items that were measured (missing is missing, never zero);
    `exempt_items` names items (or ``"bmi"``) exempted on application. Raises
    `ItemNotApplicable` for an item of another grade or sex.
    """
    sex = _checked_sex(sex)
    tested = items_for(sex, grade)
    for item in (*results, *(i for i in exempt_items if i != "bmi")):
        if item not in tested:
            _item_table(item, sex, grade)  # raises ItemNotApplicable with the grade's items
    unverified: list[str] = []
    bmi = category = bmi_score = None
    if height_cm is not None and weight_kg is not None:
        bmi = bmi_rounded(height_cm, weight_kg)  # the exact rounding shared with WS/T 586 and 456
        category, bmi_score = bmi_category(sex, grade, bmi)
        if table_status("bmi", sex, grade) != "VERIFIED":
            unverified.append("bmi")
    scores: list[ItemScore] = []
    for item in tested:
        if item not in results:
            continue
        score = score_item(item, sex, grade, results[item])
        scores.append(ItemScore(item=item, result=results[item], score=score, level=item_level(score),
                                bonus=bonus_points(item, sex, grade, results[item])))
        if table_status(item, sex, grade) != "VERIFIED":
            unverified.append(item)
    exempted = tuple(i for i in ("bmi", *tested) if i in exempt_items)
    missing = tuple(i for i in ("bmi", *tested)
                    if i not in exempted and (bmi is None if i == "bmi" else i not in results))
    bonus = min(sum(score.bonus for score in scores), _BONUS_MAX)
    failed = tuple(score.item for score in scores if score.level == "fail")
    standard = total = band = None
    status: Status
    if exempt:
        status = "exempt"
    elif missing or exempted:
        status = "incomplete"
    else:
        status = "complete"
        weights = _weights()[(grade_group(grade), sex)]
        assert bmi_score is not None  # complete means BMI was measured
        weighted = Decimal(bmi_score * weights["bmi"]) + sum(
            (Decimal(score.score * weights[score.item]) for score in scores), Decimal(0))
        standard = weighted / 100
        total = standard + bonus
        band = band_of(total)
    return FitnessResult(
        sex=sex, grade=grade, status=status, bmi=bmi, bmi_category=category, bmi_score=bmi_score,
        items=tuple(scores), missing_items=() if exempt else missing, exempt_items=exempted,
        standard_score=standard, bonus=bonus, total=total, band=band,
        failed_items=failed, document_only_tables=tuple(unverified), table_version=TABLE_VERSION,
    )


def score_fitness_event(event: FitnessTest) -> FitnessResult:
    """Score a validated `fitness-test` event (its contract has already refused foreign items)."""
    results: dict[Item, float] = {}
    for info in ITEM_INFO.values():
        value = getattr(event, info.field)
        if value is not None:
            results[info.item] = value
    return score_test(sex=event.sex, grade=event.grade, results=results, height_cm=event.height_cm,
                      weight_kg=event.weight_kg, exempt=event.exempt, exempt_items=event.exempt_items)


# --- school year and graduation ---------------------------------------------------------------


def year_attempt(attempts: Sequence[tuple[Literal["first", "retest"], date, Band | None]]) -> int | None:
    """Which of a student's tests in one school year is the year's result (an index), or None.

    Each attempt is (kind, measured on, band). The earliest first test counts, unless it was
    rated fail and a retest follows: then the earliest retest after it counts (one retest only).
    A retest with no first test on record counts as the year's only test.
    """
    ordered = sorted(range(len(attempts)), key=lambda index: (attempts[index][1], index))
    firsts = [index for index in ordered if attempts[index][0] == "first"]
    retests = [index for index in ordered if attempts[index][0] == "retest"]
    if not firsts:
        return retests[0] if retests else None
    first = firsts[0]
    if attempts[first][2] == "fail":
        later = [index for index in retests if attempts[index][1] >= attempts[first][1]]
        if later:
            return later[0]
    return first


def graduation_score(totals_by_grade: Mapping[int, Decimal], final_grade: int) -> Decimal:
    """50 % of the final year's total + 50 % of the mean of the stage's other years' totals."""
    stage = stage_of(final_grade)
    final = totals_by_grade[final_grade]
    others = [total for grade, total in totals_by_grade.items()
              if grade != final_grade and grade < final_grade and stage_of(grade) == stage]
    if not others:
        return final
    return final / 2 + sum(others, Decimal(0)) / len(others) / 2


def graduation_below_minimum(final_grade: int, score: Decimal) -> bool:
    """Senior high graduates below 50 points complete without a regular graduation (结业/肄业)."""
    return stage_of(final_grade) == "senior" and score < _GRADUATION_MINIMUM
