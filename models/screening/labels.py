"""The screening models' labels: what "screened positive next time" means for each task, and who is eligible."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from models.school_year import school_year
from models.screening.history import (
    DEPRESSION_CONCERNS,
    StudentHistory,
    autumn_term,
    growth_in,
    vision_in,
)

TaskName = Literal["myopia_onset", "overweight", "depression"]


def myopia_onset_label(history: StudentHistory, origin_year: int) -> bool | None:
    """Screening myopia at the next school year's screening, for a student not myopic in `origin_year`.

    None when the student is not at risk (myopic or unscreened in `origin_year`) or has no usable
    screening in the next year.
    """
    if not _myopia_eligible(history, origin_year):
        return None
    after = vision_in(history, origin_year + 1)
    return None if after is None else after.screening_myopia


def _myopia_eligible(history: StudentHistory, origin_year: int) -> bool:
    now = vision_in(history, origin_year)
    return now is not None and now.screening_myopia is False


def overweight_label(history: StudentHistory, origin_year: int) -> bool | None:
    """WS/T 586 overweight or obesity at the next year's growth screening, for a student "normal" now."""
    if not _overweight_eligible(history, origin_year):
        return None
    after = growth_in(history, origin_year + 1)
    if after is None or after.wst586 == "not_applicable":
        return None
    return after.wst586 in ("overweight", "obesity")


def _overweight_eligible(history: StudentHistory, origin_year: int) -> bool:
    now = growth_in(history, origin_year)
    return now is not None and now.wst586 == "normal"


def _next_term(day: date, origin_year: int) -> bool:
    return school_year(day) == origin_year + 1 and autumn_term(day)


def _counselling_finding(history: StudentHistory, origin_year: int) -> bool | None:
    """What counsellors found about depression or self-harm alerts raised next term (any concern wins)."""
    findings = [
        o.finding for o in history.counselling
        if o.concern in DEPRESSION_CONCERNS and _next_term(o.observed_on, origin_year) and o.finding is not None
    ]
    if not findings:
        return None
    return any(findings)


def _next_term_screen(history: StudentHistory, origin_year: int) -> bool | None:
    next_term = sorted(
        (
            s for s in history.surveys
            if s.instrument == "phq-a" and s.positive_screen is not None and _next_term(s.answered_on, origin_year)
        ),
        key=lambda s: s.answered_on,
    )
    return next_term[0].positive_screen if next_term else None


def depression_label(history: StudentHistory, origin_year: int) -> bool | None:
    """Positive depression screen next term, or the counsellor's finding where an alert was closed with one.

    For a student who answered PHQ-A in `origin_year`: the finding of counselling alerts (depression
    or self-harm) raised in the next autumn term and closed with an outcome that says whether a
    concern was found; otherwise that term's first PHQ-A screen. None when neither exists.
    """
    if not _depression_eligible(history, origin_year):
        return None
    finding = _counselling_finding(history, origin_year)
    if finding is not None:
        return finding
    return _next_term_screen(history, origin_year)


def depression_label_source(history: StudentHistory, origin_year: int) -> str:
    """Where `depression_label` took its value from: ``counselling_outcome`` or ``screening``."""
    return "counselling_outcome" if _counselling_finding(history, origin_year) is not None else "screening"


def _depression_eligible(history: StudentHistory, origin_year: int) -> bool:
    return any(
        s.instrument == "phq-a" and school_year(s.answered_on) == origin_year for s in history.surveys
    )


def _from_screening(history: StudentHistory, origin_year: int) -> str:
    return "screening"


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One screening model: its label, who is eligible, and the generator's matching truth column."""

    name: TaskName
    title: str
    label_text: str
    label: Callable[[StudentHistory, int], bool | None]
    eligible: Callable[[StudentHistory, int], bool]
    truth_column: str
    label_source: Callable[[StudentHistory, int], str] = _from_screening
    """Where a sample's label came from, for tasks with more than one source."""


TASKS: Final[tuple[Task, ...]] = (
    Task(
        name="myopia_onset",
        title="Onset of screening myopia by the next school year",
        label_text=(
            "Among students not screening-myopic (GB/T 11533 acuity with SE <= -0.50 D) at this school "
            "year's vision screening: screening myopia at the next school year's screening."
        ),
        label=myopia_onset_label,
        eligible=_myopia_eligible,
        truth_column="p_myopia_onset_next_year",
    ),
    Task(
        name="overweight",
        title="Progression to WS/T 586 overweight or obesity by the next school year",
        label_text=(
            "Among students in the WS/T 586-2018 'normal' band at this school year's growth screening: "
            "overweight or obesity at the next school year's screening."
        ),
        label=overweight_label,
        eligible=_overweight_eligible,
        truth_column="p_overweight_next_year",
    ),
    Task(
        name="depression",
        title="Positive depression screen next term",
        label_text=(
            "Among students who answered PHQ-A this school year: PHQ-A total >= 10 at the autumn-term "
            "survey of the next school year; where a counselling alert about depression or self-harm raised "
            "in that term was closed with a finding, the counsellor's finding instead (concern confirmed, "
            "supported in school or referred: positive; concern not confirmed: negative)."
        ),
        label=depression_label,
        label_source=depression_label_source,
        eligible=_depression_eligible,
        truth_column="p_depression_positive_next_term",
    ),
)


def task(name: str) -> Task:
    """The task called `name` (raises KeyError naming the known ones)."""
    for candidate in TASKS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown screening task {name!r}; known: {', '.join(t.name for t in TASKS)}")
