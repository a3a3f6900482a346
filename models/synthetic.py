"""A deterministic synthetic province: schools, pupils and their screenings over school years.

`generate` streams the rows of the six import files (`models.importing.COLUMNS`) plus "truth"
rows, as CSV-ready strings. It is for load tests, demos and for scoring screening models: the
truth rows hold the probabilities the generator itself used to draw each next outcome.

**Determinism and memory.** Every draw comes from a numpy ``Generator`` seeded with
``(seed, purpose, county, school)``; nothing depends on wall time, hashing or dict order, so a
spec always gives byte-identical rows, and counties can be generated apart and concatenated
(`generate_blocks(counties=...)`). One school is simulated at a time (its pupils as numpy
arrays; a school is capped at 6,000 on enrolment), so peak memory does not grow with the
province. Deliberately bad rows use a stream of their own: the bad-record rate never changes
the pupils.

**Nothing is real.** Names are random syllables. Student numbers are ``G`` + 18 digits like a
national student number but start with ``99``, which GB/T 2260 assigns to no province; county
ids are ``99cccc`` and school ids ``99ccccssss``.

Assumptions, and the baseline of `STANDARDS.md` §6 (`epi_baselines.csv`, `henan_scale.csv`)
each one reproduces. [A] marks an assumption with no source behind the number.

Province and schools
  * One county per ~93,700 pupils (Henan: 14.71 M compulsory pupils in ~157 county-level
    units), at most 157; county sizes lognormal (sigma 0.3) apportioned exactly to `students`.
    County types in Henan's proportions, 54 districts : 21 cities : 82 counties, with 88 %,
    55 % and 22 % of their schools urban [A].
  * Schools are drawn until the county's pupils are placed: primary/junior/nine-year shares
    62/24/14 % urban and 74/15/11 % rural [A]; enrolment lognormal (sigma 0.55) with medians
    1,100/1,500/1,600 urban and 230/800/450 rural [A], clipped to 25..6,000. That puts ~65 %
    of pupils in primary grades (Henan 2023: 9.63 of 14.71 M) and many rural schools under 100.
  * Boarding schools: 3/20/10 % urban, 18/72/50 % rural [A]; in them 15 %, 45 % and 80 % of
    grades 1-3, 4-6 and 7-9 board [A].
  * School doctors: a school of 600+ pupils or a boarding school must have health staff at
    600:1 (《学校卫生工作条例》 and the 2021 staffing rule); 82 % urban and 55 % rural of
    those have them [A], so about a quarter of the schools that need one have none; 10 % of
    the other schools have one.

Pupils
  * ``students`` is the enrolment at the start of the first school year. Grade sizes follow
    national births of each cohort (NBS, rounded); each later year brings a new entry grade
    (grade 1, or grade 7 in a junior school: junior grades are 7..9), Poisson, scaled by
    births and by 1.02/yr urban, 0.97/yr rural for urbanisation [A]. The top grade leaves in
    July (a ``leave`` record); 1.5 %/yr transfer to another school of the county and 0.3 %/yr
    leave [A]. A transferred pupil leaves the panel: the receiving school does not register
    them.
  * 47 % girls (sex ratio at birth ~113). Born 1 September .. 31 August six years before
    grade 1 (the 31 August rule), 5 % a year older [A]: ages 6-7 in grade 1, 14-16 in grade 9.
  * Left-behind 17 % rural, 4 % urban, 3 %/yr change (an ``update`` record) [A]; disability
    1.5 %.
  * Each pupil's latent history is simulated from the first screening of grade 1, so pupils
    first seen in grade 5 bring four years of myopia progression and growth.

Dates: the growth and vision screening starts between 10 September and 20 November, one grade
a weekday; PHQ-A and GAD-7 every term (October-December, April-June); hl-student once a year
(May-June). Questionnaires start at ``survey_from_grade`` (4, about age 9); PHQ-A's four
supplementary items are asked from grade 7 (13 answers, 9 below).

Vision (myopia rows: age 6 14.5 %, primary 36 %, junior 71.6 %, grade 1 12.9-15.7 %, grade 6
59 %, junior 1 64.9 %, junior 3 77 %)
  * Latent worse-eye non-cycloplegic SE. At the first screening of grade 1 a pupil is myopic
    with logit -2.15 + 0.25 urban + 0.15 girl + 0.55 u, u ~ N(0, 1) being unobserved near work
    and little outdoor time; the others have a hyperopic reserve of N(0.9 - 0.25 u - 0.1 urban,
    0.5) D, at least -0.3.
  * Each year a non-myope turns myopic with p = sigmoid(alpha_grade - 1.1 SE + 0.25 urban +
    0.15 girl + 0.55 u + e), e ~ N(0, 0.5) unobserved, and otherwise loses 0.15 + 0.08 u D
    (staying above -0.3). New myopes fall to -0.5 D minus Exp(0.35); myopes progress
    0.5 + 0.15 urban + 0.15 u - 0.05 (grade - 5) D a year, faster when young and urban.
    alpha_grade is calibrated to the grade gradient above; the stage and age-6 shares follow.
  * Screening: SE per eye to 0.25 D with N(0, 0.2) noise, the fellow eye + |N(0, 0.3)|; UCVA
    logMAR 0.12 + 0.28 |SE| + N(0, 0.08) for myopic eyes, about 5.0-5.1 otherwise; 6 % have
    reduced acuity without myopia (amblyopia, hyperopia, astigmatism) [A]. The screened class
    equals the latent one: a myope's worse eye has SE <= -0.50 and UCVA <= 4.9, a non-myope's
    eyes SE >= -0.25. Glasses: sigmoid(0.2 + 0.9 (|SE| - 1)) of myopes, 1 % of others [A].

Growth (overweight 11.1 %, obesity 7.9 % at 6-17 by the 2015-19 surveillance; CNSSCH 2019
7-17: 14.1 % and 10.5 %; boys' obesity 1.5-2x girls', peak at 9-12 years)
  * WHO 2007 BMI-for-age z = -0.6 boys / -0.8 girls + 1.7 if in an obesogenic environment
    (unobserved; 27 % of boys, 13 % of girls) + 0.08 urban + 0.8 exp(-((age - 10.5) / 3)^2)
    + 0.02 per calendar year from 2022 + a per-pupil slope N(0, 0.05) per grade + an AR(1)
    deviation (0.8 a year, SD 0.75). Classified by WS/T 586 this gives overweight ~12 % and
    obesity ~8-9 %, boys' obesity ~1.5x girls', highest at 9-12.
  * Height-for-age z N(0.35 urban / 0.05 rural, 0.9), + N(0, 0.12) a year [A]. Height and BMI
    come from `models.growth`'s array forms of `who_lms` (60..228 months) and `value_at_z`
    (restricted beyond +-3); weight = BMI x measured height squared, to 0.1 kg.
  * Screening: height + N(0, 0.3) cm, rounded by the screener's habit, 70 % to 0.1 cm, 20 % to
    0.5 and 10 % to whole centimetres (digit preference) [A]. Where that rounding would move a
    pupil across the WS/T 586 overweight cut-off, the weight moves by 0.1 kg instead, so the
    screened class is the drawn one.

Questionnaires (PHQ-9 >= 10 in 20-25 %; item 9; health literacy 27.8 -> 31.9 % 2022-24)
  * Depression latent = trait N(0, 0.7) - 0.45 + 0.25 girl + 0.12 rural + 0.3 left-behind +
    0.1 boarder + 0.35 disability + 0.03 (grade - 6) + an AR(1) state per term (0.55, SD 0.7).
    Anxiety alike, correlated with it (trait 0.6, shocks 0.5). Items are graded-response
    (discrimination 1.8), which gives PHQ-A >= 10 in ~20-25 % and GAD-7 >= 10 in ~10-12 %.
  * Item 9 (discrimination 2.2) has its threshold solved so that ``self_harm_share`` of PHQ-A
    answers are above 0: 3 % by default, as the brief asks; STANDARDS.md §6 suggests 5-10 % as
    a cautious default, hence the parameter. Items 10-13: past-year depression and difficulty
    rise with the latent; item 12 (ideation) is "yes" for 35 % of those with item 9 above 0,
    item 13 (attempt) for 20 % of those, 2 % of other item-9 positives, 0.2 % of the rest [A].
  * Health literacy latent = trait N(0, 0.8) + 0.3 + 0.06 a year from 2022 + 0.12 (grade - 6)
    + 0.25 urban - 0.15 left-behind - 0.2 disability + N(0, 0.5) each year; 25 items on the
    hl-student scales, literate at >= 80 % of the full score. That gives ~25-35 %, rising about
    2 points a year, urban above rural, as the national and central-region series.

Truth rows: for each pupil staying at the school, after the school year's rows, the
probabilities of next period's outcomes, which the generator then draws from:
  * ``p_myopia_onset_next_year``: the onset p above; blank when already myopic.
  * ``p_overweight_next_year``: overweight or obese by WS/T 586 at next year's screening,
    1 - Phi((c - m) / s) with m and s next year's expected BMI z and shock SD and c the z of
    the cut-off minus 0.05 (BMI is compared rounded half-up) at that day's age.
  * ``p_depression_positive_next_term``, ``p_anxiety_positive_next_term``,
    ``p_self_harm_next_term``: PHQ-A >= 10, GAD-7 >= 10 and item 9 > 0 at next autumn's
    survey, the exact item-sum distribution integrated over the next latent (Gauss-Hermite,
    tabulated); blank when next year's grade is not surveyed.
  * ``p_health_literate_next_year``: literate at next year's hl-student.
They depend on observable history (SE and acuity, the BMI z track, earlier answers through the
latent state, age, sex, urban/rural, left-behind, boarding, disability) and on unobserved
parts (near work, obesogenic environment, traits, shocks), so the truth's AUC on the next
outcomes is the ceiling for a model trained on the records. The last school year's truth rows
predict outcomes that are not generated.

Bad records: each vision, bmi and survey row is, with probability ``bad_record_rate``, replaced
by a defective one, unmarked: height in metres or times ten, acuity 6.1 or decimal notation,
an answer outside its scale, a date before birth, blank height and weight, a blank screener or
answer list.
`GeneratorStats` counts them by kind and defect; `models.importing` rejects each of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache, lru_cache
from itertools import pairwise, repeat
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from models.ages import DAYS_PER_MONTH, completed_months_arrays
from models.growth import WHO_MAX_AGE_MONTHS, WHO_MIN_AGE_MONTHS, Indicator
from models.growth_arrays import WST586_MONTHS, lms_zs, values_at_z, who_lms_arrays, wst586_overweight_bmis
from models.importing import COLUMNS, OPTIONAL_COLUMNS
from models.surveys import Instrument, get_instrument

__all__ = [
    "HEADERS",
    "KINDS",
    "NOT_GENERATED",
    "TRUTH_COLUMNS",
    "Block",
    "GeneratorStats",
    "ProvinceSpec",
    "SyntheticRow",
    "county_count",
    "generate",
    "generate_blocks",
    "generate_values",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Values = tuple[str, ...]
Block = tuple[str, Iterable[Values]]

#: The generator's true next-period probabilities, one row per pupil and school year.
TRUTH_COLUMNS: Final[tuple[str, ...]] = (
    "school_id",
    "student_number",
    "school_year",
    "grade",
    "p_myopia_onset_next_year",
    "p_overweight_next_year",
    "p_depression_positive_next_term",
    "p_anxiety_positive_next_term",
    "p_self_harm_next_term",
    "p_health_literate_next_year",
)

#: Import kinds this generator does not write: fitness tests come as the national upload sheets of
#: `models.fitness_synthetic` (the class sheet's "fitness" kind has no file of its own here).
NOT_GENERATED: Final = frozenset({"fitness"})

#: The header of every kind of row, in column order: the import files' plus "truth".
HEADERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    **{kind: columns for kind, columns in COLUMNS.items() if kind not in NOT_GENERATED},
    "roster": COLUMNS["roster"] + OPTIONAL_COLUMNS["roster"], "truth": TRUTH_COLUMNS,
})
KINDS: Final[tuple[str, ...]] = tuple(HEADERS)

_MEASUREMENT_KINDS: Final = ("vision", "bmi", "survey")

# --- Province scale (henan_scale.csv) ----------------------------------------------------------
# 14.71 M compulsory-education pupils in about 157 county-level units: ~93,700 per county.
_STUDENTS_PER_COUNTY: Final = 93_700
_MAX_COUNTIES: Final = 157
# County-level units: ~54 districts, 21 county-level cities, 82 counties; the share of schools
# that are urban in each.
_COUNTY_TYPES: Final = (("区", 54 / 157, 0.88), ("市", 21 / 157, 0.55), ("县", 82 / 157, 0.22))

# National births (millions, NBS communiqués, rounded) by birth year: the size of each cohort.
_BIRTHS: Final[Mapping[int, float]] = MappingProxyType({
    2003: 15.99, 2004: 15.93, 2005: 16.17, 2006: 15.84, 2007: 15.94, 2008: 16.08, 2009: 15.91,
    2010: 15.92, 2011: 16.04, 2012: 16.35, 2013: 16.40, 2014: 16.87, 2015: 16.55, 2016: 17.86,
    2017: 17.23, 2018: 15.23, 2019: 14.65, 2020: 12.02, 2021: 10.62, 2022: 9.56, 2023: 9.02,
})

# --- Schools ------------------------------------------------------------------------------------
# Stage shares of schools and median enrolment (lognormal, sigma 0.55) by urban/rural.
_STAGE_SHARES: Final = {"urban": (0.62, 0.24, 0.14), "rural": (0.74, 0.15, 0.11)}
_STAGES: Final = ("primary", "junior", "nine_year")
_MEDIAN_ENROLMENT: Final = {
    ("urban", "primary"): 1100.0, ("urban", "junior"): 1500.0, ("urban", "nine_year"): 1600.0,
    ("rural", "primary"): 230.0, ("rural", "junior"): 800.0, ("rural", "nine_year"): 450.0,
}
_BOARDING_SCHOOL: Final = {
    ("urban", "primary"): 0.03, ("urban", "junior"): 0.20, ("urban", "nine_year"): 0.10,
    ("rural", "primary"): 0.18, ("rural", "junior"): 0.72, ("rural", "nine_year"): 0.50,
}
# 《学校卫生工作条例》 and the 2021 staffing rules: a school of 600+ pupils, or a boarding school,
# needs full-time health staff at 600:1; smaller day schools a part-time health teacher.
_DOCTOR_THRESHOLD: Final = 600
_REQUIRED_STAFFED: Final = {"urban": 0.82, "rural": 0.55}
_OPTIONAL_STAFFED: Final = 0.10
_GRADES: Final = {"primary": (1, 6), "junior": (7, 9), "nine_year": (1, 9)}
_PRIMARY_SHARE: Final = 2 / 3  # of compulsory-education pupils in grades 1-6
# Class sizes: the standard is at most 45 pupils a primary class and 50 a junior one
# (教育部 "大班额" rules, 2019); rural schools' classes are often smaller.
_CLASS_SIZE: Final = {("urban", "primary"): 45, ("urban", "junior"): 50, ("rural", "primary"): 38,
                      ("rural", "junior"): 48}

# --- Pupils -------------------------------------------------------------------------------------
_FEMALE_SHARE: Final = 0.47  # sex ratio at birth ~113 in these cohorts
_LATE_ENTRY: Final = 0.05  # born a year earlier than the 31 August cut-off requires
_LEFT_BEHIND: Final = {"urban": 0.04, "rural": 0.17}
_LEFT_BEHIND_TOGGLE: Final = 0.03  # parents leave or come home during a year
_DISABILITY: Final = 0.015
_BOARDER: Final = ((3, 0.15), (6, 0.45), (9, 0.80))  # (up to grade, share) in a boarding school

# --- Vision -------------------------------------------------------------------------------------
# Onset hazard, logit scale, for the transition out of grade g (index g - 1), before covariates.
_MYOPIA_ONSET_ALPHA: Final = (-2.0, -1.7, -1.6, -1.3, -1.25, -1.45, -1.35, -1.1, -1.1)
_MYOPIA_GRADE1_ALPHA: Final = -2.15  # prevalence at the first screening of grade 1
_MYOPIA_SE_BETA: Final = -1.1  # per dioptre of (worse-eye) SE before onset
_MYOPIA_URBAN: Final = 0.25
_MYOPIA_FEMALE: Final = 0.15
_MYOPIA_PROPENSITY: Final = 0.55  # per SD of near work / little outdoor time (unobserved)
_MYOPIA_NOISE_SD: Final = 0.5  # year-specific unobserved shock
_REDUCED_VISION_WITHOUT_MYOPIA: Final = 0.06

# --- Growth -------------------------------------------------------------------------------------
_HEIGHT_Z: Final = {"urban": 0.35, "rural": 0.05}
_HEIGHT_Z_SD: Final = 0.9
_BMI_Z_BASE: Final = {"male": -0.6, "female": -0.8}
_BMI_OBESOGENIC: Final = {"male": 0.27, "female": 0.13}  # share with an obesogenic environment
_BMI_OBESOGENIC_SHIFT: Final = 1.7
_BMI_URBAN: Final = 0.08
_BMI_TREND_PER_YEAR: Final = 0.02
_BMI_PEAK: Final = 0.8  # extra z at the 9-12-year peak
_BMI_SLOPE_SD: Final = 0.05  # per-pupil drift of z per year of school
_BMI_RHO: Final = 0.8  # year-to-year tracking of the deviation
_BMI_SD: Final = 0.75  # stationary SD of the deviation
_HEIGHT_STEPS: Final = ((0.1, 0.70), (0.5, 0.20), (1.0, 0.10))  # screeners' rounding habits

# --- Surveys ------------------------------------------------------------------------------------
_DEP_TRAIT_SD: Final = 0.7
_DEP_STATE_SD: Final = 0.7
_DEP_RHO: Final = 0.55  # term to term
_DEP_BASE: Final = -0.45
_ANX_BASE: Final = -0.5
_HL_BASE: Final = 0.3
_HL_TRAIT_SD: Final = 0.8
_HL_NOISE_SD: Final = 0.5
_HL_TREND_PER_YEAR: Final = 0.06

_QUADRATURE: Final = np.polynomial.hermite_e.hermegauss(40)
_GRID_STEP: Final = 0.01
_GRID: Final = np.arange(-9.0, 11.0 + _GRID_STEP / 2, _GRID_STEP)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvinceSpec:
    """What to generate. The same spec always gives byte-identical rows."""

    students: int
    """Pupils enrolled at the start of the first school year (later intakes come on top)."""
    seed: int = 20251
    school_years: tuple[int, ...] = (2022, 2023, 2024, 2025)
    """Consecutive school years; 2022 is 2022-09-01 .. 2023-08-31."""
    counties: int | None = None
    """None: one county per ~93,700 pupils (Henan's average), 1..157."""
    bad_record_rate: float = 0.002
    """Share of vision, bmi and survey rows made invalid (not marked in the row)."""
    survey_from_grade: int = 4
    """Self-report questionnaires start at this grade (about age 9)."""
    self_harm_share: float = 0.03
    """Target share of PHQ-A answers with item 9 above 0."""
    transfer_rate: float = 0.015
    leave_rate: float = 0.003

    def __post_init__(self) -> None:
        if self.students < 1:
            raise ValueError(f"students must be at least 1, got {self.students}")
        years = self.school_years
        if not years or any(later != earlier + 1 for earlier, later in pairwise(years)):
            raise ValueError(f"school_years must be consecutive and increasing, got {years}")
        if min(years) < 2010 or max(years) > 2035:
            raise ValueError(f"school_years must lie in 2010..2035, got {years}")
        if self.counties is not None and not 1 <= self.counties <= self.students:
            raise ValueError(f"counties must be in 1..students, got {self.counties}")
        for name in ("bad_record_rate", "self_harm_share", "transfer_rate", "leave_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if not 1 <= self.survey_from_grade <= 9:
            raise ValueError(f"survey_from_grade must be in 1..9, got {self.survey_from_grade}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticRow:
    """One CSV-ready row: `row` has exactly the columns of ``HEADERS[kind]``, in order."""

    kind: str
    row: dict[str, str]


@dataclass(slots=True)
class GeneratorStats:
    """Counts accumulated while rows are generated (a mutable accumulator, not a domain value)."""

    counties: int = 0
    schools: int = 0
    students: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bad_records: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_MEASUREMENT_KINDS, 0))
    defects: dict[str, int] = field(default_factory=dict)

    @property
    def measurement_rows(self) -> int:
        """Vision, bmi and survey rows: the rows that can be made bad."""
        return sum(self.rows[kind] for kind in _MEASUREMENT_KINDS)

    @property
    def bad_total(self) -> int:
        """All deliberately bad rows."""
        return sum(self.bad_records.values())

    def merge(self, other: GeneratorStats) -> None:
        """Add `other`'s counts (a part of the province generated elsewhere) to these."""
        self.counties += other.counties
        self.schools += other.schools
        self.students += other.students
        for kind, count in other.rows.items():
            self.rows[kind] = self.rows.get(kind, 0) + count
        for kind, count in other.bad_records.items():
            self.bad_records[kind] = self.bad_records.get(kind, 0) + count
        for defect, count in other.defects.items():
            self.defects[defect] = self.defects.get(defect, 0) + count

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready copy."""
        return {
            "counties": self.counties,
            "schools": self.schools,
            "students": self.students,
            "rows": dict(self.rows),
            "bad_records": dict(self.bad_records),
            "defects": dict(sorted(self.defects.items())),
            "measurement_rows": self.measurement_rows,
        }


def generate(spec: ProvinceSpec, stats: GeneratorStats | None = None) -> Iterator[SyntheticRow]:
    """Rows of the synthetic province, in file order, as `SyntheticRow`s.

    Schools first for each county, then per school its roster and ``register`` records, then
    per school year its bmi, vision and survey rows, the year's transfers, leaves and updates,
    and the truth rows. Memory stays constant: one school is simulated at a time. Counts are
    added to `stats` if given.
    """
    for kind, rows in generate_blocks(spec, stats):
        header = HEADERS[kind]
        for values in rows:
            yield SyntheticRow(kind=kind, row=dict(zip(header, values, strict=True)))


def generate_values(spec: ProvinceSpec, stats: GeneratorStats | None = None) -> Iterator[tuple[str, Values]]:
    """The rows of `generate` as ``(kind, values)``, values in ``HEADERS[kind]`` order."""
    for kind, rows in generate_blocks(spec, stats):
        yield from zip(repeat(kind), rows, strict=False)


def county_count(spec: ProvinceSpec) -> int:
    """How many counties `spec` generates: its `counties`, or one per ~93,700 pupils (1..157)."""
    return spec.counties or min(_MAX_COUNTIES, max(1, round(spec.students / _STUDENTS_PER_COUNTY)))


def generate_blocks(
    spec: ProvinceSpec, stats: GeneratorStats | None = None, *, counties: range | None = None
) -> Iterator[Block]:
    """The rows of `generate` in runs of one kind: ``(kind, rows)``, for bulk writers.

    Each run's values are in ``HEADERS[kind]`` order. Runs are lazy: consume one before asking
    for the next. `counties` (indices below `county_count`) restricts the stream to those
    counties; the rows are the same as in the whole stream, so counties generated separately
    and concatenated in order give the whole province.
    """
    stats = GeneratorStats() if stats is None else stats
    model = _model(spec.self_harm_share)
    province = np.random.default_rng([spec.seed, 0])
    n_counties = county_count(spec)
    county_students = _apportion(spec.students, province.lognormal(0.0, 0.3, n_counties))
    type_draws = province.random(n_counties)
    wanted = range(n_counties) if counties is None else counties
    last = max(wanted, default=-1)
    school_ordinal = 0
    for county_index, target in enumerate(county_students):
        if county_index > last:
            break
        county = _make_county(spec, county_index, int(target), float(type_draws[county_index]), school_ordinal)
        # Student numbers embed a province-wide school ordinal, so earlier counties are laid out
        # (cheaply, schools only) even when skipped.
        school_ordinal += len(county.schools)
        if county_index not in wanted:
            continue
        stats.counties += 1
        stats.schools += len(county.schools)
        stats.rows["schools"] += len(county.schools)
        yield "schools", [school.values for school in county.schools]
        for school in county.schools:
            yield from _SchoolRun(spec, model, county, school, stats).rows()


# --- Province and schools -----------------------------------------------------------------------

_COUNTY_SYLLABLES: Final = "青丰宁泉禾澄岚溪栎桐沁渠嵩柘槐沅渭漳杞蓼楝芗洧淇滍湍潩"
_SCHOOL_NUMBERS: Final = "一二三四五六七八九十"
_SURNAMES: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤"
)
_GIVEN: Final = "子浩宇轩涵梓欣怡晨阳佳雨思雅博文泽睿俊杰诗琪一诺可馨若嘉豪鑫磊婷悦瑶明辰皓然艺凯乐彤奕铭天佑语航安宁"


@dataclass(frozen=True, slots=True, kw_only=True)
class _School:
    index: int
    ordinal: int
    school_id: str
    urban: bool
    stage: str
    boarding: bool
    enrollment: int
    date_salt: int
    screeners: tuple[str, ...]
    screener_steps: tuple[float, ...]
    values: Values


@dataclass(frozen=True, slots=True, kw_only=True)
class _County:
    index: int
    county_id: str
    schools: tuple[_School, ...]


def _apportion(total: int, weights: Floats) -> list[int]:
    """Integers proportional to `weights` summing to `total` (largest remainder)."""
    shares = weights / weights.sum() * total
    counts = np.floor(shares).astype(np.int64)
    remainder = total - int(counts.sum())
    if remainder:
        order = np.argsort(-(shares - counts), kind="stable")
        counts[order[:remainder]] += 1
    return [int(count) for count in counts]


def _make_county(spec: ProvinceSpec, index: int, target: int, type_draw: float, first_ordinal: int) -> _County:
    rng = np.random.default_rng([spec.seed, 1, index])
    cumulative = 0.0
    suffix, urban_share = _COUNTY_TYPES[-1][0], _COUNTY_TYPES[-1][2]
    for candidate, share, urban in _COUNTY_TYPES:
        cumulative += share
        if type_draw < cumulative:
            suffix, urban_share = candidate, urban
            break
    syllables = rng.choice(len(_COUNTY_SYLLABLES), 2, replace=False)
    county_name = "".join(_COUNTY_SYLLABLES[int(i)] for i in syllables) + suffix
    county_id = f"99{index + 1:04d}"

    drafts: list[tuple[bool, str, int]] = []
    remaining = target
    # Pupils still wanted in primary (grades 1-6) and junior (7-9) grades: about two thirds and one
    # third of compulsory education (Henan 2023: 9.63 of 14.71 M primary). The stage of each new
    # school is drawn from the stages that serve the grades further behind, so a small county
    # does not become all primary when its first school happens to be large.
    wanted = {"primary": target * _PRIMARY_SHARE, "junior": target * (1 - _PRIMARY_SHARE)}
    while remaining > 0:
        urban = bool(rng.random() < urban_share)
        setting = "urban" if urban else "rural"
        shares = np.array(_STAGE_SHARES[setting])
        primary_behind = wanted["primary"] / _PRIMARY_SHARE >= wanted["junior"] / (1 - _PRIMARY_SHARE)
        shares[_STAGES.index("junior" if primary_behind else "primary")] = 0.0
        stage = _STAGES[int(rng.choice(3, p=shares / shares.sum()))]
        size = int(np.clip(rng.lognormal(math.log(_MEDIAN_ENROLMENT[setting, stage]), 0.55), 25, 6000))
        if stage == "nine_year":
            room = min(wanted["primary"] / _PRIMARY_SHARE, wanted["junior"] / (1 - _PRIMARY_SHARE))
        else:
            room = wanted[stage]
        size = min(size, max(25, round(room)))
        if remaining - size < 25 and drafts:
            size = remaining
        size = min(size, remaining)
        drafts.append((urban, stage, size))
        remaining -= size
        primary_part = size if stage == "primary" else 0 if stage == "junior" else size * _PRIMARY_SHARE
        wanted["primary"] -= primary_part
        wanted["junior"] -= size - primary_part

    schools = []
    counters: dict[str, int] = {}
    for school_index, (urban, stage, size) in enumerate(drafts):
        setting = "urban" if urban else "rural"
        boarding = bool(rng.random() < _BOARDING_SCHOOL[setting, stage])
        required = size >= _DOCTOR_THRESHOLD or boarding
        if required and rng.random() < _REQUIRED_STAFFED[setting]:
            doctors = max(1, round(size / _DOCTOR_THRESHOLD * rng.uniform(0.6, 1.1)))
        else:
            doctors = 1 if (not required and rng.random() < _OPTIONAL_STAFFED) else 0
        counters[stage] = counters.get(stage, 0) + 1
        name = _school_name(county_name, stage, counters[stage], urban)
        school_id = f"{county_id}{school_index + 1:04d}"
        n_screeners = 2 + int(rng.integers(0, 3))
        steps = tuple(
            _HEIGHT_STEPS[int(rng.choice(len(_HEIGHT_STEPS), p=[p for _, p in _HEIGHT_STEPS]))][0]
            for _ in range(n_screeners)
        )
        schools.append(
            _School(
                index=school_index,
                ordinal=first_ordinal + school_index + 1,
                school_id=school_id,
                urban=urban,
                stage=stage,
                boarding=boarding,
                enrollment=size,
                date_salt=int(rng.integers(0, 1_000_000)),
                screeners=tuple(f"{school_id}-S{k + 1}" for k in range(n_screeners)),
                screener_steps=steps,
                values=(
                    school_id, name, county_id, county_name, setting, stage, _flag(boarding), str(size), str(doctors),
                ),
            )
        )
    return _County(index=index, county_id=county_id, schools=tuple(schools))


def _school_name(county_name: str, stage: str, number: int, urban: bool) -> str:
    kind = {"primary": "小学", "junior": "初级中学", "nine_year": "九年一贯制学校"}[stage]
    place = county_name[:-1]
    if number <= len(_SCHOOL_NUMBERS):
        return f"{place}{'城关' if urban else '乡'}第{_SCHOOL_NUMBERS[number - 1]}{kind}"
    return f"{place}{'城关' if urban else '乡'}第{number}{kind}"


def _flag(value: bool) -> str:
    return "1" if value else "0"


_FLAG_TEXTS: Final = np.array(["0", "1"], dtype=object)
_GRADE_TEXTS: Final = np.array([str(grade) for grade in range(20)], dtype=object)


def _grade_texts(grades: Ints) -> list[str]:
    result: list[str] = _GRADE_TEXTS[grades].tolist()
    return result


def _flags(values: Bools) -> list[str]:
    result: list[str] = _FLAG_TEXTS[values.astype(np.int64)].tolist()
    return result


def _births(year: int) -> float:
    return _BIRTHS[min(max(year, min(_BIRTHS)), max(_BIRTHS))]


# --- Reference curves --------------------------------------------------------------------------
# The WHO 2007 LMS values and formulas and the WS/T 586 cut-offs are `models.growth`'s, in their
# array forms (`models.growth_arrays`); only the generator's own choices (which ages it clips into the tables) are here.


def _who_ages(age_months: Floats) -> Floats:
    """Ages clipped into the WHO 2007 table (60..228 months): pupils just outside it take its ends."""
    clipped: Floats = np.clip(age_months, WHO_MIN_AGE_MONTHS, WHO_MAX_AGE_MONTHS)
    return clipped


def _who_lms(indicator: Indicator, female: Bools, age_months: Floats) -> tuple[Floats, Floats, Floats]:
    return who_lms_arrays(indicator, female, _who_ages(age_months))


def _normal_cdf(x: Floats) -> Floats:
    # Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, ample for a probability.
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    result: Floats = 0.5 * (1.0 + np.sign(x) * erf)
    return result


def _sigmoid(x: Floats) -> Floats:
    # exp(-x) overflows only below x = -709; an infinite threshold (no such category) gives 0.
    result: Floats = 1.0 / (1.0 + np.exp(-np.maximum(x, -700.0)))
    return result


# --- Questionnaire response model -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _ItemBank:
    """Graded-response items: P(answer >= k | latent) = sigmoid(a (latent - b_k))."""

    discrimination: Floats  # [items]
    thresholds: Floats  # [items, categories - 1]; +inf where an item has fewer categories

    def cumulative(self, latent: Floats) -> Floats:
        """P(answer >= k), shape [n, items, categories - 1]."""
        return _sigmoid(self.discrimination[None, :, None] * (latent[:, None, None] - self.thresholds[None, :, :]))

    def draw(self, rng: np.random.Generator, latent: Floats) -> Ints:
        """Answers, shape [n, items]."""
        cumulative = self.cumulative(latent)
        uniform = rng.random(cumulative.shape[:2])
        answers: Ints = (uniform[:, :, None] < cumulative).sum(axis=2).astype(np.int64)
        return answers

    def total_at_least(self, latent: Floats, cutoff: int) -> Floats:
        """P(sum of answers >= cutoff | latent), by exact convolution of the items."""
        cumulative = self.cumulative(latent)
        ones = np.ones((*cumulative.shape[:2], 1))
        zeros = np.zeros((*cumulative.shape[:2], 1))
        categories = np.concatenate([ones, cumulative], axis=2) - np.concatenate([cumulative, zeros], axis=2)
        n_items = categories.shape[1]
        top = categories.shape[2] - 1
        distribution = np.zeros((latent.shape[0], n_items * top + 1))
        distribution[:, 0] = 1.0
        for item in range(n_items):
            following = np.zeros_like(distribution)
            for score in range(top + 1):
                weight = categories[:, item, score : score + 1]
                following[:, score:] += distribution[:, : distribution.shape[1] - score] * weight
            distribution = following
        result: Floats = distribution[:, cutoff:].sum(axis=1)
        return result


@dataclass(frozen=True, slots=True, kw_only=True)
class _Curve:
    """A monotone function tabulated on `_GRID`, evaluated by linear interpolation."""

    values: Floats

    def __call__(self, x: Floats) -> Floats:
        result: Floats = np.interp(x, _GRID, self.values)
        return result


def _smoothed(values: Floats, sd: float) -> _Curve:
    """E[f(m + sd Z)] for every grid point m, with f tabulated on the grid: Gauss-Hermite."""
    nodes, weights = _QUADRATURE
    weights = weights / weights.sum()
    total = np.zeros_like(_GRID)
    for node, weight in zip(nodes, weights, strict=True):
        total += weight * np.interp(_GRID + sd * node, _GRID, values)
    return _Curve(values=total)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Model:
    """Item banks and the tabulated next-term/next-year probabilities for one spec."""

    phq: _ItemBank
    gad: _ItemBank
    hl: _ItemBank
    phq_cutoff: int
    gad_cutoff: int
    hl_cutoff: int
    p_depression: _Curve
    p_anxiety: _Curve
    p_self_harm: _Curve
    p_literate: _Curve


def _bank(
    instrument: Instrument, discrimination: Sequence[float], locations: Sequence[float], spread: Sequence[float]
) -> _ItemBank:
    scales = instrument.item_scales[: instrument.scored_items]
    top = max(high for _, high in scales)
    thresholds = np.full((len(scales), top), np.inf)
    for item, ((low, high), location) in enumerate(zip(scales, locations, strict=True)):
        if low != 0:
            raise ValueError(f"{instrument.id}: items must start at 0")
        thresholds[item, :high] = location + np.asarray(spread[:high]) if high > 1 else location
    return _ItemBank(discrimination=np.asarray(discrimination, dtype=np.float64), thresholds=thresholds)


_PHQ_LOCATIONS: Final = (0.05, 0.0, -0.35, -0.45, 0.1, 0.25, 0.05, 0.55)
_PHQ_SPREAD: Final = (0.0, 0.95, 1.7)
_GAD_LOCATIONS: Final = (0.15, 0.25, 0.0, 0.2, 0.55, 0.0, 0.35)
_HL_LOCATIONS: Final = tuple(np.linspace(-1.3, 0.9, 10)) + tuple(np.linspace(-0.9, 0.9, 15))
# Population of the depression latent among surveyed pupils (mean, SD), for item 9's calibration.
_DEP_POPULATION: Final = (-0.25, 1.0)


def _state_innovation_sd() -> float:
    return _DEP_STATE_SD * math.sqrt(1 - _DEP_RHO**2)


@cache
def _model(self_harm_share: float) -> _Model:
    phq_instrument, gad_instrument, hl_instrument = (get_instrument(i) for i in ("phq-a", "gad-7", "hl-student"))
    item9_location = _calibrate_item9(self_harm_share)
    phq = _bank(phq_instrument, (1.8,) * 8 + (2.2,), (*_PHQ_LOCATIONS, item9_location), _PHQ_SPREAD)
    gad = _bank(gad_instrument, (1.8,) * 7, _GAD_LOCATIONS, (0.0, 1.0, 1.8))
    hl = _bank(hl_instrument, (1.3,) * 25, _HL_LOCATIONS, (-0.7, 0.7))
    phq_cutoff = phq_instrument.positive_cutoff or 10
    gad_cutoff = gad_instrument.positive_cutoff or 10
    percent = hl_instrument.literacy_percent or 80
    hl_cutoff = -(-hl_instrument.max_total * percent // 100)
    innovation = _state_innovation_sd()
    item9 = _sigmoid(phq.discrimination[8] * (_GRID - phq.thresholds[8, 0]))
    return _Model(
        phq=phq,
        gad=gad,
        hl=hl,
        phq_cutoff=phq_cutoff,
        gad_cutoff=gad_cutoff,
        hl_cutoff=hl_cutoff,
        p_depression=_smoothed(phq.total_at_least(_GRID, phq_cutoff), innovation),
        p_anxiety=_smoothed(gad.total_at_least(_GRID, gad_cutoff), innovation),
        p_self_harm=_smoothed(item9, innovation),
        p_literate=_smoothed(hl.total_at_least(_GRID, hl_cutoff), _HL_NOISE_SD),
    )


def _calibrate_item9(share: float) -> float:
    """Item 9's first threshold such that the population share answering > 0 is `share`."""
    if share <= 0:
        return 50.0
    nodes, weights = _QUADRATURE
    weights = weights / weights.sum()
    mean, sd = _DEP_POPULATION
    latent = mean + sd * nodes
    low, high = -10.0, 20.0
    for _ in range(80):
        middle = (low + high) / 2
        if float((weights * _sigmoid(2.2 * (latent - middle))).sum()) > share:
            low = middle
        else:
            high = middle
    return (low + high) / 2


# --- One school --------------------------------------------------------------------------------


class _Cohort:
    """Every pupil the school has had, as parallel arrays; leavers stay with active False."""

    def __init__(self) -> None:
        self.n = 0
        self.female = np.zeros(0, dtype=np.bool_)
        self.birth = np.zeros(0, dtype=np.int64)  # date ordinal
        self.entry = np.zeros(0, dtype=np.int64)  # school year of grade 1
        self.left_behind = np.zeros(0, dtype=np.bool_)
        self.disability = np.zeros(0, dtype=np.bool_)
        self.boarder = np.zeros(0, dtype=np.bool_)
        self.active = np.zeros(0, dtype=np.bool_)
        self.near_work = np.zeros(0)
        self.se = np.zeros(0)  # worse eye, non-cycloplegic, true value
        self.aniso = np.zeros(0)
        self.myopic = np.zeros(0, dtype=np.bool_)
        self.reduced_vision = np.zeros(0)
        self.glasses = np.zeros(0)
        self.obesogenic = np.zeros(0, dtype=np.bool_)
        self.bmi_slope = np.zeros(0)
        self.bmi_dev = np.zeros(0)
        self.height_z = np.zeros(0)
        self.dep_trait = np.zeros(0)
        self.dep_state = np.zeros(0)
        self.anx_trait = np.zeros(0)
        self.anx_state = np.zeros(0)
        self.hl_trait = np.zeros(0)
        self.hl_noise = np.zeros(0)
        self.birth_parts = np.zeros((0, 3), dtype=np.int64)  # year, month, day
        # Object arrays of str: fancy indexing gives a school-year's column without a Python loop.
        self.numbers = np.zeros(0, dtype=object)
        self.names = np.zeros(0, dtype=object)
        self.sexes = np.zeros(0, dtype=object)
        self.births = np.zeros(0, dtype=object)
        self.classes = np.zeros(0, dtype=object)  # class within the grade, kept from year to year
        self.guardians = np.zeros(0, dtype=object)

    def extend(self, other: _Cohort) -> None:
        for name in (
            "female", "birth", "entry", "left_behind", "disability", "boarder", "active", "near_work", "se", "aniso",
            "myopic", "reduced_vision", "glasses", "obesogenic", "bmi_slope", "bmi_dev", "height_z", "dep_trait",
            "dep_state", "anx_trait", "anx_state", "hl_trait", "hl_noise", "birth_parts", "numbers", "names", "sexes",
            "births", "classes", "guardians",
        ):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))
        self.n += other.n

    def identity(self, idx: Ints) -> tuple[list[str], list[str], list[str]]:
        """Student numbers, sexes and birth dates of `idx`, as lists of str."""
        return self.numbers[idx].tolist(), self.sexes[idx].tolist(), self.births[idx].tolist()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Risk:
    """The true probabilities of the next outcomes, drawn in the same step."""

    myopia_onset: Floats  # NaN where already myopic
    overweight: Floats
    depression: Floats
    anxiety: Floats
    self_harm: Floats
    literate: Floats


@lru_cache(maxsize=1 << 16)
def _iso(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


def _isos(ordinals: Ints) -> list[str]:
    unique, inverse = np.unique(ordinals, return_inverse=True)
    texts = np.array([_iso(value) for value in unique.tolist()], dtype=object)
    result: list[str] = texts[inverse].tolist()
    return result


@lru_cache(maxsize=4096)
def _school_days(first_day: int) -> Ints:
    """The first 9 weekdays from `first_day` on: one grade is screened a day."""
    days: list[int] = []
    day = first_day
    while len(days) < 9:
        if (day - 1) % 7 < 5:  # date.fromordinal(1) is a Monday
            days.append(day)
        day += 1
    return np.array(days, dtype=np.int64)


def _ymd(ordinals: Ints) -> tuple[Ints, Ints, Ints]:
    unique, inverse = np.unique(ordinals, return_inverse=True)
    parts = np.array([(d.year, d.month, d.day) for d in map(date.fromordinal, unique.tolist())], dtype=np.int64)
    parts = parts.reshape(-1, 3)
    return parts[inverse, 0], parts[inverse, 1], parts[inverse, 2]


def _answers_text(answers: Ints) -> list[str]:
    """'0;1;3;...' for every row of single-digit answers."""
    n, items = answers.shape
    if n == 0:
        return []
    width = 2 * items - 1
    chars = np.full((n, width), ord(";"), dtype=np.uint8)
    chars[:, 0::2] = answers + ord("0")
    text = chars.tobytes().decode("ascii")
    return [text[start : start + width] for start in range(0, n * width, width)]


# Formatting floats one by one dominates the cost of a row; values on a fixed grid (tenths,
# quarter dioptres, probabilities to 4 decimals) are looked up in tables of their texts instead.
_TENTHS_MAX: Final = 4000
_TENTHS: Final = np.array([f"{tenths / 10:.1f}" for tenths in range(_TENTHS_MAX + 1)], dtype=object)
_QUARTERS_LOW: Final = -200
_QUARTERS: Final = np.array([f"{quarters / 4:.2f}" for quarters in range(_QUARTERS_LOW, 101)], dtype=object)
_TEN_THOUSANDTHS: Final = np.array([f"{k / 10_000:.4f}" for k in range(10_001)] + [""], dtype=object)


def _tenths(values: Floats) -> list[str]:
    """Texts of values already rounded to one decimal, 0.0..400.0."""
    index = np.rint(values * 10).astype(np.int64)
    if index.size and (index.min() < 0 or index.max() > _TENTHS_MAX):
        return [f"{value:.1f}" for value in values.tolist()]
    result: list[str] = _TENTHS[index].tolist()
    return result


def _quarters(values: Floats) -> list[str]:
    """Texts (2 decimals) of values already rounded to a quarter, -50.00..25.00."""
    index = np.rint(values * 4).astype(np.int64) - _QUARTERS_LOW
    if index.size and (index.min() < 0 or index.max() >= len(_QUARTERS)):
        return [f"{value:.2f}" for value in values.tolist()]
    result: list[str] = _QUARTERS[index].tolist()
    return result


def _probabilities(values: Floats) -> list[str]:
    """Four decimals; NaN (no outcome to come) is a blank cell."""
    index = np.where(np.isnan(values), 10_001, np.rint(np.nan_to_num(values) * 10_000)).astype(np.int64)
    result: list[str] = _TEN_THOUSANDTHS[np.clip(index, 0, 10_001)].tolist()
    return result


class _SchoolRun:
    """Simulates one school through the school years and renders its rows."""

    def __init__(self, spec: ProvinceSpec, model: _Model, county: _County, school: _School, stats: GeneratorStats):
        self.spec = spec
        self.model = model
        self.county = county
        self.school = school
        self.stats = stats
        self.rng = np.random.default_rng([spec.seed, 2, county.index, school.index])
        # Defects have a stream of their own, so the bad-record rate never changes the pupils.
        self.defects = np.random.default_rng([spec.seed, 3, county.index, school.index])
        self.cohort = _Cohort()
        self.low_grade, self.high_grade = _GRADES[school.stage]
        self.urban = 1.0 if school.urban else 0.0
        self.setting = "urban" if school.urban else "rural"

    # -- dates

    def _screening_day(self, year: int) -> int:
        """First day of the school's autumn growth and vision screening (10 Sept .. 20 Nov)."""
        offset = (self.school.date_salt + year * 7919) % 71
        return date(year, 9, 10).toordinal() + offset

    def _survey_day(self, year: int, instrument_term: int) -> int:
        salt = self.school.date_salt // 71 + year * 104_729 + instrument_term * 31
        if instrument_term == 1:
            return date(year, 10, 15).toordinal() + salt % 46
        if instrument_term == 2:
            return date(year + 1, 4, 10).toordinal() + salt % 51
        return date(year + 1, 5, 20).toordinal() + salt % 31  # health literacy

    def _class_days(self, first_day: int, grades: Ints) -> Ints:
        result: Ints = _school_days(first_day)[grades - self.low_grade]
        return result

    def _grade(self, idx: Ints, year: int) -> Ints:
        grade: Ints = year - self.cohort.entry[idx] + 1
        return grade

    # -- admission

    def _classes_and_guardians(
        self, sizes: Mapping[int, int], year: int, surnames: list[int]
    ) -> tuple[Any, Any]:
        """Each new pupil's class (classes of at most the standard size) and guardian's name.

        From a generator of their own, so adding them changed no other synthetic value.
        """
        rng = np.random.default_rng([self.spec.seed, 17, self.school.index, year])
        classes: list[str] = []
        for grade, count in sizes.items():
            cap = _CLASS_SIZE[self.setting, "primary" if grade <= 6 else "junior"]
            n_classes = max(1, math.ceil(count / cap))
            classes += [str(k % n_classes + 1) for k in rng.permutation(count).tolist()]
        mother = rng.random(len(surnames)) < 0.35
        other = rng.integers(0, len(_SURNAMES), len(surnames))
        given = rng.integers(0, len(_GIVEN), (len(surnames), 2))
        guardians = [
            _SURNAMES[o if m else s] + _GIVEN[g0] + _GIVEN[g1]
            for s, o, m, (g0, g1) in zip(surnames, other.tolist(), mother.tolist(), given.tolist(), strict=True)
        ]
        return np.array(classes, dtype=object), np.array(guardians, dtype=object)

    def _admit(self, sizes: Mapping[int, int], year: int) -> Ints:
        """Add pupils who are in school year `year`, `sizes[grade]` of each grade, with their past.

        Every pupil's latent history is simulated from the first screening of grade 1 on, so a
        pupil first seen in grade 5 arrives with four years of myopia progression and growth.
        """
        rng = self.rng
        new = _Cohort()
        size = sum(sizes.values())
        new.n = size
        entry = np.repeat(np.array([year - grade + 1 for grade in sizes], dtype=np.int64), list(sizes.values()))
        new.female = rng.random(size) < _FEMALE_SHARE
        # Born 1 Sept (entry - 7) .. 31 Aug (entry - 6): six by 31 August of the year of grade 1.
        first = np.array([date(int(e) - 7, 9, 1).toordinal() for e in entry.tolist()], dtype=np.int64)
        leap = np.array([date(int(e) - 6, 9, 1).toordinal() for e in entry.tolist()], dtype=np.int64) - first
        late = rng.random(size) < _LATE_ENTRY
        new.birth = first + (rng.random(size) * leap).astype(np.int64) - late * 365
        new.entry = entry
        new.left_behind = rng.random(size) < _LEFT_BEHIND[self.setting]
        new.disability = rng.random(size) < _DISABILITY
        new.boarder = np.zeros(size, dtype=np.bool_)
        new.active = np.ones(size, dtype=np.bool_)
        new.near_work = rng.normal(0.0, 1.0, size)
        new.aniso = np.abs(rng.normal(0.0, 0.3, size))
        new.reduced_vision = np.where(
            rng.random(size) < _REDUCED_VISION_WITHOUT_MYOPIA, rng.uniform(0.1, 0.45, size), 0.0
        )
        new.glasses = rng.random(size)
        sex = np.where(new.female, "female", "male")
        new.obesogenic = rng.random(size) < np.where(new.female, _BMI_OBESOGENIC["female"], _BMI_OBESOGENIC["male"])
        new.bmi_slope = rng.normal(0.0, _BMI_SLOPE_SD, size)
        new.bmi_dev = rng.normal(0.0, _BMI_SD, size)
        new.height_z = rng.normal(_HEIGHT_Z[self.setting], _HEIGHT_Z_SD, size)
        new.dep_trait = rng.normal(0.0, _DEP_TRAIT_SD, size)
        new.dep_state = rng.normal(0.0, _DEP_STATE_SD, size)
        new.anx_trait = 0.6 * new.dep_trait + rng.normal(0.0, _DEP_TRAIT_SD * 0.8, size)
        new.anx_state = 0.5 * new.dep_state + rng.normal(0.0, _DEP_STATE_SD * math.sqrt(0.75), size)
        new.hl_trait = rng.normal(0.0, _HL_TRAIT_SD, size)
        new.hl_noise = rng.normal(0.0, _HL_NOISE_SD, size)
        # Grade 1: hyperopic reserve shrinking with near work; some already myopic.
        eta = (
            _MYOPIA_GRADE1_ALPHA + _MYOPIA_URBAN * self.urban + _MYOPIA_FEMALE * new.female
            + _MYOPIA_PROPENSITY * new.near_work
        )
        new.myopic = rng.random(size) < _sigmoid(eta)
        reserve = np.maximum(rng.normal(0.9 - 0.25 * new.near_work - 0.1 * self.urban, 0.5), -0.3)
        new.se = np.where(new.myopic, -0.5 - rng.exponential(0.4, size), reserve)

        seq0 = self.cohort.n
        surnames = (rng.zipf(1.6, size) - 1) % len(_SURNAMES)
        given = rng.integers(0, len(_GIVEN), (size, 2))
        one_syllable = rng.random(size) < 0.3
        new.names = np.array(
            [
                _SURNAMES[s] + _GIVEN[g0] + ("" if one else _GIVEN[g1])
                for s, (g0, g1), one in zip(surnames.tolist(), given.tolist(), one_syllable.tolist(), strict=True)
            ],
            dtype=object,
        )
        new.classes, new.guardians = self._classes_and_guardians(sizes, year, surnames.tolist())
        born = [date.fromordinal(value) for value in new.birth.tolist()]
        new.birth_parts = np.array([(d.year, d.month, d.day) for d in born], dtype=np.int64).reshape(-1, 3)
        new.births = np.array([d.isoformat() for d in born], dtype=object)
        new.sexes = sex.astype(object)
        # "G" + 18 digits like a national student number, but behind the province code 99, which
        # GB/T 2260 does not assign: school ordinal, birth year, sequence, a check digit.
        ordinal = self.school.ordinal
        new.numbers = np.array(
            [
                f"G99{ordinal:06d}{d.year:04d}{seq:05d}{(ordinal * 7 + d.year * 3 + seq) % 10}"
                for seq, d in enumerate(born, start=seq0 + 1)
            ],
            dtype=object,
        )

        self.cohort.extend(new)
        idx = np.arange(seq0, seq0 + size, dtype=np.int64)
        self.stats.students += size
        self._set_boarders(idx, year)
        for past in range(int(entry.min()), year):
            before = idx[new.entry <= past]
            self._term_step(before)
            self._step(before, past, with_risk=False)
        return idx

    def _set_boarders(self, idx: Ints, year: int) -> None:
        if not self.school.boarding:
            return
        grade = self._grade(idx, year)
        share = np.select([grade <= limit for limit, _ in _BOARDER], [share for _, share in _BOARDER], 0.8)
        self.cohort.boarder[idx] = self.rng.random(len(idx)) < share

    # -- latent dynamics

    def _dep_mean(self, idx: Ints, grade: Ints) -> Floats:
        c = self.cohort
        mean: Floats = (
            _DEP_BASE + c.dep_trait[idx] + 0.25 * c.female[idx] + 0.12 * (1 - self.urban) + 0.3 * c.left_behind[idx]
            + 0.1 * c.boarder[idx] + 0.35 * c.disability[idx] + 0.03 * (grade - 6)
        )
        return mean

    def _anx_mean(self, idx: Ints, grade: Ints) -> Floats:
        c = self.cohort
        mean: Floats = (
            _ANX_BASE + c.anx_trait[idx] + 0.3 * c.female[idx] + 0.05 * (1 - self.urban) + 0.15 * c.left_behind[idx]
            + 0.1 * c.boarder[idx] + 0.25 * c.disability[idx] + 0.06 * (grade - 6)
        )
        return mean

    def _hl_mean(self, idx: Ints, grade: Ints, year: int) -> Floats:
        c = self.cohort
        mean: Floats = (
            _HL_BASE + c.hl_trait[idx] + _HL_TREND_PER_YEAR * (year - 2022) + 0.12 * (grade - 6) + 0.25 * self.urban
            - 0.15 * c.left_behind[idx] - 0.2 * c.disability[idx]
        )
        return mean

    def _bmi_mean(self, idx: Ints, grade: Ints, age_years: Floats, year: int) -> Floats:
        c = self.cohort
        female = c.female[idx]
        mean: Floats = (
            np.where(female, _BMI_Z_BASE["female"], _BMI_Z_BASE["male"])
            + _BMI_OBESOGENIC_SHIFT * c.obesogenic[idx] + _BMI_URBAN * self.urban
            + _BMI_PEAK * np.exp(-(((age_years - 10.5) / 3.0) ** 2))
            + _BMI_TREND_PER_YEAR * (year - 2022) + c.bmi_slope[idx] * (grade - 1)
        )
        return mean

    def _term_step(self, idx: Ints) -> None:
        """From the autumn term's latent mood to the spring term's."""
        c, rng, n = self.cohort, self.rng, len(idx)
        innovation = _state_innovation_sd()
        shock = rng.normal(0.0, innovation, n)
        c.dep_state[idx] = _DEP_RHO * c.dep_state[idx] + shock
        c.anx_state[idx] = _DEP_RHO * c.anx_state[idx] + 0.5 * shock + rng.normal(0.0, innovation * math.sqrt(0.75), n)

    def _measurement_ages(self, idx: Ints, year: int) -> tuple[Ints, Floats]:
        grade = self._grade(idx, year)
        days = self._class_days(self._screening_day(year), grade)
        return days, (days - self.cohort.birth[idx]) / DAYS_PER_MONTH

    def _overweight_threshold(self, idx: Ints, days: Ints) -> Floats:
        """The BMI from which a pupil measured on `days` is overweight by WS/T 586.

        BMI is compared rounded half-up to one decimal, so it is the cut-off minus 0.05.
        """
        c = self.cohort
        # Pupils outside the standard's 6 ..< 19 years take its first or last half-year group.
        on = np.stack(_ymd(days), axis=1)
        months = np.clip(completed_months_arrays(c.birth_parts[idx], on), WST586_MONTHS[0], WST586_MONTHS[1] - 1)
        threshold: Floats = wst586_overweight_bmis(c.female[idx], months) - 0.05
        return threshold

    def _overweight_z(self, idx: Ints, days: Ints, age_months: Floats) -> Floats:
        """The BMI-for-age z from which a pupil measured on `days` is overweight by WS/T 586."""
        lms = _who_lms("bmi", self.cohort.female[idx], age_months)
        return lms_zs(*lms, self._overweight_threshold(idx, days), restricted=True)

    def _step(self, idx: Ints, year: int, *, with_risk: bool = True) -> _Risk | None:
        """Draw every latent state of school year `year + 1` and return the true probabilities.

        The probabilities are those of the very draws made here; `with_risk` False (the simulated
        past before a pupil's first row) skips computing them.
        """
        c, rng, model, n = self.cohort, self.rng, self.model, len(idx)
        grade = self._grade(idx, year)
        next_grade = grade + 1

        # Myopia onset and progression.
        myopic = c.myopic[idx]
        se = c.se[idx]
        near_work = c.near_work[idx]
        alpha = np.asarray(_MYOPIA_ONSET_ALPHA)[np.clip(grade - 1, 0, 8)]
        eta = (
            alpha + _MYOPIA_SE_BETA * se + _MYOPIA_URBAN * self.urban + _MYOPIA_FEMALE * c.female[idx]
            + _MYOPIA_PROPENSITY * near_work + rng.normal(0.0, _MYOPIA_NOISE_SD, n)
        )
        p_onset = _sigmoid(eta)
        onset = ~myopic & (rng.random(n) < p_onset)
        drift = np.maximum(0.0, rng.normal(0.15 + 0.08 * near_work, 0.1))
        progression = np.maximum(
            0.05, rng.normal(0.5 + 0.15 * self.urban + 0.15 * near_work - 0.05 * (grade - 5), 0.2)
        )
        c.se[idx] = np.where(
            myopic,
            se - progression,
            np.where(onset, np.minimum(se - drift, -0.5) - rng.exponential(0.35, n), np.maximum(se - drift, -0.3)),
        )
        c.myopic[idx] = myopic | onset

        # Expected values of next period's latents, before this step's shocks are drawn.
        spread = _BMI_SD * math.sqrt(1 - _BMI_RHO**2)
        if with_risk:
            days, age_months = self._measurement_ages(idx, year + 1)
            bmi_expected = self._bmi_mean(idx, next_grade, age_months / 12, year + 1) + _BMI_RHO * c.bmi_dev[idx]
            dep_expected = self._dep_mean(idx, next_grade) + _DEP_RHO * c.dep_state[idx]
            anx_expected = self._anx_mean(idx, next_grade) + _DEP_RHO * c.anx_state[idx]
            hl_expected = self._hl_mean(idx, next_grade, year + 1)

        # BMI-for-age z: pupil mean + AR(1) deviation; height-for-age z tracks with small shocks.
        c.bmi_dev[idx] = _BMI_RHO * c.bmi_dev[idx] + rng.normal(0.0, spread, n)
        c.height_z[idx] += rng.normal(0.0, 0.12, n)
        # Mood: the autumn term of next year.
        self._term_step(idx)
        # Health literacy next year: this year's trait and trend plus a fresh shock.
        c.hl_noise[idx] = rng.normal(0.0, _HL_NOISE_SD, n)
        if not with_risk:
            return None

        p_overweight = 1.0 - _normal_cdf((self._overweight_z(idx, days, age_months) - bmi_expected) / spread)

        surveyed = next_grade >= self.spec.survey_from_grade
        blank = np.full(n, np.nan)
        return _Risk(
            myopia_onset=np.where(myopic, np.nan, p_onset),
            overweight=p_overweight,
            depression=np.where(surveyed, model.p_depression(dep_expected), blank),
            anxiety=np.where(surveyed, model.p_anxiety(anx_expected), blank),
            self_harm=np.where(surveyed, model.p_self_harm(dep_expected), blank),
            literate=np.where(surveyed, model.p_literate(hl_expected), blank),
        )

    # -- rows

    def rows(self) -> Iterator[Block]:
        spec, school = self.spec, self.school
        years = spec.school_years
        first_year = years[0]
        grades = range(self.low_grade, self.high_grade + 1)
        weights = np.array([_births(first_year - grade + 1 - 6) for grade in grades])
        sizes = _apportion(school.enrollment, weights)
        idx = self._admit({grade: size for grade, size in zip(grades, sizes, strict=True) if size}, first_year)
        yield from self._enrolment_rows(idx, first_year)
        expected_intake = school.enrollment * weights[0] / weights.sum()
        trend = 1.02 if school.urban else 0.97
        for year in years:
            if year != first_year:
                birth_factor = _births(year - self.low_grade + 1 - 6) / _births(first_year - self.low_grade + 1 - 6)
                intake = int(self.rng.poisson(expected_intake * birth_factor * trend ** (year - first_year)))
                if intake:
                    yield from self._enrolment_rows(self._admit({self.low_grade: intake}, year), year)
            idx = np.flatnonzero(self.cohort.active)
            if not len(idx):
                continue
            yield from self._bmi_rows(idx, year)
            yield from self._vision_rows(idx, year)
            yield from self._survey_rows(idx, year)
            yield from self._year_end_rows(idx, year)

    def _count(self, kind: str, n: int) -> None:
        self.stats.rows[kind] += n

    def _enrolment_rows(self, idx: Ints, year: int) -> Iterator[Block]:
        c, school = self.cohort, self.school
        enrolled = _iso(date(year, 9, 1).toordinal())
        grades = _grade_texts(self._grade(idx, year))
        numbers, sexes, births = c.identity(idx)
        boarders = _flags(c.boarder[idx])
        left = _flags(c.left_behind[idx])
        disabled = _flags(c.disability[idx])
        n = len(idx)
        self._count("roster", n)
        self._count("records", n)
        yield "roster", zip(
            repeat(school.school_id, n), numbers, c.names[idx].tolist(), sexes, births, grades,
            repeat(enrolled, n), boarders, left, disabled, c.classes[idx].tolist(), c.guardians[idx].tolist(),
            strict=True,
        )
        yield "records", zip(
            repeat(school.school_id, n), numbers, sexes, births, repeat(self.county.county_id, n), grades,
            repeat("register", n), repeat(enrolled, n), repeat("", n), boarders, left, disabled, strict=True,
        )

    def _bad(self, kind: str, n: int) -> list[int]:
        if self.spec.bad_record_rate <= 0:
            return []
        bad = np.flatnonzero(self.defects.random(n) < self.spec.bad_record_rate).tolist()
        self.stats.bad_records[kind] += len(bad)
        return bad

    def _defect(self, name: str) -> None:
        self.stats.defects[name] = self.stats.defects.get(name, 0) + 1

    def _bmi_rows(self, idx: Ints, year: int) -> Iterator[Block]:
        c, rng, n = self.cohort, self.rng, len(idx)
        grade = self._grade(idx, year)
        days, age_months = self._measurement_ages(idx, year)
        female = c.female[idx]
        z = self._bmi_mean(idx, grade, age_months / 12, year) + c.bmi_dev[idx]
        overweight = z >= self._overweight_z(idx, days, age_months)
        bmi = values_at_z(*_who_lms("bmi", female, age_months), np.clip(z, -4.5, 4.5), restricted=True)
        height = values_at_z(*_who_lms("height", female, age_months), np.clip(c.height_z[idx], -4.0, 4.0),
                             restricted=True)
        screener = (grade - self.low_grade) % len(self.school.screeners)
        step = np.asarray(self.school.screener_steps)[screener]
        measured_height = np.round((height + rng.normal(0.0, 0.3, n)) / step) * step
        measured_height = np.round(measured_height, 1)
        weight = np.round(bmi * (measured_height / 100) ** 2, 1)
        # Keep the screened WS/T 586 class equal to the drawn one despite rounding of the measurements.
        threshold = self._overweight_threshold(idx, days)
        square = (measured_height / 100) ** 2
        measured_bmi = weight / square
        low = overweight & (measured_bmi < threshold + 1e-6)
        high = ~overweight & (measured_bmi > threshold - 1e-6)
        weight = np.where(low, np.ceil((threshold + 1e-6) * square * 10) / 10, weight)
        weight = np.where(high, np.floor((threshold - 1e-6) * square * 10) / 10, weight)

        numbers, sexes, births = c.identity(idx)
        dates = _isos(days)
        heights = _tenths(measured_height)
        weights = _tenths(weight)
        screeners = [self.school.screeners[k] for k in screener.tolist()]
        for i in self._bad("bmi", n):
            defect = int(self.defects.integers(0, 4))
            if defect == 0:
                heights[i] = f"{measured_height[i] / 100:.2f}"
                self._defect("bmi_height_in_metres")
            elif defect == 1:
                heights[i] = f"{measured_height[i] * 10:.1f}"
                self._defect("bmi_height_impossible")
            elif defect == 2:
                dates[i] = _iso(int(c.birth[idx[i]]) - int(self.defects.integers(1, 400)))
                self._defect("bmi_measured_before_birth")
            else:  # a height without a weight is a valid partial measurement; neither is not
                heights[i] = weights[i] = ""
                self._defect("bmi_blank_measurements")
        self._count("bmi", n)
        yield "bmi", zip(
            repeat(self.school.school_id, n), numbers, sexes, births, dates, heights, weights, screeners, strict=True
        )

    def _vision_rows(self, idx: Ints, year: int) -> Iterator[Block]:
        c, rng, n = self.cohort, self.rng, len(idx)
        grade = self._grade(idx, year)
        days = self._class_days(self._screening_day(year), grade)
        myopic = c.myopic[idx]
        se = c.se[idx]
        worse = np.round((se + rng.normal(0.0, 0.2, n)) * 4) / 4
        worse = np.where(myopic, np.minimum(worse, -0.5), np.maximum(worse, -0.25)) + 0.0
        fellow = np.maximum(np.round((se + c.aniso[idx] + rng.normal(0.0, 0.2, n)) * 4) / 4, worse) + 0.0
        worse_logmar = np.where(
            myopic,
            np.maximum(0.12 + 0.28 * np.abs(worse) + rng.normal(0.0, 0.08, n), 0.1),
            c.reduced_vision[idx] + rng.normal(-0.05, 0.05, n),
        )
        fellow_logmar = np.where(
            fellow <= -0.5,
            0.12 + 0.28 * np.abs(fellow) + rng.normal(0.0, 0.08, n),
            c.reduced_vision[idx] * (rng.random(n) < 0.5) + rng.normal(-0.05, 0.05, n),
        )
        worse_ucva = np.clip(np.round(5.0 - worse_logmar, 1), 3.0, np.where(myopic, 4.9, 5.3))
        fellow_ucva = np.clip(np.round(5.0 - fellow_logmar, 1), 3.0, 5.3)
        right_is_worse = rng.random(n) < 0.5
        ucva_right = np.where(right_is_worse, worse_ucva, fellow_ucva)
        ucva_left = np.where(right_is_worse, fellow_ucva, worse_ucva)
        se_right = np.where(right_is_worse, worse, fellow)
        se_left = np.where(right_is_worse, fellow, worse)
        wears = np.where(myopic, c.glasses[idx] < _sigmoid(0.2 + 0.9 * (np.abs(worse) - 1.0)), c.glasses[idx] < 0.01)

        numbers, sexes, births = c.identity(idx)
        dates = _isos(days)
        right = _tenths(ucva_right)
        left = _tenths(ucva_left)
        screener_index = (grade - self.low_grade + 1) % len(self.school.screeners)
        screeners = [self.school.screeners[k] for k in screener_index.tolist()]
        for i in self._bad("vision", n):
            defect = int(self.defects.integers(0, 4))
            if defect == 0:
                right[i] = "6.1"
                self._defect("vision_acuity_6_1")
            elif defect == 1:
                left[i] = f"{10 ** (ucva_left[i] - 5):.1f}"
                self._defect("vision_decimal_acuity")
            elif defect == 2:
                dates[i] = _iso(int(c.birth[idx[i]]) - int(self.defects.integers(1, 400)))
                self._defect("vision_measured_before_birth")
            else:
                screeners[i] = ""
                self._defect("vision_blank_screener")
        self._count("vision", n)
        yield "vision", zip(
            repeat(self.school.school_id, n), numbers, sexes, births, dates, right, left,
            _quarters(se_right), _quarters(se_left), _flags(wears), screeners, strict=True,
        )

    def _survey_rows(self, idx: Ints, year: int) -> Iterator[Block]:
        c, model, rng = self.cohort, self.model, self.rng
        grade_all = self._grade(idx, year)
        surveyed = grade_all >= self.spec.survey_from_grade
        if not surveyed.any():
            self._term_step(idx)
            return
        for term in (1, 2):
            if term == 2:
                self._term_step(idx)
            sub = idx[surveyed]
            grade = grade_all[surveyed]
            days = self._class_days(self._survey_day(year, term), grade)
            depression = self._dep_mean(sub, grade) + c.dep_state[sub]
            phq = model.phq.draw(rng, depression)
            yield from self._survey_block(sub, days, "phq-a", self._phq_texts(phq, depression, grade >= 7))
            anxiety = self._anx_mean(sub, grade) + c.anx_state[sub]
            yield from self._survey_block(sub, days, "gad-7", _answers_text(model.gad.draw(rng, anxiety)))
        sub = idx[surveyed]
        grade = grade_all[surveyed]
        days = self._class_days(self._survey_day(year, 3), grade)
        literacy = self._hl_mean(sub, grade, year) + c.hl_noise[sub]
        yield from self._survey_block(sub, days, "hl-student", _answers_text(model.hl.draw(rng, literacy)))

    def _phq_texts(self, phq: Ints, depression: Floats, junior: Bools) -> list[str]:
        """PHQ-A answers; junior pupils also answer the four supplementary items."""
        rng, n = self.rng, len(depression)
        past_year = rng.random(n) < _sigmoid(1.5 * (depression - 1.0))
        difficulty = (rng.random((n, 1)) < _sigmoid(1.5 * (depression[:, None] - np.array([0.3, 1.3, 2.2])))).sum(1)
        self_harm = phq[:, 8] > 0
        ideation = self_harm & (rng.random(n) < 0.35)
        attempt = rng.random(n) < np.where(ideation, 0.2, np.where(self_harm, 0.02, 0.002))
        extended = np.column_stack([phq, past_year, difficulty, ideation, attempt]).astype(np.int64)
        if not junior.any():
            return _answers_text(phq)
        short = _answers_text(phq)
        long = _answers_text(extended)
        return [long[i] if is_junior else short[i] for i, is_junior in enumerate(junior.tolist())]

    def _survey_block(self, idx: Ints, days: Ints, instrument: str, answers: list[str]) -> Iterator[Block]:
        c, n = self.cohort, len(idx)
        numbers, sexes, births = c.identity(idx)
        dates = _isos(days)
        for i in self._bad("survey", n):
            defect = int(self.defects.integers(0, 3))
            if defect == 0:
                values = answers[i].split(";")
                position = int(self.defects.integers(0, len(values)))
                values[position] = "4" if instrument != "hl-student" else "3"
                answers[i] = ";".join(values)
                self._defect("survey_answer_out_of_scale")
            elif defect == 1:
                answers[i] = ""
                self._defect("survey_blank_answers")
            else:
                dates[i] = _iso(int(c.birth[idx[i]]) - int(self.defects.integers(1, 400)))
                self._defect("survey_answered_before_birth")
        self._count("survey", n)
        yield "survey", zip(
            repeat(self.school.school_id, n), numbers, sexes, births, dates, repeat(instrument, n), repeat("1", n),
            answers, strict=True,
        )

    def _year_end_rows(self, idx: Ints, year: int) -> Iterator[Block]:
        c, rng, spec, school, n = self.cohort, self.rng, self.spec, self.school, len(idx)
        grade = self._grade(idx, year)
        graduating = grade >= self.high_grade
        draw = rng.random(n)
        transfer = ~graduating & (draw < spec.transfer_rate)
        leave = graduating | (~transfer & (draw < spec.transfer_rate + spec.leave_rate))
        others = [s.school_id for s in self.county.schools if s.school_id != school.school_id]
        if not others:
            leave |= transfer
            transfer[:] = False
        toggle = ~transfer & ~leave & (rng.random(n) < _LEFT_BEHIND_TOGGLE)
        summer = date(year + 1, 7, 1).toordinal()
        effective = summer + rng.integers(0, 60, n)
        effective = np.where(graduating, summer + rng.integers(0, 10, n), effective)
        c.left_behind[idx[toggle]] = ~c.left_behind[idx[toggle]]

        changed = np.flatnonzero(transfer | leave | toggle)
        pupils = idx[changed]
        k = len(changed)
        moving = transfer[changed]
        actions = np.where(moving, "transfer", np.where(leave[changed], "leave", "update")).astype(object)
        destinations = np.full(k, "", dtype=object)
        if others:
            destinations[moving] = np.array(others, dtype=object)[rng.integers(0, len(others), int(moving.sum()))]
        numbers, sexes, births = c.identity(pupils)
        self._count("records", k)
        yield "records", zip(
            repeat(school.school_id, k), numbers, sexes, births, repeat(self.county.county_id, k),
            _grade_texts(grade[changed]), actions.tolist(), _isos(effective[changed]), destinations.tolist(),
            _flags(c.boarder[pupils]), _flags(c.left_behind[pupils]), _flags(c.disability[pupils]), strict=True,
        )

        staying = ~transfer & ~leave
        c.active[idx[~staying]] = False
        keep = idx[staying]
        if not len(keep):
            return
        risk = self._step(keep, year)
        assert risk is not None  # with_risk is on
        m = len(keep)
        self._count("truth", m)
        yield "truth", zip(
            repeat(school.school_id, m), c.numbers[keep].tolist(), repeat(str(year), m),
            _grade_texts(grade[staying]), _probabilities(risk.myopia_onset),
            _probabilities(risk.overweight), _probabilities(risk.depression), _probabilities(risk.anxiety),
            _probabilities(risk.self_harm), _probabilities(risk.literate), strict=True,
        )

