"""Annual health indicators: versioned definitions, confidence intervals and disclosure control.

A metric is a share of a unit of analysis (a student in a school year, or a school): a numerator
over a denominator, each with written inclusion rules and the reference the rule comes from. The
counting itself happens in SQL rollups (`services/migrations/0020_metrics.sql`); this module holds
what is pure: the definitions as data, the school-year calendar, Wilson score intervals, the
year-on-year difference, and small-cell suppression.

Suppression works over a table of cells tied together by additive relations ("this total is the
sum of those parts": sex within a school, schools within a county, counties within the province).
A cell counting fewer than `threshold` students is suppressed (primary); then, until nothing
changes, any relation with exactly one suppressed member gets a second one (complementary), and
a linear-algebra check makes sure no suppressed cell is determined by the published cells and all
the relations together. A suppressed cell then cannot be recovered by subtraction from totals.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Generic, Literal, TypeVar

import numpy as np

from models.fitness import ITEM_INFO

K = TypeVar("K", bound=Hashable)

#: Fewer students than this in a cell and the cell is not published.
SUPPRESSION_THRESHOLD: Final = 10
#: Two-sided 95% normal quantile.
Z95: Final = 1.959963984540054

Unit = Literal["student", "school"]
SuppressionKind = Literal["primary", "complementary"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricDefinition:
    """One indicator, versioned: change any rule and the version changes with it."""

    id: str
    version: int
    title: str
    unit: Unit
    numerator: str
    denominator: str
    inclusion: str
    reference: str
    #: The published table keeps, for each year, which version of each definition produced it.

    @property
    def versioned_id(self) -> str:
        return f"{self.id}@{self.version}"


STUDENT_YEAR_INCLUSION: Final = (
    "Students enrolled at the census date (30 September of the school year) according to the "
    "health records (archive.student_history: the latest record effective on or before that day is "
    "not a leaving record), attributed to the school of that record. Only current (not superseded) "
    "screenings of the school year count; a student screened more than once in the year counts "
    "once, with the latest screening."
)

#: Screening and survey indicators (the fitness ones follow, in `FITNESS_METRICS`).
_SCREENING_METRICS: Final[tuple[MetricDefinition, ...]] = (
    MetricDefinition(
        id="health_literacy", version=1, title="Health literacy level", unit="student",
        numerator="surveyed students whose health-literacy total is at least 80% of the full score",
        denominator="students with a scored health-literacy survey (hl-student) in the year",
        inclusion=STUDENT_YEAR_INCLUSION,
        reference="China health literacy monitoring: literate at >= 80% of the full score",
    ),
    MetricDefinition(
        id="myopia", version=1, title="Screening myopia rate", unit="student",
        numerator="students with screening myopia (UCVA < 5.0 and SE <= -0.50 D in either eye)",
        denominator="students with a vision screening that could be classified for myopia",
        inclusion=STUDENT_YEAR_INCLUSION,
        reference="NHC technical guideline for myopia prevention and control (2021, 2024)",
    ),
    MetricDefinition(
        id="visual_impairment", version=1, title="Visual impairment rate", unit="student",
        numerator="students whose worse eye has mild, moderate or severe low vision",
        denominator="students with a vision screening graded for impairment",
        inclusion=STUDENT_YEAR_INCLUSION + " Reported by grade as well as by the other breakdowns.",
        reference="GB/T 11533-2011 standard logarithmic visual acuity chart grades",
    ),
    MetricDefinition(
        id="overweight_wst586", version=1, title="Overweight rate (WS/T 586)", unit="student",
        numerator="students classified overweight (not obese) by the WS/T 586-2018 BMI cut-offs",
        denominator="students with a plausible growth screening classifiable by WS/T 586 (age 6-18)",
        inclusion=STUDENT_YEAR_INCLUSION + " Measurements flagged implausible are excluded.",
        reference="WS/T 586-2018 Screening for overweight and obesity among school-age children",
    ),
    MetricDefinition(
        id="obesity_wst586", version=1, title="Obesity rate (WS/T 586)", unit="student",
        numerator="students classified obese by the WS/T 586-2018 BMI cut-offs",
        denominator="students with a plausible growth screening classifiable by WS/T 586 (age 6-18)",
        inclusion=STUDENT_YEAR_INCLUSION + " Measurements flagged implausible are excluded.",
        reference="WS/T 586-2018",
    ),
    MetricDefinition(
        id="overweight_who", version=1, title="Overweight rate (WHO z-score)", unit="student",
        numerator="students with BMI-for-age z > +1 and <= +2 (WHO 2007)",
        denominator="students with a plausible growth screening and a BMI-for-age z-score (5-19 years)",
        inclusion=STUDENT_YEAR_INCLUSION + " Measurements flagged implausible are excluded.",
        reference="WHO 2007 growth reference for 5-19 years",
    ),
    MetricDefinition(
        id="obesity_who", version=1, title="Obesity rate (WHO z-score)", unit="student",
        numerator="students with BMI-for-age z > +2 (WHO 2007)",
        denominator="students with a plausible growth screening and a BMI-for-age z-score (5-19 years)",
        inclusion=STUDENT_YEAR_INCLUSION + " Measurements flagged implausible are excluded.",
        reference="WHO 2007 growth reference for 5-19 years",
    ),
    MetricDefinition(
        id="wasting", version=1, title="Wasting rate (WS/T 456)", unit="student",
        numerator="students with mild or moderate-to-severe wasting by the WS/T 456-2014 BMI cut-offs",
        denominator="students with a plausible growth screening classifiable by WS/T 456",
        inclusion=STUDENT_YEAR_INCLUSION + " Measurements flagged implausible are excluded.",
        reference="WS/T 456-2014 Screening standard for malnutrition of school-age children",
    ),
    MetricDefinition(
        id="depression_positive", version=1, title="Positive depression screen rate", unit="student",
        numerator="students whose PHQ-A total is at or above the instrument's positive cut-off",
        denominator="students with a scored PHQ-A in the year (latest of the terms)",
        inclusion=STUDENT_YEAR_INCLUSION,
        reference="PHQ-A (PHQ-9 modified for adolescents), cut-off 10",
    ),
    MetricDefinition(
        id="anxiety_positive", version=1, title="Positive anxiety screen rate", unit="student",
        numerator="students whose GAD-7 total is at or above the instrument's positive cut-off",
        denominator="students with a scored GAD-7 in the year (latest of the terms)",
        inclusion=STUDENT_YEAR_INCLUSION,
        reference="GAD-7, cut-off 10",
    ),
    MetricDefinition(
        id="screening_coverage", version=1, title="Screening coverage", unit="student",
        numerator="enrolled students with both a vision and a growth screening in the school year",
        denominator=(
            "students enrolled at the census date according to the health records (not "
            "archive.schools.enrollment, the school's declared size, which the archive cannot break "
            "down by sex, grade or group)"
        ),
        inclusion=STUDENT_YEAR_INCLUSION,
        reference="National student physical health surveillance: annual screening of every student",
    ),
    MetricDefinition(
        id="school_doctor", version=1, title="Schools required to have a school doctor that do",
        unit="school",
        numerator="required schools with at least one school doctor",
        denominator="schools that are boarding schools or have more than 600 students enrolled",
        inclusion=(
            "Schools in archive.schools as they stand at publication (enrollment and staffing are "
            "not kept by year). Counts schools, not students: no small-cell suppression."
        ),
        reference="School Health Work Regulations (学校卫生工作条例), art. 20",
    ),
)

# The common student-year rule first (the report states it once and shows only what follows it).
_FITNESS_INCLUSION: Final = STUDENT_YEAR_INCLUSION + (
    " Fitness tests, in place of the latest screening: the year's result of each "
    "student is the first fitness test of the school year, or the retest after a first test rated fail "
    "(rules.csv: one retest). Scoring: each item scores the highest level its result reaches (no "
    "interpolation, 0 below the 10-point level, results not rounded); BMI rounded to 0.1 half-up; the "
    "standard score and total are not rounded and the bands are >= 90 excellent, >= 80 good, >= 60 pass. "
    "Wholly exempted students (免测) are in no denominator and are counted separately."
)
_FITNESS_REFERENCE: Final = "国家学生体质健康标准（2014年修订）, 教体艺〔2014〕5号, 一、说明 item 7"


def _fitness_metrics() -> tuple[MetricDefinition, ...]:
    overall = (
        MetricDefinition(
            id="fitness_pass", version=1, title="Physical fitness: pass rate (体质健康及格率)", unit="student",
            numerator="students whose year total (standard score + bonus) is at least 60 (pass, good or excellent)",
            denominator=("students with a complete fitness test in the year (every item of the grade group, "
                         "BMI included)"),
            inclusion=_FITNESS_INCLUSION, reference=_FITNESS_REFERENCE,
        ),
        MetricDefinition(
            id="fitness_good_or_above", version=1, title="Physical fitness: good-and-above rate (优良率)",
            unit="student",
            numerator="students whose year total is at least 80 (good or excellent)",
            denominator="students with a complete fitness test in the year",
            inclusion=_FITNESS_INCLUSION, reference=_FITNESS_REFERENCE,
        ),
        MetricDefinition(
            id="fitness_excellent", version=1, title="Physical fitness: excellent rate (优秀率)", unit="student",
            numerator="students whose year total is at least 90",
            denominator="students with a complete fitness test in the year",
            inclusion=_FITNESS_INCLUSION, reference=_FITNESS_REFERENCE,
        ),
    )
    items = tuple(
        MetricDefinition(
            id=f"fitness_item_{item}", version=1, unit="student",
            title=f"Physical fitness item: {info.name_en} pass rate ({info.name_zh}及格率)",
            numerator=f"students whose {info.name_en} scores at least 60",
            denominator=f"students with a {info.name_en} result in their year's test (the item's grades only)",
            inclusion=_FITNESS_INCLUSION, reference="国家学生体质健康标准（2014年修订）, 表1-3 … 表1-16",
        )
        for item, info in ITEM_INFO.items()
    )
    exempt = MetricDefinition(
        id="fitness_exempt", version=1, title="Physical fitness: exempt students (免测人数)", unit="student",
        numerator="students wholly exempted from the year's test (免测, on application with a medical certificate)",
        denominator="students with a fitness result in the year (complete, incomplete or exempt)",
        inclusion=_FITNESS_INCLUSION + " The count is withheld like every cell: no published count (nor its "
        "complement) from 1 to 9.",
        reference="国家学生体质健康标准（2014年修订）, 一、说明 item 10",
    )
    graduation = tuple(
        MetricDefinition(
            id=f"fitness_graduation_{band_id}", version=1, unit="student",
            title=f"Physical fitness at graduation: {title}",
            numerator=f"graduating students whose graduation score is {threshold}",
            denominator=("students tested in the final grade of their stage (grade 6 or 9) in the year who have a "
                         "graduation score (a complete final-year test)"),
            inclusion=_FITNESS_INCLUSION + " " + GRADUATION_RULE,
            reference="国家学生体质健康标准（2014年修订）, 教体艺〔2014〕5号, 一、说明 items 7-9",
        )
        for band_id, title, threshold in (
            ("pass", "pass rate (毕业成绩及格率)", "at least 60"),
            ("good_or_above", "good-and-above rate (毕业成绩优良率)", "at least 80"),
            ("excellent", "excellent rate (毕业成绩优秀率)", "at least 90"),
        )
    )
    return (*overall, *items, exempt, *graduation)


#: The graduation score's rule as the report states it (rules.csv graduation_score and retest).
GRADUATION_RULE: Final = (
    "Graduation score = 50% of the final year's total + 50% of the mean of the totals of the stage's other "
    "years (rules.csv graduation_score); each year's total is the year's result by the retest rule (a first "
    "test rated fail may be retested once; the retest is then the year's result); years without a total "
    "(a missing or exempted item) are left out of the mean, a repeated grade counts once (its latest year), "
    "and with no other year on record the final year's total alone is the score; bands as for the year total."
)

FITNESS_METRICS: Final[tuple[MetricDefinition, ...]] = _fitness_metrics()
#: The indicator set, in publication order: screenings and surveys, then physical fitness.
METRICS: Final[tuple[MetricDefinition, ...]] = (*_SCREENING_METRICS, *FITNESS_METRICS)

METRICS_BY_ID: Final[Mapping[str, MetricDefinition]] = {metric.id: metric for metric in METRICS}

#: Breakdown -> its categories. "all" is the total every other breakdown adds up to.
BREAKDOWNS: Final[Mapping[str, tuple[str, ...]]] = {
    "all": ("all",),
    "sex": ("male", "female"),
    "stage": ("primary", "junior"),
    "urban_rural": ("urban", "rural"),
    "left_behind": ("yes", "no"),
    "disability": ("yes", "no"),
    "grade": tuple(str(grade) for grade in range(1, 10)),
}


def census_date(year: int) -> date:
    """The day enrolment is counted for school year `year`."""
    return date(year, 9, 30)


def stage_of_grade(grade: int) -> str:
    """Grades 1-6 are primary, 7-9 junior secondary (a nine-year school has both)."""
    if not 1 <= grade <= 9:
        raise ValueError(f"grade {grade} outside compulsory education (1-9)")
    return "primary" if grade <= 6 else "junior"


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (Wilson 1927; Newcombe 1998, method 3)."""
    if total <= 0:
        raise ValueError("a proportion needs a positive denominator")
    if not 0 <= successes <= total:
        raise ValueError(f"{successes} successes out of {total}")
    p = successes / total
    z2 = z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    # The closed form is exact at the ends; rounding must not push it past them.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == total else min(1.0, centre + half)
    return low, high


def difference_interval(k1: int, n1: int, k0: int, n0: int, z: float = Z95) -> tuple[float, float, float]:
    """Change p1 - p0 with Newcombe's hybrid score interval (1998, method 10).

    Treats the two years as independent samples; the same students are screened in consecutive
    years, so the interval is conservative for a cohort that stays.
    """
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson_interval(k1, n1, z)
    l0, u0 = wilson_interval(k0, n0, z)
    delta = p1 - p0
    return delta, delta - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), delta + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)


# --- Suppression --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Relation(Generic[K]):
    """`total` equals the sum of `parts` (a part absent from the table counts zero)."""

    total: K
    parts: tuple[K, ...]

    @property
    def members(self) -> tuple[K, ...]:
        return (self.total, *self.parts)


def _sort_key(key: Hashable) -> str:
    return repr(key)


def _relation_rows(unknown: Sequence[K], relations: Sequence[Relation[K]]) -> list[dict[int, float]]:
    """Each relation touching an unknown as a sparse row {column: coefficient} over `unknown`."""
    index = {key: i for i, key in enumerate(unknown)}
    rows: list[dict[int, float]] = []
    for relation in relations:
        row: dict[int, float] = {}
        if relation.total in index:
            row[index[relation.total]] = row.get(index[relation.total], 0.0) + 1.0
        for part in relation.parts:
            if part in index:
                row[index[part]] = row.get(index[part], 0.0) - 1.0
        if row:
            rows.append(row)
    return rows


def _dense(rows: Sequence[dict[int, float]], columns: Sequence[int]) -> np.ndarray:
    position = {column: j for j, column in enumerate(columns)}
    matrix = np.zeros((len(rows), len(columns)), dtype=np.float64)
    for i, row in enumerate(rows):
        for column, value in row.items():
            matrix[i, position[column]] += value
    return matrix


def _rank(singular: np.ndarray, shape: tuple[int, ...]) -> int:
    tolerance = max(shape) * np.finfo(np.float64).eps * (singular[0] if singular.size else 0.0)
    return int(np.sum(singular > max(tolerance, 1e-9)))


def _null_space(matrix: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the null space of `matrix`, as columns."""
    if matrix.shape[0] == 0:
        return np.eye(matrix.shape[1])
    _, singular, vt = np.linalg.svd(matrix)
    return np.asarray(vt[_rank(singular, matrix.shape):].T)


def _free_dense(rows: Sequence[dict[int, float]], size: int) -> np.ndarray:
    """Whether each unknown is free (some null vector is non-zero there), by one SVD of the whole system."""
    null_space = _null_space(_dense(rows, range(size)))
    return np.asarray(np.any(np.abs(null_space) > 1e-9, axis=1))


def _free_by_blocks(rows: Sequence[dict[int, float]], size: int) -> np.ndarray:
    """The same answer as `_free_dense`, by blocks: what makes a province's refresh grow linearly.

    The rows are split into local ones, which join the unknowns into blocks of at most
    `BLOCK_UNKNOWNS` (a school's categories), and coupling ones (a county's cell over all its
    schools). The null space of the whole system is the null space of the coupling rows
    restricted to the null space N of the local rows: {N w : C N w = 0}. N is block-diagonal, so
    it costs one small SVD per block; C N has only as many rows as there are coupling rows. An
    unknown i is free when row i of that null space is non-zero, that is when the projection of
    N[i] off the row space of C N is non-zero. Exact in exact arithmetic; one dense SVD of the
    whole system instead grows with the cube of the number of schools.
    """
    parent = list(range(size))
    members: dict[int, list[int]] = {i: [i] for i in range(size)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    local: list[dict[int, float]] = []
    coupling: list[dict[int, float]] = []
    for row in sorted(rows, key=len):
        roots = {root(column) for column in row}
        if sum(len(members[r]) for r in roots) > BLOCK_UNKNOWNS:
            coupling.append(row)
            continue
        first, *others = roots
        for other in others:
            parent[other] = first
            members[first].extend(members.pop(other))
        local.append(row)
    blocks = [sorted(columns) for columns in members.values()]
    block_of = {column: b for b, columns in enumerate(blocks) for column in columns}
    local_rows: list[list[dict[int, float]]] = [[] for _ in blocks]
    for row in local:
        local_rows[block_of[next(iter(row))]].append(row)
    bases = [_null_space(_dense(local_rows[b], columns)) for b, columns in enumerate(blocks)]
    offsets = np.cumsum([0] + [basis.shape[1] for basis in bases])
    coupling_matrix = _dense(coupling, range(size))
    coupled = np.zeros((len(coupling), int(offsets[-1])), dtype=np.float64)
    for b, (columns, basis) in enumerate(zip(blocks, bases, strict=True)):
        if basis.shape[1]:
            coupled[:, offsets[b]:offsets[b + 1]] = coupling_matrix[:, columns] @ basis
    if coupled.shape[0] and coupled.shape[1]:
        _, singular, vt = np.linalg.svd(coupled, full_matrices=False)
        row_space = vt[:_rank(singular, coupled.shape)]
    else:
        row_space = np.zeros((0, coupled.shape[1]))
    free = np.zeros(size, dtype=bool)
    for b, (columns, basis) in enumerate(zip(blocks, bases, strict=True)):
        if not basis.shape[1]:
            continue
        # Row i of the null space is N[i] W; its norm is that of N[i] minus its projection on the
        # row space of C N (rows `row_space`, orthonormal). As N[i] is zero outside its block, the
        # squared norm is |N[i]|² - |R_b N[i]|², from the block's columns of R only. That
        # difference loses the digits of a norm near zero, so it only settles the rows clearly
        # free; the others (the determined cells, few) take the projection over every column, as
        # `_free_dense` would: the same answer, without a block-by-D product per block (at a
        # million students that product was 5 of the 7 s of the largest system, growing with the
        # square of the schools).
        coefficients = basis @ row_space[:, offsets[b]:offsets[b + 1]].T
        squared = np.einsum("ij,ij->i", basis, basis) - np.einsum("ij,ij->i", coefficients, coefficients)
        clear = squared > _CLEARLY_FREE
        unsure = np.flatnonzero(~clear)
        if unsure.size:
            offset = np.zeros((unsure.size, row_space.shape[1]))
            offset[:, offsets[b]:offsets[b + 1]] = basis[unsure]
            norms = np.linalg.norm(offset - coefficients[unsure] @ row_space, axis=1)
            clear[unsure] = norms > 1e-9
        free[columns] = clear
    return free


# A squared norm above this is far beyond the rounding of |N[i]|² - |R_b N[i]|² (about 1e-16 for
# rows of norm at most 1): the row is free whatever the rounding.
_CLEARLY_FREE: Final = 1e-8


#: Above this many suppressed cells `determined_cells` works by blocks of at most this many.
BLOCK_UNKNOWNS: Final = 256


def determined_cells(suppressed: Iterable[K], relations: Sequence[Relation[K]]) -> set[K]:
    """Suppressed cells whose value follows exactly from the relations and the published cells.

    The relations over the suppressed cells are a linear system A x = b (b from published
    values). x_i is determined exactly when the unit vector e_i lies in the row space of A, that
    is when every vector of A's null space is zero at i. Small systems take one SVD; large ones
    (a province's schools) go by blocks (`_free_by_blocks`), which gives the same answer.
    """
    unknown = sorted(set(suppressed), key=_sort_key)
    if not unknown:
        return set()
    rows = _relation_rows(unknown, relations)
    if not rows:
        return set()
    free = _free_dense(rows, len(unknown)) if len(unknown) <= BLOCK_UNKNOWNS else _free_by_blocks(rows, len(unknown))
    return {key for key, is_free in zip(unknown, free, strict=True) if not is_free}


def suppress(
    counts: Mapping[K, int],
    relations: Sequence[Relation[K]],
    threshold: int = SUPPRESSION_THRESHOLD,
    *,
    also_primary: Iterable[K] = (),
) -> dict[K, SuppressionKind]:
    """The cells to withhold, each marked primary (too few) or complementary (protects another).

    `counts` are the students behind each cell (the denominators); numerators, rates and
    intervals of a withheld cell are withheld with it. Complementary cells are chosen among the
    relation's unsuppressed members, the smallest count first, parts before totals, so as little
    as possible is lost and totals stay published where they can.
    """
    result: dict[K, SuppressionKind] = {key: "primary" for key, n in counts.items() if n < threshold}
    # Cells withheld for another count they publish (a numerator or its complement): the same
    # relations hold for every count of a cell, so complementary suppression protects them too.
    result.update({key: "primary" for key in also_primary if key in counts})
    live = [r for r in relations if any(member in counts for member in r.members)]

    def complement(relation: Relation[K]) -> bool:
        candidates = [m for m in relation.parts if m in counts and m not in result]
        if not candidates and relation.total in counts and relation.total not in result:
            candidates = [relation.total]
        if not candidates:
            return False
        chosen = min(candidates, key=lambda m: (counts[m], _sort_key(m)))
        result[chosen] = "complementary"
        return True

    while True:
        changed = True
        while changed:
            changed = False
            for relation in live:
                hidden = sum(1 for m in relation.members if m in result)
                if hidden == 1 and complement(relation):
                    changed = True
        exposed = determined_cells(result, live)
        if not exposed:
            return result
        progressed = False
        for key in sorted(exposed, key=_sort_key):
            for relation in live:
                if key in relation.members and complement(relation):
                    progressed = True
                    break
        if not progressed:
            # Every relation around the exposed cells is fully withheld: nothing left to protect with.
            return result


# --- Tables of cells ----------------------------------------------------------------------------

#: (level, area_id, breakdown, category); level is "province", "county" or "school".
CellKey = tuple[str, str, str, str]
PROVINCE: Final = "province"


@dataclass(frozen=True, slots=True, kw_only=True)
class FineCell:
    """The finest rollup cell: one school, one combination of student characteristics."""

    school_id: str
    county_id: str
    urban_rural: str
    sex: str
    grade: int
    left_behind: bool
    disability: bool
    denominator: int
    numerator: int


def aggregate(cells: Iterable[FineCell]) -> dict[CellKey, tuple[int, int]]:
    """(denominator, numerator) of every published cell: each level, area and breakdown.

    Column by column: each breakdown's category of every fine cell is a small integer code, and
    each level's cells are the sums (`numpy.bincount`) over area code x category code. A cell is
    published when at least one fine cell with students falls in it. At a million students a year
    has some 400,000 fine cells per metric: the former loop over cells and breakdowns took about a
    third of the indicators' time.
    """
    kept = [cell for cell in cells if cell.denominator > 0]
    if not kept:
        return {}
    size = len(kept)
    denominators = np.fromiter((cell.denominator for cell in kept), dtype=np.int64, count=size)
    numerators = np.fromiter((cell.numerator for cell in kept), dtype=np.int64, count=size)
    grades = np.fromiter((cell.grade for cell in kept), dtype=np.int64, count=size)
    if grades.min() < 1 or grades.max() > 9:
        bad = int(grades[(grades < 1) | (grades > 9)][0])
        raise ValueError(f"grade {bad} outside compulsory education (1-9)")
    school_names, school_codes = np.unique(np.array([cell.school_id for cell in kept], dtype=object),
                                           return_inverse=True)
    county_of = {cell.school_id: cell.county_id for cell in kept}
    county_names, county_of_code = np.unique(np.array([county_of[s] for s in school_names], dtype=object),
                                             return_inverse=True)
    county_codes = county_of_code[school_codes]

    def coded(values: list[str]) -> tuple[list[str], np.ndarray]:
        names, codes = np.unique(np.array(values, dtype=object), return_inverse=True)
        return [str(name) for name in names], codes

    yes_no = ["no", "yes"]
    breakdowns: list[tuple[str, list[str], np.ndarray]] = [
        ("all", ["all"], np.zeros(size, dtype=np.int64)),
        ("sex", *coded([cell.sex for cell in kept])),
        ("stage", ["primary", "junior"], (grades >= 7).astype(np.int64)),
        ("urban_rural", *coded([cell.urban_rural for cell in kept])),
        ("left_behind", yes_no, np.fromiter((cell.left_behind for cell in kept), dtype=np.int64, count=size)),
        ("disability", yes_no, np.fromiter((cell.disability for cell in kept), dtype=np.int64, count=size)),
        ("grade", [str(g) for g in range(1, 10)], grades - 1),
    ]
    levels: list[tuple[str, list[str], np.ndarray]] = [
        (PROVINCE, [PROVINCE], np.zeros(size, dtype=np.int64)),
        ("county", [str(name) for name in county_names], county_codes),
        ("school", [str(name) for name in school_names], school_codes),
    ]
    totals: dict[CellKey, tuple[int, int]] = {}
    for level, areas, area_codes in levels:
        for breakdown, categories, category_codes in breakdowns:
            width = len(categories)
            keys = area_codes * width + category_codes
            n = np.bincount(keys, weights=denominators, minlength=len(areas) * width)
            k = np.bincount(keys, weights=numerators, minlength=len(areas) * width)
            present = np.flatnonzero(n)
            for key, n_sum, k_sum in zip(present.tolist(), n[present].tolist(), k[present].tolist(), strict=True):
                area, category = divmod(key, width)
                totals[level, areas[area], breakdown, categories[category]] = (int(n_sum), int(k_sum))
    return totals


def relations_for(keys: Iterable[CellKey], county_of_school: Mapping[str, str]) -> list[Relation[CellKey]]:
    """Every additive relation among the cells: categories within an area, areas within their parent."""
    present = set(keys)
    by_area: dict[tuple[str, str], dict[str, list[CellKey]]] = {}
    children: dict[CellKey, list[CellKey]] = {}
    for key in present:
        level, area, breakdown, _ = key
        if breakdown != "all":
            by_area.setdefault((level, area), {}).setdefault(breakdown, []).append(key)
        if level == "school":
            parent: CellKey = ("county", county_of_school[area], key[2], key[3])
        elif level == "county":
            parent = (PROVINCE, PROVINCE, key[2], key[3])
        else:
            continue
        children.setdefault(parent, []).append(key)
    relations: list[Relation[CellKey]] = []
    for (level, area), breakdowns in sorted(by_area.items()):
        for _, parts in sorted(breakdowns.items()):
            relations.append(Relation(total=(level, area, "all", "all"), parts=tuple(sorted(parts))))
    for parent, parts in sorted(children.items()):
        relations.append(Relation(total=parent, parts=tuple(sorted(parts))))
    return relations


@dataclass(frozen=True, slots=True, kw_only=True)
class IndicatorCell:
    """One published value. Withheld cells keep their key and the reason, nothing else."""

    metric_id: str
    metric_version: int
    school_year: int
    level: str
    area_id: str
    breakdown: str
    category: str
    denominator: int | None
    numerator: int | None
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    previous_rate: float | None
    change: float | None
    change_ci_low: float | None
    change_ci_high: float | None
    suppressed: SuppressionKind | None


def published_counts(rows: Iterable[IndicatorCell]) -> dict[CellKey, tuple[int, int]]:
    """(denominator, numerator) of each published cell of a year's table (withheld ones left out)."""
    return {(row.level, row.area_id, row.breakdown, row.category): (row.denominator, row.numerator)
            for row in rows
            if row.suppressed is None and row.denominator is not None and row.numerator is not None}


def indicator_table(
    metric: MetricDefinition,
    year: int,
    current: Iterable[FineCell],
    previous: Iterable[FineCell] = (),
    threshold: int = SUPPRESSION_THRESHOLD,
    *,
    previous_published: Mapping[CellKey, tuple[int, int]] | None = None,
) -> list[IndicatorCell]:
    """A year's cells of one student-unit metric, suppressed, with intervals and the change since last year.

    The previous year is suppressed on its own table first: a change is shown only where both
    years' cells are published. A caller that has the previous year's table already (the cells it
    published: `published_counts`) passes it as `previous_published` instead of `previous`, and
    that year is not suppressed again: the same answer, as its table is this function's output.
    """
    current = list(current)
    previous = list(previous)
    if previous and previous_published is not None:
        raise ValueError("pass the previous year's fine cells or its published cells, not both")

    def suppressed_table(
        cells: list[FineCell],
    ) -> tuple[dict[CellKey, tuple[int, int]], dict[CellKey, SuppressionKind]]:
        counts = aggregate(cells)
        counties = {cell.school_id: cell.county_id for cell in cells}
        # No published count from 1 to threshold-1: the students counted, those with the outcome
        # (numerator) and those without it (complement).
        small = {key for key, (n, k) in counts.items() if 0 < k < threshold or 0 < n - k < threshold}
        withheld = suppress({key: n for key, (n, _) in counts.items()}, relations_for(counts, counties), threshold,
                            also_primary=small)
        return counts, withheld

    counts, withheld = suppressed_table(current)
    if previous_published is None:
        before, before_withheld = suppressed_table(previous) if previous else ({}, {})
        previous_published = {key: value for key, value in before.items() if key not in before_withheld}
    rows: list[IndicatorCell] = []
    for key in sorted(counts):
        n, k = counts[key]
        level, area, breakdown, category = key
        kind = withheld.get(key)
        published = kind is None
        low, high = wilson_interval(k, n)
        previous_rate = change = change_low = change_high = None
        if published and key in previous_published:
            n0, k0 = previous_published[key]
            previous_rate = k0 / n0
            change, change_low, change_high = difference_interval(k, n, k0, n0)
        rows.append(IndicatorCell(
            metric_id=metric.id, metric_version=metric.version, school_year=year,
            level=level, area_id=area, breakdown=breakdown, category=category,
            denominator=n if published else None, numerator=k if published else None,
            rate=k / n if published else None, ci_low=low if published else None, ci_high=high if published else None,
            previous_rate=previous_rate, change=change, change_ci_low=change_low, change_ci_high=change_high,
            suppressed=kind,
        ))
    return rows


@dataclass(frozen=True, slots=True, kw_only=True)
class SchoolStaffing:
    """What the school-doctor indicator needs to know about a school."""

    school_id: str
    county_id: str
    urban_rural: str
    boarding: bool
    enrollment: int
    school_doctors: int

    @property
    def requires_doctor(self) -> bool:
        return self.boarding or self.enrollment > 600


def school_doctor_table(
    year: int, schools: Iterable[SchoolStaffing], previous: Iterable[SchoolStaffing] = ()
) -> list[IndicatorCell]:
    """Share of required schools with a school doctor, per school, county and province, by urban/rural."""
    metric = METRICS_BY_ID["school_doctor"]

    def counts_of(items: Iterable[SchoolStaffing]) -> dict[CellKey, tuple[int, int]]:
        totals: dict[CellKey, tuple[int, int]] = {}
        for school in items:
            if not school.requires_doctor:
                continue
            hit = 1 if school.school_doctors >= 1 else 0
            for level, area in ((PROVINCE, PROVINCE), ("county", school.county_id), ("school", school.school_id)):
                for breakdown, category in (("all", "all"), ("urban_rural", school.urban_rural)):
                    n, k = totals.get((level, area, breakdown, category), (0, 0))
                    totals[level, area, breakdown, category] = (n + 1, k + hit)
        return totals

    counts, before = counts_of(schools), counts_of(previous)
    rows: list[IndicatorCell] = []
    for key in sorted(counts):
        n, k = counts[key]
        low, high = wilson_interval(k, n)
        previous_rate = change = change_low = change_high = None
        if key in before:
            n0, k0 = before[key]
            previous_rate = k0 / n0
            change, change_low, change_high = difference_interval(k, n, k0, n0)
        rows.append(IndicatorCell(
            metric_id=metric.id, metric_version=metric.version, school_year=year,
            level=key[0], area_id=key[1], breakdown=key[2], category=key[3],
            denominator=n, numerator=k, rate=k / n, ci_low=low, ci_high=high,
            previous_rate=previous_rate, change=change, change_ci_low=change_low, change_ci_high=change_high,
            suppressed=None,
        ))
    return rows
