"""The standards never refuse an event its contract admitted: every bound of a contract lies inside
the domain of the standard that classifies it, so `classify_event` cannot raise for a valid event
and `models.importing.check_row` has no "unclassifiable" outcome.

The bounds are read from the contracts' own field declarations, so widening a contract beyond what
a standard takes fails here. Each bounded number is drawn at its extremes (open bounds one float
inside) as well as anywhere between, in every combination Hypothesis tries.
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any

import annotated_types
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from models.contracts import BmiScreening, FitnessTest, PsychSurvey, VisionScreening
from models.fitness import ITEM_INFO, items_for
from models.pipeline import ProcessedMessages, classify_event
from models.surveys import INSTRUMENTS
from models.types import SEXES
from tests import factories


def _bounds(model: type[BaseModel], name: str) -> tuple[float, float, bool]:
    """(lowest, highest, integer) a field admits, from its declaration (open bounds one step in)."""
    field = model.model_fields[name]
    metadata = list(field.metadata)
    annotation: Any = field.annotation
    for argument in (typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType)
                     else ()):
        if typing.get_origin(argument) is typing.Annotated:
            annotation = typing.get_args(argument)[0]
            metadata += [m for info in argument.__metadata__ for m in getattr(info, "metadata", [info])]
    integer = annotation is int or int in typing.get_args(annotation)
    low, high = -math.inf, math.inf
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = float(item.ge)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Gt):
            low = float(item.gt) + 1 if integer else math.nextafter(float(item.gt), math.inf)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Le):
            high = float(item.le)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Lt):
            high = float(item.lt) - 1 if integer else math.nextafter(float(item.lt), -math.inf)  # type: ignore[arg-type]
    assert math.isfinite(low) and math.isfinite(high), f"{model.__name__}.{name} is not bounded on both sides"
    return low, high, integer


def _number(model: type[BaseModel], name: str) -> st.SearchStrategy[float]:
    low, high, integer = _bounds(model, name)
    if integer:
        return st.sampled_from([int(low), int(high)]) | st.integers(int(low), int(high))
    return st.sampled_from([low, high]) | st.floats(low, high)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def _valid(model: type[BaseModel], base: BaseModel, overrides: dict[str, Any]) -> Any:
    data = base.model_dump(mode="json", by_alias=True) | overrides
    try:
        return model.model_validate_json(json.dumps(data))  # as the wire and the importer give it
    except ValidationError:
        assume(False)  # a cross-field rule refused it: not an event the standards will see


def _classifies_once(event: Any) -> None:
    out = ProcessedMessages()
    classify_event(event, out)  # raises ValueError if the standard refuses it
    assert len(out.growth) + len(out.vision) + len(out.surveys) + len(out.fitness) == 1


# Five-point acuity has one decimal (the contract refuses others): its tenths, extremes included.
_low_acuity, _high_acuity, _ = _bounds(VisionScreening, "ucva_right")
acuities = st.integers(round(_low_acuity * 10), round(_high_acuity * 10)).map(lambda tenths: tenths / 10)


@settings(max_examples=400, deadline=None)
@given(sex=st.sampled_from(SEXES), age=_number(BmiScreening, "age_months"),
       height=_optional(_number(BmiScreening, "height_cm")), weight=_optional(_number(BmiScreening, "weight_kg")),
       oedema=st.sampled_from([None, True, False]), with_completed_months=st.booleans())
def test_every_admitted_growth_screening_is_classified(*, sex: str, age: float, height: float | None,
                                                       weight: float | None, oedema: bool | None,
                                                       with_completed_months: bool) -> None:
    completed = min(int(age), 299) if with_completed_months else None
    event = _valid(BmiScreening, factories.bmi(1), {
        "sex": sex, "age_months": age, "height_cm": height, "weight_kg": weight, "oedema": oedema,
        "age_completed_months": completed})
    _classifies_once(event)


@settings(max_examples=300, deadline=None)
@given(sex=st.sampled_from(SEXES), age=_number(VisionScreening, "age_months"), right=acuities, left=acuities,
       se_right=_optional(_number(VisionScreening, "se_right")), se_left=_optional(_number(VisionScreening, "se_left")),
       glasses=st.booleans())
def test_every_admitted_vision_screening_is_classified(*, sex: str, age: float, right: float, left: float,
                                                       se_right: float | None, se_left: float | None,
                                                       glasses: bool) -> None:
    event = _valid(VisionScreening, factories.vision(1), {
        "sex": sex, "age_months": age, "ucva_right": right, "ucva_left": left, "se_right": se_right,
        "se_left": se_left, "wears_glasses": glasses})
    _classifies_once(event)


@st.composite
def _answers(draw: st.DrawFn) -> tuple[str, str, list[int]]:
    instrument = draw(st.sampled_from(sorted(INSTRUMENTS.values(), key=lambda i: (i.id, i.version))))
    count = draw(st.sampled_from(instrument.accepted_counts))
    answers = [draw(st.sampled_from([low, high]) | st.integers(low, high))
               for low, high in instrument.item_scales[:count]]
    return instrument.id, instrument.version, answers


@settings(max_examples=300, deadline=None)
@given(sex=st.sampled_from(SEXES), age=_number(PsychSurvey, "age_months"), survey=_answers())
def test_every_admitted_survey_is_scored(sex: str, age: float, survey: tuple[str, str, list[int]]) -> None:
    instrument, version, answers = survey
    event = _valid(PsychSurvey, factories.survey(1), {
        "sex": sex, "age_months": age, "instrument": instrument, "instrument_version": version, "answers": answers})
    _classifies_once(event)


@st.composite
def _fitness(draw: st.DrawFn) -> dict[str, Any]:
    sex = draw(st.sampled_from(SEXES))
    grade = draw(st.integers(1, 12))
    tested = items_for(sex, grade)
    values = {info.field: (draw(_optional(_number(FitnessTest, info.field))) if item in tested else None)
              for item, info in ITEM_INFO.items()}
    values |= {"height_cm": draw(_optional(_number(FitnessTest, "height_cm"))),
               "weight_kg": draw(_optional(_number(FitnessTest, "weight_kg")))}
    not_measured = ["bmi", *(item for item in tested if values[ITEM_INFO[item].field] is None)]
    exempt_items = draw(st.lists(st.sampled_from(not_measured), unique=True))
    exempt = draw(st.booleans()) and all(values[ITEM_INFO[item].field] is None for item in tested)
    reason = "illness" if exempt or exempt_items else None
    return values | {"sex": sex, "grade": grade, "exempt": exempt, "exempt_items": exempt_items,
                     "exemption_reason": reason}


@settings(max_examples=400, deadline=None)
@given(overrides=_fitness())
def test_every_admitted_fitness_test_is_scored(overrides: dict[str, Any]) -> None:
    _classifies_once(_valid(FitnessTest, factories.fitness(1), overrides))
