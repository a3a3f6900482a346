"""Screening models: features, labels, splits, metrics and model cards over plain values.

A *sample* is one student at the end of one school year (the "origin" year Y, 1 September Y to
31 August Y+1). Its features use only what the archive held by then: the trajectories of
spherical equivalent and acuity, BMI-for-age z, the WS/T 586 category, PHQ-A/GAD-7 totals and the
PHQ-A item answers, age, sex, grade, the school's urban/rural setting and the special groups
(boarding, left-behind, disability) as recorded on the student's health record at that time.
Its label comes from the archive too, from the next screening:

* ``myopia_onset``: not screening-myopic at the year-Y vision screening, screening myopia at
  the year-Y+1 screening;
* ``overweight``: WS/T 586 "normal" at the year-Y growth screening, overweight or obesity at the
  year-Y+1 screening;
* ``depression``: answered PHQ-A in year Y; positive PHQ-A screen (total >= 10) in the autumn
  term of year Y+1 (the next term after the spring survey) -- unless a counselling alert about
  depression or self-harm raised in that term was closed with a finding: the counsellor's
  outcome is then the label (a concern confirmed, supported in school or referred on: positive;
  not confirmed: negative). Outcomes that say nothing about the concern (parents informed, the
  student left) leave the screen's label.

A student without the later screening has no label and is left out of training; the same rule
without the future part says who is eligible for scoring. The split is by time: the newest
origin year with labels is the test set and every earlier one trains, so a model is judged on a
year it has never seen, as it will be used.

The scores rank students for review by a school doctor or counsellor. They are not diagnoses,
and the model card says so.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Final, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.school_year import school_year

__all__ = [
    "FEATURE_NAMES",
    "INTENDED_USE",
    "MODEL_CARD_SECTIONS",
    "TASKS",
    "BinaryMetrics",
    "CalibrationBin",
    "CounsellingOutcome",
    "GrowthObservation",
    "ModelCard",
    "SampleSet",
    "StatusObservation",
    "StudentHistory",
    "SubgroupMetrics",
    "SurveyObservation",
    "Task",
    "TaskName",
    "VisionObservation",
    "build_samples",
    "calibration_bins",
    "depression_label",
    "depression_label_source",
    "evaluate",
    "feature_vector",
    "myopia_onset_label",
    "overweight_label",
    "subgroup_metrics",
    "task",
    "time_split",
]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
_T = TypeVar("_T")
TaskName = Literal["myopia_onset", "overweight", "depression"]

INTENDED_USE: Final = (
    "Prioritising review: ranks students so that a school doctor or counsellor looks at those "
    "most likely to screen positive next time first. It is not a diagnosis, must not be shown to "
    "students or parents as a result, and must not decide anything about a student on its own."
)

MODEL_CARD_SECTIONS: Final[tuple[str, ...]] = (
    "Intended use",
    "Label",
    "Data",
    "Features",
    "Model",
    "Metrics",
    "Comparison with the true risk",
    "Calibration",
    "Subgroups",
    "Limitations",
)


def _autumn_term(day: date) -> bool:
    # The first term runs from September to the winter holiday in January.
    return day.month >= 9 or day.month == 1


# --- Plain values read from the archive ---------------------------------------------------------


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


# --- Selecting observations by school year ------------------------------------------------------


def _last_in_year(items: Sequence[_T], year: int, day: Callable[[_T], date]) -> _T | None:
    found = [item for item in items if school_year(day(item)) == year]
    return max(found, key=day) if found else None


def _vision_in(history: StudentHistory, year: int) -> VisionObservation | None:
    return _last_in_year(history.vision, year, lambda v: v.measured_on)


def _growth_in(history: StudentHistory, year: int) -> GrowthObservation | None:
    return _last_in_year(history.growth, year, lambda g: g.measured_on)


def _surveys_up_to(history: StudentHistory, instrument: str, year: int) -> list[SurveyObservation]:
    return sorted(
        (s for s in history.surveys if s.instrument == instrument and school_year(s.answered_on) <= year),
        key=lambda s: s.answered_on,
    )


def _status_at(history: StudentHistory, day: date) -> StatusObservation | None:
    known = [s for s in history.status if s.effective_on <= day]
    if known:
        return max(known, key=lambda s: s.effective_on)
    # A student registered after `day` (an import's effective date can lag the first screening).
    return min(history.status, key=lambda s: s.effective_on) if history.status else None


def _grade_in(status: StatusObservation, year: int) -> int:
    # A record states the grade when it was made; most students have no record in later years,
    # so the grade moves on with the school years (repeating a grade is rare in compulsory school).
    return status.grade + year - school_year(status.effective_on)


# --- Labels -------------------------------------------------------------------------------------


def myopia_onset_label(history: StudentHistory, origin_year: int) -> bool | None:
    """Screening myopia at the next school year's screening, for a student not myopic in `origin_year`.

    None when the student is not at risk (myopic or unscreened in `origin_year`) or has no usable
    screening in the next year.
    """
    if not _myopia_eligible(history, origin_year):
        return None
    after = _vision_in(history, origin_year + 1)
    return None if after is None else after.screening_myopia


def _myopia_eligible(history: StudentHistory, origin_year: int) -> bool:
    now = _vision_in(history, origin_year)
    return now is not None and now.screening_myopia is False


def overweight_label(history: StudentHistory, origin_year: int) -> bool | None:
    """WS/T 586 overweight or obesity at the next year's growth screening, for a student "normal" now."""
    if not _overweight_eligible(history, origin_year):
        return None
    after = _growth_in(history, origin_year + 1)
    if after is None or after.wst586 == "not_applicable":
        return None
    return after.wst586 in ("overweight", "obesity")


def _overweight_eligible(history: StudentHistory, origin_year: int) -> bool:
    now = _growth_in(history, origin_year)
    return now is not None and now.wst586 == "normal"


def _next_term(day: date, origin_year: int) -> bool:
    return school_year(day) == origin_year + 1 and _autumn_term(day)


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


# --- Features -----------------------------------------------------------------------------------

_PHQ_ITEMS: Final = 9

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "age_years",
    "female",
    "grade",
    "urban",
    "boarding",
    "left_behind",
    "disability",
    "se_worse",
    "se_worse_previous",
    "se_change_per_year",
    "ucva_worse",
    "ucva_change_per_year",
    "screening_myopia",
    "wears_glasses",
    "vision_screenings",
    "bmi_z",
    "bmi_z_previous",
    "bmi_z_change_per_year",
    "height_z",
    "wst586_overweight_or_obese",
    "growth_screenings",
    "phq_total",
    "phq_total_previous",
    "phq_change",
    "phq_total_max",
    "phq_positive",
    "phq_positive_count",
    "phq_surveys",
    *(f"phq_item_{i}" for i in range(1, _PHQ_ITEMS + 1)),
    "gad_total",
    "gad_total_previous",
    "gad_positive",
)

_NAN: Final = math.nan


def _worse_se(v: VisionObservation) -> float:
    values = [x for x in (v.se_right, v.se_left) if x is not None]
    return min(values) if values else _NAN


def _per_year(new: float, old: float, new_day: date, old_day: date) -> float:
    years = (new_day - old_day).days / 365.25
    if years <= 0.25 or math.isnan(new) or math.isnan(old):
        return _NAN
    return (new - old) / years


def _flag(value: bool | None) -> float:
    return _NAN if value is None else float(value)


def feature_vector(
    history: StudentHistory, origin_year: int, urban_by_school: Mapping[str, bool]
) -> tuple[float, ...]:
    """The features of `history` as of the end of school year `origin_year`, in `FEATURE_NAMES` order.

    Missing values are NaN (the models handle them); nothing dated after 31 August of
    `origin_year + 1` is read.
    """
    cutoff = date(origin_year + 1, 8, 31)
    status = _status_at(history, cutoff)
    age_years = (date(origin_year + 1, 9, 1) - history.birth_date).days / 365.25

    vision = sorted((v for v in history.vision if school_year(v.measured_on) <= origin_year),
                    key=lambda v: v.measured_on)
    growth = sorted((g for g in history.growth if school_year(g.measured_on) <= origin_year),
                    key=lambda g: g.measured_on)
    phq = _surveys_up_to(history, "phq-a", origin_year)
    gad = _surveys_up_to(history, "gad-7", origin_year)

    latest_school = None
    dated: list[tuple[date, str]] = [(v.measured_on, v.school_id) for v in vision]
    dated += [(g.measured_on, g.school_id) for g in growth]
    dated += [(s.answered_on, s.school_id) for s in (*phq, *gad)]
    if dated:
        latest_school = max(dated)[1]
    elif status is not None:
        latest_school = status.school_id
    urban = urban_by_school.get(latest_school) if latest_school is not None else None

    if vision:
        last = vision[-1]
        se, ucva = _worse_se(last), min(last.ucva_right, last.ucva_left)
        if len(vision) > 1:
            before = vision[-2]
            se_before = _worse_se(before)
            se_change = _per_year(se, se_before, last.measured_on, before.measured_on)
            ucva_change = _per_year(ucva, min(before.ucva_right, before.ucva_left), last.measured_on,
                                    before.measured_on)
        else:
            se_before = se_change = ucva_change = _NAN
        vision_part = (se, se_before, se_change, ucva, ucva_change, _flag(last.screening_myopia),
                       float(last.wears_glasses), float(len(vision)))
    else:
        vision_part = (_NAN,) * 7 + (0.0,)

    if growth:
        g_last = growth[-1]
        bmi_z = _NAN if g_last.bmi_z is None else g_last.bmi_z
        if len(growth) > 1:
            g_before = growth[-2]
            bmi_before = _NAN if g_before.bmi_z is None else g_before.bmi_z
            bmi_change = _per_year(bmi_z, bmi_before, g_last.measured_on, g_before.measured_on)
        else:
            bmi_before = bmi_change = _NAN
        heavy = _NAN if g_last.wst586 == "not_applicable" else float(g_last.wst586 in ("overweight", "obesity"))
        growth_part = (bmi_z, bmi_before, bmi_change, _NAN if g_last.height_z is None else g_last.height_z,
                       heavy, float(len(growth)))
    else:
        growth_part = (_NAN,) * 5 + (0.0,)

    if phq:
        p_last = phq[-1]
        p_before = float(phq[-2].total) if len(phq) > 1 else _NAN
        items = list(p_last.item_answers or ())[:_PHQ_ITEMS]
        item_part = tuple(float(x) for x in items) + (_NAN,) * (_PHQ_ITEMS - len(items))
        phq_part = (float(p_last.total), p_before, float(p_last.total) - p_before,
                    float(max(s.total for s in phq)), _flag(p_last.positive_screen),
                    float(sum(1 for s in phq if s.positive_screen)), float(len(phq)), *item_part)
    else:
        # total, previous, change, max, positive: unknown; positive count and surveys: none.
        phq_part = (_NAN,) * 5 + (0.0, 0.0) + (_NAN,) * _PHQ_ITEMS

    if gad:
        gad_part = (float(gad[-1].total), float(gad[-2].total) if len(gad) > 1 else _NAN,
                    _flag(gad[-1].positive_screen))
    else:
        gad_part = (_NAN, _NAN, _NAN)

    values = (
        age_years,
        1.0 if history.sex == "female" else 0.0,
        _NAN if status is None else float(_grade_in(status, origin_year)),
        _flag(urban),
        _NAN if status is None else float(status.boarding),
        _NAN if status is None else float(status.left_behind),
        _NAN if status is None else float(status.disability),
        *vision_part,
        *growth_part,
        *phq_part,
        *gad_part,
    )
    assert len(values) == len(FEATURE_NAMES)  # a feature added to one list and not the other
    return values


# --- Sample sets and the time split -------------------------------------------------------------

#: The groups every model is also judged on (each student is in one value of each).
SUBGROUPS: Final[tuple[str, ...]] = ("sex", "urban_rural", "left_behind", "boarding", "disability")


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleSet:
    """Feature rows with labels (or none, for scoring) and what identifies and groups them."""

    features: Floats
    labels: Bools
    student_keys: tuple[str, ...]
    origin_years: npt.NDArray[np.int64]
    groups: Mapping[str, tuple[str, ...]]
    label_sources: tuple[str, ...] = ()
    """Per labelled row, where its label came from (empty for rows to score)."""

    def __len__(self) -> int:
        return len(self.student_keys)

    def subset(self, mask: Bools) -> SampleSet:
        """The rows where `mask` is true."""
        keep = np.flatnonzero(mask)
        return SampleSet(
            features=self.features[keep],
            labels=self.labels[keep],
            student_keys=tuple(self.student_keys[i] for i in keep),
            origin_years=self.origin_years[keep],
            groups={name: tuple(values[i] for i in keep) for name, values in self.groups.items()},
            label_sources=tuple(self.label_sources[i] for i in keep) if self.label_sources else (),
        )

    def label_source_counts(self) -> dict[str, int]:
        """How many rows took their label from each source."""
        return dict(Counter(self.label_sources))


def _group_values(history: StudentHistory, origin_year: int, urban: float) -> dict[str, str]:
    status = _status_at(history, date(origin_year + 1, 8, 31))

    def yes_no(value: bool | None) -> str:
        return "unknown" if value is None else ("yes" if value else "no")

    return {
        "sex": history.sex,
        "urban_rural": "unknown" if math.isnan(urban) else ("urban" if urban else "rural"),
        "left_behind": yes_no(None if status is None else status.left_behind),
        "boarding": yes_no(None if status is None else status.boarding),
        "disability": yes_no(None if status is None else status.disability),
    }


def build_samples(
    histories: Iterable[StudentHistory],
    task: Task,
    origin_years: Iterable[int],
    urban_by_school: Mapping[str, bool],
    *,
    labelled: bool = True,
) -> SampleSet:
    """One row per student and origin year: labelled rows for training, or eligible rows for scoring."""
    years = tuple(origin_years)
    rows: list[tuple[float, ...]] = []
    labels: list[bool] = []
    keys: list[str] = []
    row_years: list[int] = []
    sources: list[str] = []
    groups: dict[str, list[str]] = {name: [] for name in SUBGROUPS}
    urban_index = FEATURE_NAMES.index("urban")
    for history in histories:
        for year in years:
            if labelled:
                label = task.label(history, year)
                if label is None:
                    continue
            elif not task.eligible(history, year):
                continue
            else:
                label = False
            row = feature_vector(history, year, urban_by_school)
            rows.append(row)
            labels.append(label)
            keys.append(history.student_key)
            row_years.append(year)
            if labelled:
                sources.append(task.label_source(history, year))
            for name, value in _group_values(history, year, row[urban_index]).items():
                groups[name].append(value)
    return SampleSet(
        features=np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES)),
        labels=np.array(labels, dtype=np.bool_),
        student_keys=tuple(keys),
        origin_years=np.array(row_years, dtype=np.int64),
        groups={name: tuple(values) for name, values in groups.items()},
        label_sources=tuple(sources),
    )


def time_split(origin_years: npt.NDArray[np.int64], test_year: int | None = None) -> tuple[Bools, Bools]:
    """(train, test) masks: the newest origin year (or `test_year`) tests, every earlier year trains.

    Later years are never used for training, so no future screening leaks into the model.
    """
    if not len(origin_years):
        raise ValueError("no samples to split")
    test = int(origin_years.max()) if test_year is None else test_year
    train_mask = origin_years < test
    test_mask = origin_years == test
    if not train_mask.any() or not test_mask.any():
        raise ValueError(f"a time split at {test} needs samples before it and in it")
    return train_mask, test_mask


# --- Metrics ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BinaryMetrics:
    n: int
    positives: int
    prevalence: float
    roc_auc: float | None
    """None when only one class is present (the AUC is undefined)."""
    pr_auc: float | None
    """Average precision; its chance level is the prevalence."""
    brier: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationBin:
    lower: float
    upper: float
    n: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SubgroupMetrics:
    group: str
    value: str
    metrics: BinaryMetrics


def _checked(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[Bools, Floats]:
    y = np.asarray(labels, dtype=np.bool_)
    p = np.asarray(scores, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {p.shape} must be one-dimensional and the same length")
    if np.isnan(p).any():
        raise ValueError("scores contain NaN")
    return y, p


def evaluate(labels: npt.ArrayLike, scores: npt.ArrayLike, *, probabilities: bool = True) -> BinaryMetrics:
    """ROC AUC, PR AUC (average precision) and, for probabilities, the Brier score."""
    y, p = _checked(labels, scores)
    n, positives = len(y), int(y.sum())
    both = 0 < positives < n
    return BinaryMetrics(
        n=n,
        positives=positives,
        prevalence=positives / n if n else _NAN,
        roc_auc=float(roc_auc_score(y, p)) if both else None,
        pr_auc=float(average_precision_score(y, p)) if both else None,
        brier=float(brier_score_loss(y, p)) if probabilities and n else None,
    )


def calibration_bins(labels: npt.ArrayLike, scores: npt.ArrayLike, *, bins: int = 10) -> tuple[CalibrationBin, ...]:
    """Predicted against observed rates in quantile bins of the score (empty bins dropped)."""
    y, p = _checked(labels, scores)
    if not len(y):
        return ()
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    result = []
    for b in range(len(edges) - 1):
        inside = index == b
        if inside.any():
            result.append(CalibrationBin(
                lower=float(edges[b]), upper=float(edges[b + 1]), n=int(inside.sum()),
                mean_predicted=float(p[inside].mean()), observed_rate=float(y[inside].mean()),
            ))
    return tuple(result)


def subgroup_metrics(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: Mapping[str, Sequence[str]]
) -> tuple[SubgroupMetrics, ...]:
    """`evaluate` within each value of each grouping (sex, urban/rural, each special group)."""
    y, p = _checked(labels, scores)
    result = []
    for name, values in groups.items():
        column = np.asarray(values, dtype=object)
        if len(column) != len(y):
            raise ValueError(f"group {name!r} has {len(column)} values for {len(y)} samples")
        for value in sorted(set(values)):
            inside = column == value
            result.append(SubgroupMetrics(group=name, value=value, metrics=evaluate(y[inside], p[inside])))
    return tuple(result)


# --- The model card -----------------------------------------------------------------------------


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCard:
    """What a trained model is for, what it was trained on and how well it did (Mitchell et al. 2019)."""

    name: TaskName
    version: str
    title: str
    label: str
    created_at: str
    algorithm: str
    calibration_method: str
    features: tuple[str, ...]
    train_years: tuple[int, ...]
    test_year: int
    train: BinaryMetrics
    test: BinaryMetrics
    calibration: tuple[CalibrationBin, ...]
    subgroups: tuple[SubgroupMetrics, ...]
    true_risk: BinaryMetrics | None = None
    """The generator's true probabilities on the test rows that have one (synthetic data only)."""
    model_on_true_risk_rows: BinaryMetrics | None = None
    """This model on exactly the rows of `true_risk`, so the two AUCs compare like with like."""
    sha256: str = ""
    intended_use: str = INTENDED_USE
    limitations: tuple[str, ...] = field(default_factory=tuple)
    label_sources: Mapping[str, int] = field(default_factory=dict)
    """Training and test samples by where their label came from (screening, counselling outcome)."""

    @property
    def auc_gap(self) -> float | None:
        """True-risk AUC minus model AUC: how much ranking the model leaves on the table."""
        model = self.model_on_true_risk_rows
        if self.true_risk is None or self.true_risk.roc_auc is None or model is None or model.roc_auc is None:
            return None
        return self.true_risk.roc_auc - model.roc_auc

    def as_dict(self) -> dict[str, object]:
        """The card as JSON-ready values."""
        result = asdict(self)
        result["auc_gap"] = self.auc_gap
        return result

    def to_json(self) -> str:
        """The card as indented JSON (NaN written as null)."""
        return json.dumps(_no_nan(self.as_dict()), indent=2, ensure_ascii=False, sort_keys=True)

    def _label_sources_line(self) -> str:
        counts = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in sorted(self.label_sources.items()))
        return f"Label sources (train and test samples): {counts}."

    def to_markdown(self) -> str:
        """The card as a Markdown document with every section in `MODEL_CARD_SECTIONS`."""
        t = self.test
        lines = [
            f"# Model card: {self.title}",
            "",
            f"Model `{self.name}`, version `{self.version}`, trained {self.created_at}.",
            f"Artifact sha256: `{self.sha256 or 'not yet written'}`.",
            "",
            "## Intended use",
            "",
            self.intended_use,
            "",
            "## Label",
            "",
            self.label,
            "",
            *([self._label_sources_line(), ""] if self.label_sources else []),
            "## Data",
            "",
            "Samples are students at the end of a school year, with features from the archive up to then.",
            f"Time-based split: trained on origin years {', '.join(map(str, self.train_years))} "
            f"({self.train.n} samples, {self.train.positives} positive); tested on {self.test_year} "
            f"({t.n} samples, {t.positives} positive, prevalence {_number(t.prevalence)}).",
            "",
            "## Features",
            "",
            ", ".join(f"`{f}`" for f in self.features),
            "",
            "## Model",
            "",
            f"{self.algorithm}; probabilities calibrated with {self.calibration_method}.",
            "",
            "## Metrics",
            "",
            "| set | n | positives | ROC AUC | PR AUC | Brier |",
            "|---|---|---|---|---|---|",
            *(
                f"| {name} | {m.n} | {m.positives} | {_number(m.roc_auc)} | {_number(m.pr_auc)} | {_number(m.brier)} |"
                for name, m in (("train", self.train), (f"test {self.test_year}", t))
            ),
            "",
            f"PR AUC at chance is the prevalence ({_number(t.prevalence)}).",
            "",
            "## Comparison with the true risk",
            "",
        ]
        if self.true_risk is None or self.model_on_true_risk_rows is None:
            lines.append("No true risk is known for this archive (it is not the synthetic province).")
        else:
            r, m = self.true_risk, self.model_on_true_risk_rows
            lines += [
                "On the synthetic province the generator's true probabilities are known: the best ranking any "
                f"model could achieve. On the same test rows ({r.n} of {t.n} have a true risk):",
                "",
                "| scorer | ROC AUC | PR AUC | Brier |",
                "|---|---|---|---|",
                f"| true risk | {_number(r.roc_auc)} | {_number(r.pr_auc)} | {_number(r.brier)} |",
                f"| this model | {_number(m.roc_auc)} | {_number(m.pr_auc)} | {_number(m.brier)} |",
                "",
                f"AUC gap (true risk minus model): **{_number(self.auc_gap)}**.",
                "",
                "The true risk is computed from latent quantities no archive holds (near work and outdoor "
                "time, the underlying mood state, the shocks of the year), so part of the gap is out of "
                "reach of any model trained on screenings.",
            ]
        lines += [
            "",
            "## Calibration",
            "",
            "Test set, quantile bins of the predicted probability.",
            "",
            "| predicted range | n | mean predicted | observed rate |",
            "|---|---|---|---|",
            *(
                f"| {b.lower:.3f}-{b.upper:.3f} | {b.n} | {b.mean_predicted:.3f} | {b.observed_rate:.3f} |"
                for b in self.calibration
            ),
            "",
            "## Subgroups",
            "",
            "Test set. AUC is n/a where a group has only one outcome.",
            "",
            "| group | value | n | positives | ROC AUC | PR AUC | Brier |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {s.group} | {s.value} | {s.metrics.n} | {s.metrics.positives} | {_number(s.metrics.roc_auc)} "
                f"| {_number(s.metrics.pr_auc)} | {_number(s.metrics.brier)} |"
                for s in self.subgroups
            ),
            "",
            "## Limitations",
            "",
            *(f"- {item}" for item in self.limitations),
            "",
        ]
        return "\n".join(lines)


def _no_nan(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value
