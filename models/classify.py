"""One untyped record in, one JSON-ready classification out.

This is the boundary behind ``schoolhealth classify growth|vision|survey``: it checks every
field of a decoded JSON object (no unknown, missing or mistyped fields; numbers are never
booleans or strings), calls the typed classifier, and returns plain JSON values. Every
problem, in the record or in the measurement it carries, is a `RecordError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from datetime import date
from typing import Literal

from models.growth import age_in_months, classify_growth, completed_months
from models.surveys import get_instrument
from models.types import SEXES, Sex
from models.vision import classify_vision

Kind = Literal["growth", "vision", "survey"]
KINDS: tuple[Kind, ...] = ("growth", "vision", "survey")

_GROWTH_FIELDS = frozenset({"sex", "age_months", "birth_date", "measured_on", "height_cm", "weight_kg"})
_VISION_FIELDS = frozenset({"age_years", "ucva_right", "ucva_left", "se_right", "se_left", "wears_glasses"})
_SURVEY_FIELDS = frozenset({"instrument", "version", "answers", "positive_cutoff"})


class RecordError(ValueError):
    """A record that cannot be classified; the message names the field and the reason."""


def classify_record(kind: Kind, record: Mapping[str, object]) -> dict[str, object]:
    """Classify one decoded JSON record of `kind`; raises `RecordError` for any bad input.

    growth: ``sex``, ``height_cm``, ``weight_kg`` and either ``age_months`` or
    ``birth_date`` + ``measured_on`` (ISO dates). vision: ``age_years``, ``ucva_right``,
    ``ucva_left`` (five-point), optional ``se_right``/``se_left`` (dioptres or null) and
    ``wears_glasses``. survey: ``instrument``, ``answers``, optional ``version`` and
    ``positive_cutoff``.
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"record must be a JSON object, got {_type_name(record)}")
    try:
        if kind == "growth":
            return _growth(record)
        if kind == "vision":
            return _vision(record)
        if kind == "survey":
            return _survey(record)
    except RecordError:
        raise
    except ValueError as error:
        raise RecordError(str(error)) from error
    raise RecordError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")


def _growth(record: Mapping[str, object]) -> dict[str, object]:
    _check_fields(record, _GROWTH_FIELDS, required={"sex", "height_cm", "weight_kg"})
    sex = _sex(record)
    has_age = "age_months" in record
    has_dates = "birth_date" in record or "measured_on" in record
    calendar: int | None = None
    if has_age and has_dates:
        raise RecordError("give either 'age_months' or 'birth_date' + 'measured_on', not both")
    if has_age:
        age = _number(record, "age_months")
    elif has_dates:
        _check_fields(record, _GROWTH_FIELDS, required={"birth_date", "measured_on"})
        birth_date = _date(record, "birth_date")
        measured_on = _date(record, "measured_on")
        age = age_in_months(birth_date, measured_on)
        calendar = completed_months(birth_date, measured_on)
    else:
        raise RecordError("missing field 'age_months' (or 'birth_date' + 'measured_on')")

    result = classify_growth(
        sex=sex,
        age_months=age,
        height_cm=_number(record, "height_cm"),
        weight_kg=_number(record, "weight_kg"),
        calendar_months=calendar,
    )
    return {
        "kind": "growth",
        "sex": result.sex,
        "age_months": round(result.age_months, 2),
        "bmi": round(result.bmi, 2),
        "bmi_display": result.bmi_display,
        "bmi_for_age_z": result.bmi_for_age_z,
        "height_for_age_z": result.height_for_age_z,
        "who_category": result.who_category,
        "wst586": result.wst586,
        "wst456_wasting": result.wst456_wasting,
        "wst456_stunting": result.wst456_stunting,
        "flags": list(result.flags),
        "not_applicable_reasons": list(result.not_applicable_reasons),
        "reference": result.reference,
        "rule_version": result.rule_version,
    }


def _vision(record: Mapping[str, object]) -> dict[str, object]:
    _check_fields(record, _VISION_FIELDS, required={"age_years", "ucva_right", "ucva_left"})
    wears_glasses = record.get("wears_glasses", False)
    if not isinstance(wears_glasses, bool):
        raise RecordError(f"field 'wears_glasses' must be true or false, got {_type_name(wears_glasses)}")
    result = classify_vision(
        age_years=_number(record, "age_years"),
        ucva_right=_number(record, "ucva_right"),
        ucva_left=_number(record, "ucva_left"),
        se_right=_optional_number(record, "se_right"),
        se_left=_optional_number(record, "se_left"),
        wears_glasses=wears_glasses,
    )
    return {
        "kind": "vision",
        "right_grade": result.right_grade,
        "left_grade": result.left_grade,
        "student_grade": result.student_grade,
        "screening_myopia_right": result.screening_myopia_right,
        "screening_myopia_left": result.screening_myopia_left,
        "screening_myopia": result.screening_myopia,
        "myopia_grade_right": result.myopia_grade_right,
        "myopia_grade_left": result.myopia_grade_left,
        "myopia_grade": result.myopia_grade,
        "wears_glasses": result.wears_glasses,
        "reasons": list(result.reasons),
        "reference": result.reference,
        "rule_version": result.rule_version,
    }


def _survey(record: Mapping[str, object]) -> dict[str, object]:
    _check_fields(record, _SURVEY_FIELDS, required={"instrument", "answers"})
    instrument_id = _string(record, "instrument")
    version = _string(record, "version") if "version" in record else "1"
    answers = record["answers"]
    if not isinstance(answers, list):
        raise RecordError(f"field 'answers' must be a list of integers, got {_type_name(answers)}")
    cutoff: int | None = None
    if "positive_cutoff" in record:
        raw_cutoff = record["positive_cutoff"]
        if isinstance(raw_cutoff, bool) or not isinstance(raw_cutoff, int):
            raise RecordError(f"field 'positive_cutoff' must be an integer, got {_type_name(raw_cutoff)}")
        cutoff = raw_cutoff
    result = get_instrument(instrument_id, version).score(answers, positive_cutoff=cutoff)
    return {
        "kind": "survey",
        "instrument": result.instrument,
        "version": result.version,
        "total": result.total,
        "max_total": result.max_total,
        "band": result.band,
        "positive_screen": result.positive_screen,
        "positive_cutoff": result.positive_cutoff,
        "safety_flags": list(result.safety_flags),
        "dimension_scores": dict(result.dimension_scores),
        "dimension_literate": dict(result.dimension_literate),
        "literate": result.literate,
        "reference": result.reference,
        "rule_version": result.rule_version,
    }


def _check_fields(record: Mapping[str, object], allowed: Set[str], *, required: Set[str]) -> None:
    for key in record:
        if not isinstance(key, str):
            raise RecordError(f"field names must be strings, got {key!r}")
        if key not in allowed:
            raise RecordError(f"unknown field {key!r} (expected some of: {', '.join(sorted(allowed))})")
    for key in sorted(required):
        if key not in record:
            raise RecordError(f"missing field {key!r}")


def _number(record: Mapping[str, object], name: str) -> float:
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"field {name!r} must be a number, got {_type_name(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise RecordError(f"field {name!r} is too large: {value}") from None
    if not math.isfinite(number):
        raise RecordError(f"field {name!r} must be a finite number, got {value!r}")
    return number


def _optional_number(record: Mapping[str, object], name: str) -> float | None:
    if record.get(name) is None:
        return None
    return _number(record, name)


def _string(record: Mapping[str, object], name: str) -> str:
    value = record[name]
    if not isinstance(value, str):
        raise RecordError(f"field {name!r} must be a string, got {_type_name(value)}")
    return value


def _sex(record: Mapping[str, object]) -> Sex:
    value = _string(record, "sex")
    for sex in SEXES:
        if value == sex:
            return sex
    raise RecordError(f"field 'sex' must be 'male' or 'female', got {value!r}")


def _date(record: Mapping[str, object], name: str) -> date:
    value = _string(record, name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RecordError(f"field {name!r} must be an ISO date (YYYY-MM-DD), got {value!r}") from None


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
