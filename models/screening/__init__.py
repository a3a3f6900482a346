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

The code is one module per job: `history` (the plain values read from the archive), `labels`
(and the tasks), `features`, `samples` (sample sets and the time split), `metrics` and
`model_card`. Their public names are importable from `models.screening` as before.
"""

from __future__ import annotations

from models.screening.features import FEATURE_NAMES, feature_vector
from models.screening.history import (
    CounsellingOutcome,
    GrowthObservation,
    StatusObservation,
    StudentHistory,
    SurveyObservation,
    VisionObservation,
)
from models.screening.labels import (
    TASKS,
    Task,
    TaskName,
    depression_label,
    depression_label_source,
    myopia_onset_label,
    overweight_label,
    task,
)
from models.screening.metrics import (
    BinaryMetrics,
    CalibrationBin,
    SubgroupMetrics,
    calibration_bins,
    evaluate,
    subgroup_metrics,
)
from models.screening.model_card import INTENDED_USE, MODEL_CARD_SECTIONS, ModelCard
from models.screening.samples import SampleSet, build_samples, time_split

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
