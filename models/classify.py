"""One untyped record in, one JSON-ready classification out.

This is the boundary behind ``schoolhealth classify growth|vision|survey``: it checks every
field of a decoded JSON object (no unknown, missing or mistyped fields; numbers are never
booleans or strings), calls the typed classifier, and returns plain JSON values. Every
problem, in the record or in the measurement it carries, is a `RecordError` naming the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

from models.ages import DAYS_PER_MONTH, completed_months
from models.growth import classify_growth
from models.surveys import get_instrument
from models.types import SEXES, Sex
from models.vision import classify_vision

Kind = Literal["growth", "vision", "survey"]
KINDS: tuple[Kind, ...] = ("growth", "vision", "survey")

_GROWTH_FIELDS = frozenset({"sex", "age_months", "birth_date", "measured_on", "height_cm", "weight_kg", "oedema"})
_VISION_FIELDS = frozenset({"age_years", "ucva_right", "ucva_left", "se_right", "se_left", "wears_glasses"})
_SURVEY_FIELDS = frozenset({"instrument", "version", "answers", "positive_cutoff"})


class RecordError(ValueError):
    """A record that cannot be classified; the message names the field and the reason."""


#: A line longer than this is not read into memory: it is skipped to its end and reported.
MAX_LINE_BYTES = 64 * 1024
#: Error messages quote at most this many characters of any value from the input.
QUOTED_CHARACTERS = 40
_MAX_MESSAGE_CHARACTERS = 400


class _LineSource(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line over `MAX_LINE_BYTES`: its size and its first bytes, the rest never held."""

    size: int
    prefix: bytes


def read_lines(stream: _LineSource, *, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | LineTooLong]:
    """The lines of a binary stream, without line endings, in bounded memory.

    Every line comes out, one item per line (a blank line is ``b""``); a line longer than
    `limit` bytes comes out as `LineTooLong` after the stream was read past its end in chunks.
    """
    while True:
        chunk = stream.readline(limit + 1)
        if not chunk:
            return
        if chunk.endswith(b"\n") or len(chunk) <= limit:
            line = chunk.removesuffix(b"\n")
            yield line.removesuffix(b"\r")
            continue
        size, prefix = len(chunk), chunk[: QUOTED_CHARACTERS * 4]
        while not chunk.endswith(b"\n"):
            chunk = stream.readline(1 << 20)
            if not chunk:
                break
            size += len(chunk)
        yield LineTooLong(size=size - chunk.endswith(b"\n"), prefix=prefix)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record: dict[str, object] = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(f"duplicate key {quoted(key)}: a record names each field once")
        record[key] = value
    return record


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON (numbers must be finite)")


def classify_line(kind: Kind, line: bytes | LineTooLong, number: int) -> tuple[dict[str, object], bool]:
    """The output of one input line of ``schoolhealth classify``, and whether it was classified.

    Exactly one output per line, carrying its number, whatever the line holds: a blank line,
    invalid UTF-8 (decoded strictly), a line too long or nested too deeply, duplicate keys,
    a value that is not a JSON object. Errors quote at most a short prefix of any input.
    """
    try:
        if isinstance(line, LineTooLong):
            raise RecordError(f"line is {line.size} bytes, over the {MAX_LINE_BYTES}-byte limit; "
                              f"it starts {line.prefix.decode('utf-8', 'replace')[:QUOTED_CHARACTERS]!r}…")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RecordError(f"not UTF-8: byte 0x{line[error.start]:02x} at byte {error.start + 1} "
                              "cannot be decoded") from None
        if not text.strip():
            raise RecordError("blank line: expected one JSON object")
        try:
            record = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
        except json.JSONDecodeError as error:
            raise RecordError(f"not JSON: {error.msg} at column {error.colno}") from None
        except RecursionError:
            raise RecordError("not accepted: JSON nested too deeply (a record is one flat object)") from None
        except _DuplicateKey as error:
            raise RecordError(str(error)) from None
        except ValueError as error:  # e.g. an integer of more than 4300 digits
            raise RecordError(f"not accepted: {error}") from None
        if not isinstance(record, dict):
            raise RecordError(f"expected a JSON object, got {_type_name(record)}")
        result = classify_record(kind, record)
    except (RecordError, RecursionError) as error:
        message = str(error) if isinstance(error, RecordError) else "nested too deeply"
        if len(message) > _MAX_MESSAGE_CHARACTERS:
            message = message[:_MAX_MESSAGE_CHARACTERS] + "…"
        return {"line": number, "error": message}, False
    return {"line": number, **result}, True


def quoted(value: str) -> str:
    """``repr`` of at most `QUOTED_CHARACTERS` characters of `value`, saying how long it was."""
    if len(value) <= QUOTED_CHARACTERS:
        return repr(value)
    return f"{value[:QUOTED_CHARACTERS]!r}… ({len(value)} characters)"


def classify_record(kind: Kind, record: Mapping[str, object]) -> dict[str, object]:
    """Classify one decoded JSON record of `kind`; raises `RecordError` for any bad input.

    growth: ``sex``, ``height_cm`` and/or ``weight_kg`` (either may be absent or null, not
    both), optional ``oedema`` (bilateral pitting oedema: true/false; absent or null: not
    recorded), and either ``age_months`` or ``birth_date`` + ``measured_on`` (ISO dates).
    vision: ``age_years``, ``ucva_right``, ``ucva_left`` (five-point), optional
    ``se_right``/``se_left`` (dioptres or null) and ``wears_glasses``.
    survey: ``instrument``, ``answers``, optional ``version`` and ``positive_cutoff``.
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
    _check_fields(record, _GROWTH_FIELDS, required={"sex"})
    sex = _sex(record)
    has_age = "age_months" in record
    has_dates = "birth_date" in record or "measured_on" in record
    calendar: int | None = None
    if has_age and has_dates:
        raise RecordError("give either 'age_months' or 'birth_date' + 'measured_on', not both")
    if has_age:
        age = _number(record, "age_months")
        age_source = "age_months"
        derivation = (f"age_months as recorded; WHO 2007 uses it as given, and the WS/T half-year groups "
                      f"use age_months / 12 = {age / 12:.2f} years")
    elif has_dates:
        _check_fields(record, _GROWTH_FIELDS, required={"birth_date", "measured_on"})
        birth_date = _date(record, "birth_date")
        measured_on = _date(record, "measured_on")
        days = (measured_on - birth_date).days
        if days < 0:
            raise RecordError(f"measured_on {measured_on} is before birth_date {birth_date}")
        # WHO's software takes age in months to two decimals: the age used is the one shown.
        age = round(days / DAYS_PER_MONTH, 2)
        calendar = completed_months(birth_date, measured_on)
        age_source = "birth_date+measured_on"
        derivation = (f"{days} days from birth_date to measured_on / 30.4375 = {age:.2f} months (WHO AnthroPlus, "
                      f"two decimals); the WS/T half-year groups use completed calendar months: {calendar} "
                      f"({calendar / 12:.2f} years)")
    else:
        raise RecordError("missing field 'age_months' (or 'birth_date' + 'measured_on')")
    height = _optional_number(record, "height_cm")
    weight = _optional_number(record, "weight_kg")
    if height is None and weight is None:
        raise RecordError("missing field 'height_cm' and 'weight_kg': give at least one (null means not measured)")
    oedema = record.get("oedema")
    if oedema is not None and not isinstance(oedema, bool):
        raise RecordError(f"field 'oedema' must be true, false or null (not recorded), got {_type_name(oedema)}")

    result = classify_growth(
        sex=sex,
        age_months=age,
        height_cm=height,
        weight_kg=weight,
        calendar_months=calendar,
        oedema=oedema,
    )
    return {
        "kind": "growth",
        "sex": result.sex,
        "age_months": round(result.age_months, 2),
        "age_source": age_source,
        "age_derivation": derivation,
        "height_cm": height,
        "weight_kg": weight,
        "oedema": result.oedema,
        "bmi": None if result.bmi is None else round(result.bmi, 2),
        "bmi_display": result.bmi_display,
        "bmi_for_age_z": result.bmi_for_age_z,
        "height_for_age_z": result.height_for_age_z,
        "weight_for_age_z": result.weight_for_age_z,
        "who_category": result.who_category,
        "who_weight_for_age": result.who_weight_for_age,
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
            raise RecordError(f"field names must be strings, got {_type_name(key)}")
        if key not in allowed:
            raise RecordError(f"unknown field {quoted(key)} (expected some of: {', '.join(sorted(allowed))})")
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
        raise RecordError(f"field {name!r} is too large: {len(str(value))} digits") from None
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
    raise RecordError(f"field 'sex' must be 'male' or 'female', got {quoted(value)}")


def _date(record: Mapping[str, object], name: str) -> date:
    value = _string(record, name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RecordError(f"field {name!r} must be an ISO date (YYYY-MM-DD), got {quoted(value)}") from None


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
