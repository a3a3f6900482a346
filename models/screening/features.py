"""The screening models' features: one student as of the end of a school year, as numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Final

from models.school_year import school_year
from models.screening.history import StudentHistory, VisionObservation, grade_in, status_at, surveys_up_to

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
    status = status_at(history, cutoff)
    age_years = (date(origin_year + 1, 9, 1) - history.birth_date).days / 365.25

    vision = sorted((v for v in history.vision if school_year(v.measured_on) <= origin_year),
                    key=lambda v: v.measured_on)
    growth = sorted((g for g in history.growth if school_year(g.measured_on) <= origin_year),
                    key=lambda g: g.measured_on)
    phq = surveys_up_to(history, "phq-a", origin_year)
    gad = surveys_up_to(history, "gad-7", origin_year)

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
        _NAN if status is None else float(grade_in(status, origin_year)),
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
