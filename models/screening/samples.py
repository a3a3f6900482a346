"""Sample sets (feature rows, labels, subgroups) for training or scoring, and the split by time."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt

from models.screening.features import FEATURE_NAMES, feature_vector
from models.screening.history import StudentHistory, status_at
from models.screening.labels import Task

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


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
    status = status_at(history, date(origin_year + 1, 8, 31))

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
