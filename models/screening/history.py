"""What the archive holds about one student, as plain values, and picking observations by school year.

The screening models' labels, features and samples all read a `StudentHistory`; the selectors
below are their shared way of finding "this school year's screening" or "the status on a day".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, TypeVar

from models.school_year import school_year

_T = TypeVar("_T")


def autumn_term(day: date) -> bool:
    """Whether `day` is in a school year's first term."""
    # The first term runs from September to the winter holiday in January.
    return day.month >= 9 or day.month == 1


#: Outcomes of a closed counselling alert that find a concern, and one that finds none.
CONFIRMING_OUTCOMES: Final = frozenset({"concern_confirmed", "support_in_school"})
NOT_CONFIRMING_OUTCOMES: Final = frozenset({"concern_not_confirmed"})
#: Alert concerns that speak to the depression model's label.
DEPRESSION_CONCERNS: Final = frozenset({"depression", "self_harm"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CounsellingOutcome:
    """A closed counselling alert: when the observation that raised it was made, and what was found."""

    observed_on: date
    concern: str
    state: str
    """``resolved`` (with an outcome) or ``referred`` (handed to a specialist service)."""
    outcome: str | None

    @property
    def finding(self) -> bool | None:
        """True when a concern was found, False when it was not, None when the outcome says neither."""
        if self.state == "referred" or self.outcome in CONFIRMING_OUTCOMES:
            return True
        if self.outcome in NOT_CONFIRMING_OUTCOMES:
            return False
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class VisionObservation:
    measured_on: date
    school_id: str
    ucva_right: float
    ucva_left: float
    se_right: float | None
    se_left: float | None
    wears_glasses: bool
    screening_myopia: bool | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GrowthObservation:
    measured_on: date
    school_id: str
    bmi_z: float | None
    height_z: float | None
    wst586: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyObservation:
    answered_on: date
    school_id: str
    instrument: str
    total: int
    positive_screen: bool | None
    item_answers: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusObservation:
    """One health-record event: where the student was and which special groups applied."""

    effective_on: date
    school_id: str
    grade: int
    boarding: bool
    left_behind: bool
    disability: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StudentHistory:
    """Everything the archive holds about one student, each tuple in date order."""

    student_key: str
    sex: str
    birth_date: date
    vision: tuple[VisionObservation, ...] = ()
    growth: tuple[GrowthObservation, ...] = ()
    surveys: tuple[SurveyObservation, ...] = ()
    status: tuple[StatusObservation, ...] = ()
    counselling: tuple[CounsellingOutcome, ...] = ()


# Selecting observations by school year.


def last_in_year(items: Sequence[_T], year: int, day: Callable[[_T], date]) -> _T | None:
    """The latest of `items` dated (by `day`) in school year `year`, or None."""
    found = [item for item in items if school_year(day(item)) == year]
    return max(found, key=day) if found else None


def vision_in(history: StudentHistory, year: int) -> VisionObservation | None:
    """The student's last vision screening of school year `year`."""
    return last_in_year(history.vision, year, lambda v: v.measured_on)


def growth_in(history: StudentHistory, year: int) -> GrowthObservation | None:
    """The student's last growth screening of school year `year`."""
    return last_in_year(history.growth, year, lambda g: g.measured_on)


def surveys_up_to(history: StudentHistory, instrument: str, year: int) -> list[SurveyObservation]:
    """The student's `instrument` surveys of school year `year` and before, oldest first."""
    return sorted(
        (s for s in history.surveys if s.instrument == instrument and school_year(s.answered_on) <= year),
        key=lambda s: s.answered_on,
    )


def status_at(history: StudentHistory, day: date) -> StatusObservation | None:
    """The health record in force on `day` (the first one for a student registered later)."""
    known = [s for s in history.status if s.effective_on <= day]
    if known:
        return max(known, key=lambda s: s.effective_on)
    # A student registered after `day` (an import's effective date can lag the first screening).
    return min(history.status, key=lambda s: s.effective_on) if history.status else None


def grade_in(status: StatusObservation, year: int) -> int:
    """The grade in school year `year`, counted on from the grade `status` recorded."""
    # A record states the grade when it was made; most students have no record in later years,
    # so the grade moves on with the school years (repeating a grade is rare in compulsory school).
    return status.grade + year - school_year(status.effective_on)
