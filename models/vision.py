"""Vision classification: acuity notation, visual impairment, screening myopia, myopia grade.

Acuity is kept in the Chinese five-point notation of GB/T 11533-2011 (标准对数视力表), where
``L = 5 - logMAR`` and ``decimal = 10 ** (L - 5)``. Chart lines run 4.0..5.3 in steps of 0.1;
below 4.0 the walk-closer method gives ``L = 4.0 + log10(d / 5 m)``. Decimal acuity is derived
for display only, because the printed decimal labels are rounded (4.9 is 0.794, printed 0.8).

The rules come from 《儿童青少年近视防控适宜技术指南》 (NHC 2019, updated 2021) and
《近视防治指南（2024年版）》 (NHC), for children aged 6 and over:

* Visual impairment (视力不良), per eye on uncorrected distance acuity: normal >= 5.0,
  mild 4.9, moderate 4.6..4.8, severe <= 4.5. Each band's lower edge is its boundary, so a
  value between chart lines (4.95, from the walk-closer method or a conversion) belongs to
  the lower band: it has not reached the next line. The student's grade is the worse eye's.
* Screening myopia (筛查性近视), per eye: uncorrected acuity < 5.0 **and** non-cycloplegic
  spherical equivalent SE <= -0.50 D. The guideline says "<="; some quotations of
  WS/T 663-2020 say "< -0.50 D". We follow the guideline, so SE = -0.50 D counts as myopic.
  The student screens positive when either eye does. An eye with reduced acuity and no SE
  is unknown (None), and a student with no positive eye and an unknown eye is unknown.
* Myopia grade by SE: low -3.00 < SE <= -0.50, moderate -6.00 < SE <= -3.00, high
  SE <= -6.00. It is a refractive grade, given whatever the acuity; prevalence of myopia is
  counted on `VisionResult.screening_myopia`.

Spectacle wearers are screened on uncorrected acuity like everyone else; `wears_glasses` is
carried into the result for follow-up and does not change any rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

RULE_VERSION = "vision-1"
REFERENCE = "GB/T11533-2011;NHC-myopia-technical-guideline-2021;NHC-myopia-guideline-2024"

ACUITY_RANGE = (3.0, 5.3)
SE_RANGE = (-30.0, 20.0)
AGE_RANGE_YEARS = (0.0, 30.0)
MINIMUM_AGE_YEARS = 6.0

# Absorbs float error from conversions (5 + log10(0.1) is 3.9999999999999996) without moving
# any boundary that a recorded value can fall on.
_TOLERANCE = 1e-9

ImpairmentGrade = Literal["normal", "mild", "moderate", "severe", "not_applicable"]
MyopiaGrade = Literal["none", "low", "moderate", "high"]

_IMPAIRMENT_ORDER: tuple[ImpairmentGrade, ...] = ("normal", "mild", "moderate", "severe")
_MYOPIA_ORDER: tuple[MyopiaGrade, ...] = ("none", "low", "moderate", "high")


@dataclass(frozen=True, slots=True, kw_only=True)
class VisionResult:
    """Vision classification of one screening: per eye and for the student (worse eye)."""

    right_grade: ImpairmentGrade
    left_grade: ImpairmentGrade
    student_grade: ImpairmentGrade
    screening_myopia_right: bool | None
    screening_myopia_left: bool | None
    screening_myopia: bool | None
    myopia_grade_right: MyopiaGrade | None
    myopia_grade_left: MyopiaGrade | None
    myopia_grade: MyopiaGrade | None
    wears_glasses: bool
    reasons: tuple[str, ...]
    reference: str = REFERENCE
    rule_version: str = RULE_VERSION


def five_point_to_logmar(five_point: float) -> float:
    """logMAR of a five-point acuity: ``5 - L``."""
    return 5.0 - five_point


def logmar_to_five_point(logmar: float) -> float:
    """Five-point acuity of a logMAR value: ``5 - logMAR``."""
    return 5.0 - logmar


def five_point_to_decimal(five_point: float) -> float:
    """Decimal acuity (exact, not the chart's rounded label): ``10 ** (L - 5)``."""
    return math.pow(10.0, five_point - 5.0)


def decimal_to_five_point(decimal: float) -> float:
    """Five-point acuity of a decimal acuity: ``5 + log10(V)``."""
    if not (math.isfinite(decimal) and decimal > 0):
        raise ValueError(f"decimal acuity must be a positive number, got {decimal!r}")
    return 5.0 + math.log10(decimal)


def walk_closer_five_point(distance_m: float) -> float:
    """Five-point acuity when the 4.0 line is first read at `distance_m` metres (< 5 m)."""
    if not (math.isfinite(distance_m) and 0 < distance_m <= 5):
        raise ValueError(f"walk-closer distance must be in (0, 5] metres, got {distance_m!r}")
    return 4.0 + math.log10(distance_m / 5.0)


def chart_line(five_point: float) -> float:
    """The nearest chart line (one decimal) of a computed five-point value."""
    return round(five_point, 1) + 0.0


def impairment_grade(ucva: float) -> ImpairmentGrade:
    """Visual impairment grade of one eye's uncorrected five-point acuity."""
    if ucva >= 5.0 - _TOLERANCE:
        return "normal"
    if ucva >= 4.9 - _TOLERANCE:
        return "mild"
    if ucva >= 4.6 - _TOLERANCE:
        return "moderate"
    return "severe"


def myopia_grade(se: float) -> MyopiaGrade:
    """Myopia grade of a spherical equivalent in dioptres (《近视防治指南（2024年版）》)."""
    if se <= -6.0 + _TOLERANCE:
        return "high"
    if se <= -3.0 + _TOLERANCE:
        return "moderate"
    if se <= -0.5 + _TOLERANCE:
        return "low"
    return "none"


def screening_myopia(ucva: float, se: float | None) -> bool | None:
    """Screening myopia of one eye: acuity < 5.0 and SE <= -0.50 D; None when SE is needed
    but missing."""
    if ucva >= 5.0 - _TOLERANCE:
        return False
    if se is None:
        return None
    return se <= -0.5 + _TOLERANCE


def spherical_equivalent(sphere: float, cylinder: float) -> float:
    """SE = sphere + cylinder / 2, in dioptres."""
    return sphere + cylinder / 2


def classify_vision(
    *,
    age_years: float,
    ucva_right: float,
    ucva_left: float,
    se_right: float | None,
    se_left: float | None,
    wears_glasses: bool = False,
) -> VisionResult:
    """Classify one vision screening (uncorrected five-point acuity and SE of each eye).

    Out-of-range values raise ValueError naming the field. Under 6 years the impairment and
    screening-myopia rules do not apply: grades are ``"not_applicable"``, screening myopia is
    None, and `VisionResult.reasons` says why. The SE-based myopia grade is given at any age.
    """
    _check("age_years", age_years, AGE_RANGE_YEARS, "years")
    _check("ucva_right", ucva_right, ACUITY_RANGE, "(five-point, GB/T 11533)")
    _check("ucva_left", ucva_left, ACUITY_RANGE, "(five-point, GB/T 11533)")
    if se_right is not None:
        _check("se_right", se_right, SE_RANGE, "D")
    if se_left is not None:
        _check("se_left", se_left, SE_RANGE, "D")

    reasons: list[str] = []
    right_grade_: MyopiaGrade | None = None if se_right is None else myopia_grade(se_right)
    left_grade_: MyopiaGrade | None = None if se_left is None else myopia_grade(se_left)

    if age_years < MINIMUM_AGE_YEARS:
        reasons.append(
            f"age {age_years:.1f} years: impairment and screening-myopia rules apply from {MINIMUM_AGE_YEARS:.0f} years"
        )
        right: ImpairmentGrade = "not_applicable"
        left: ImpairmentGrade = "not_applicable"
        student: ImpairmentGrade = "not_applicable"
        myopic_right: bool | None = None
        myopic_left: bool | None = None
        myopic: bool | None = None
    else:
        right = impairment_grade(ucva_right)
        left = impairment_grade(ucva_left)
        student = max(right, left, key=_IMPAIRMENT_ORDER.index)
        myopic_right = screening_myopia(ucva_right, se_right)
        myopic_left = screening_myopia(ucva_left, se_left)
        for eye, myopic_eye in (("right", myopic_right), ("left", myopic_left)):
            if myopic_eye is None:
                reasons.append(
                    f"{eye} eye: acuity below 5.0 and no spherical equivalent, so screening myopia is unknown"
                )
        if myopic_right or myopic_left:
            myopic = True
        elif myopic_right is None or myopic_left is None:
            myopic = None
        else:
            myopic = False

    for eye, se in (("right", se_right), ("left", se_left)):
        if se is None:
            reasons.append(f"{eye} eye: no spherical equivalent, so no myopia grade")

    return VisionResult(
        right_grade=right,
        left_grade=left,
        student_grade=student,
        screening_myopia_right=myopic_right,
        screening_myopia_left=myopic_left,
        screening_myopia=myopic,
        myopia_grade_right=right_grade_,
        myopia_grade_left=left_grade_,
        myopia_grade=_worse_myopia_grade(right_grade_, left_grade_),
        wears_glasses=wears_glasses,
        reasons=tuple(reasons),
    )


def _worse_myopia_grade(right: MyopiaGrade | None, left: MyopiaGrade | None) -> MyopiaGrade | None:
    known = [grade for grade in (right, left) if grade is not None]
    if not known:
        return None
    worst = max(known, key=_MYOPIA_ORDER.index)
    # With one eye unknown the worse eye is only certain if the known eye is already "high".
    if len(known) == 2 or worst == "high":
        return worst
    return None


def _check(name: str, value: float, bounds: tuple[float, float], unit: str) -> None:
    low, high = bounds
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} {value!r} is outside {low:g}..{high:g} {unit}")
