"""Versioned event contracts: the one place where untrusted input becomes typed values.

Every message on an input topic is JSON carrying ``{"schema": {"family": ..., "version": ...}}``.
The family and version pick the pydantic model (a discriminated union, so one message is
validated against exactly one model and the errors name that model's fields). Everything past
this boundary works on the frozen models returned here.

Rejections are ``EventRejected`` with a stable ``code`` for machines and a short ``reason`` for
people, e.g. ``"bmi-screening.height_cm: 512.0 outside 50..230"``. Reasons never repeat free text
from the payload (it may hold a name or an ID number); they repeat numbers, and short
identifier-like strings only where that helps (an unknown family or action).

Bulk sources wrap events in a batch envelope. Each inner event is judged on its own: one bad
measurement is rejected with its index while the rest of the batch is accepted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import (
    Annotated,
    Any,
    ClassVar,
    Final,
    Literal,
    NamedTuple,
    Self,
    TypeAlias,
    get_args,
)
from uuid import UUID

import annotated_types
import pydantic_core
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import ErrorDetails, PydanticCustomError

from models.fitness import ITEM_INFO, items_for
from models.identity import event_id_for
from models.surveys import InvalidAnswers, UnknownInstrument, get_instrument
from models.types import Sex

__all__ = [
    "BATCH",
    "BATCH_MAX_BYTES",
    "BATCH_MAX_EVENTS",
    "BMI_SCREENING",
    "EVENT_MAX_BYTES",
    "FAMILIES",
    "FITNESS_TEST",
    "HEALTH_RECORD",
    "IDENTIFIER_MAX_LENGTH",
    "IDENTIFIER_PATTERN",
    "PSYCH_SURVEY",
    "SUBMISSION_FIELDS",
    "SUPPORTED_VERSIONS",
    "VISION_SCREENING",
    "Batch",
    "BatchSchema",
    "BmiScreening",
    "BmiScreeningSchema",
    "DecodedMessage",
    "Event",
    "EventRejected",
    "EventSchema",
    "FieldError",
    "FitnessTest",
    "FitnessTestSchema",
    "HealthRecord",
    "HealthRecordSchema",
    "PsychSurvey",
    "PsychSurveySchema",
    "RejectionCode",
    "VisionScreening",
    "VisionScreeningSchema",
    "decode_batch",
    "decode_event",
    "decode_message",
    "encode_batch",
    "encode_event",
    "field_errors",
    "json_schemas",
    "main",
    "same_event",
    "schema_files",
    "write_schemas",
]

HEALTH_RECORD: Final = "health-record"
VISION_SCREENING: Final = "vision-screening"
BMI_SCREENING: Final = "bmi-screening"
PSYCH_SURVEY: Final = "psych-survey"
FITNESS_TEST: Final = "fitness-test"
BATCH: Final = "batch"

FAMILIES: Final = (HEALTH_RECORD, VISION_SCREENING, BMI_SCREENING, PSYCH_SURVEY, FITNESS_TEST)

#: Schema versions this build decodes, per family (the batch envelope included).
SUPPORTED_VERSIONS: Final[Mapping[str, tuple[int, ...]]] = {
    HEALTH_RECORD: (1,),
    VISION_SCREENING: (1,),
    BMI_SCREENING: (1,),
    PSYCH_SURVEY: (1,),
    FITNESS_TEST: (1,),
    BATCH: (1,),
}

EVENT_MAX_BYTES: Final = 64 * 1024
BATCH_MAX_BYTES: Final = 8 * 1024 * 1024
BATCH_MAX_EVENTS: Final = 5000

#: Ages are decimal months (days / 30.4375); anything at or past 25 years is not a pupil.
AGE_MONTHS_MAX: Final = 25 * 12

SCHEMAS_DIRECTORY: Final = Path(__file__).parent / "schemas"

RejectionCode: TypeAlias = Literal[
    "not_json", "unknown_family", "unsupported_version", "invalid_field", "too_large"
]

# Ids of schools, counties, users, devices and screeners: codes, never names. No spaces and no
# "@" keeps names and e-mail addresses out; no run of more than 16 digits keeps out resident ID
# numbers (18 characters, 17 or 18 of them digits) and student numbers ("G" + an ID number).
# It reads "letters, digits and . _ : - , starting with a letter or digit" with that digit rule;
# a lookahead would be shorter but pydantic's Rust regex engine has none.
IDENTIFIER_PATTERN: Final = (
    r"^(?:[0-9]{1,16}(?:[A-Za-z._:-]|$)|[A-Za-z])(?:[0-9]{0,16}[A-Za-z._:-])*[0-9]{0,16}$"
)
IDENTIFIER_MAX_LENGTH: Final = 64
_STUDENT_KEY_PATTERN: Final = r"^[0-9a-f]{64}$"

Identifier = Annotated[
    str,
    Field(min_length=1, max_length=IDENTIFIER_MAX_LENGTH, pattern=IDENTIFIER_PATTERN),
]
StudentKeyHex = Annotated[
    str,
    Field(
        pattern=_STUDENT_KEY_PATTERN,
        description="HMAC-SHA256 hex (64 lowercase hex digits) of the national student number",
    ),
]
AgeMonths = Annotated[
    float,
    Field(gt=0, lt=AGE_MONTHS_MAX, description="age at measurement in decimal months"),
]
Ucva = Annotated[
    float,
    Field(ge=3.0, le=5.3, description="uncorrected visual acuity, 5-point notation (GB 11533)"),
]
FitnessItemName = Literal[
    "bmi", "vital_capacity", "run_50m", "sit_and_reach", "rope_skipping_1min", "sit_ups_1min",
    "shuttle_run_50m_x8", "standing_long_jump", "pull_ups", "run_1000m", "run_800m",
]
SphericalEquivalent = Annotated[
    float,
    Field(ge=-30, le=20, description="spherical equivalent in dioptres"),
]


def _wire_required(schema: JsonDict, cls: type[Any]) -> None:
    # "schema", "family" and "version" have defaults so that Python code need not spell them
    # out, but on the wire they are required; the published JSON Schema says so.
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    required = schema.setdefault("required", [])
    if not isinstance(required, list):
        return
    for name in ("version", "family", "schema"):
        if name in properties and name not in required:
            required.insert(0, name)


class _Frozen(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        serialize_by_alias=True,
        json_schema_extra=_wire_required,
    )


class EventSchema(_Frozen):
    """The ``schema`` member of every message: which contract, and which version of it."""

    family: str
    version: int

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value: object) -> object:
        # A Literal[1] also matches true and 1.0; a version is an integer and nothing else.
        if type(value) is not int:
            raise PydanticCustomError("int_type", "Input should be a valid integer")
        return value


class HealthRecordSchema(EventSchema):
    family: Literal["health-record"] = "health-record"
    version: Literal[1] = 1


class VisionScreeningSchema(EventSchema):
    family: Literal["vision-screening"] = "vision-screening"
    version: Literal[1] = 1


class BmiScreeningSchema(EventSchema):
    family: Literal["bmi-screening"] = "bmi-screening"
    version: Literal[1] = 1


class PsychSurveySchema(EventSchema):
    family: Literal["psych-survey"] = "psych-survey"
    version: Literal[1] = 1


class FitnessTestSchema(EventSchema):
    family: Literal["fitness-test"] = "fitness-test"
    version: Literal[1] = 1


class BatchSchema(EventSchema):
    family: Literal["batch"] = "batch"
    version: Literal[1] = 1


class _EventBase(_Frozen):
    """Fields every event carries."""

    FAMILY: ClassVar[str]
    VERSION: ClassVar[int]

    event_id: UUID
    schema_: EventSchema = Field(alias="schema")
    occurred_at: AwareDatetime = Field(description="when the event was recorded or submitted")
    school_id: Identifier
    student_key: StudentKeyHex
    submitted_by: Identifier = Field(description="user or device id, never a name")
    supersedes: UUID | None = Field(
        default=None, description="event id of an earlier event this one corrects"
    )

    @field_validator("measured_on", "answered_on", "effective_on", check_fields=False)
    @classmethod
    def _not_after_occurrence(cls, value: date, info: ValidationInfo) -> date:
        occurred_at = info.data.get("occurred_at")
        # One day of slack: a tablet in UTC+8 reports a date that is "tomorrow" in UTC.
        if isinstance(occurred_at, datetime) and value > occurred_at.date() + timedelta(days=1):
            raise PydanticCustomError(
                "date_in_future",
                "{value} is after occurred_at ({occurred}): a date in the future",
                {"value": value.isoformat(), "occurred": occurred_at.date().isoformat()},
            )
        return value

    # A field validator, not a model one: it runs only for events that carry `supersedes` (few),
    # where a model validator would cost every event a call into Python.
    @field_validator("supersedes")
    @classmethod
    def _not_superseding_itself(cls, value: UUID | None, info: ValidationInfo) -> UUID | None:
        if value is not None and value == info.data.get("event_id"):
            raise PydanticCustomError(
                "supersedes_itself", "an event cannot supersede itself", {"field": "supersedes"}
            )
        return value


# When and by whom an event was sent, not what it says. Two events with one id are the same event
# when everything else is equal: a file imported again, or the roster's "register" and a records
# file's "register" row for the same enrolment (both derive the id from the content), repeat it.
SUBMISSION_FIELDS: Final[set[str]] = {"occurred_at", "submitted_by"}


def same_event(first: _EventBase, second: _EventBase) -> bool:
    """Whether two events with one id say the same thing (see `SUBMISSION_FIELDS`)."""
    return type(first) is type(second) and (
        first.model_dump(exclude=SUBMISSION_FIELDS) == second.model_dump(exclude=SUBMISSION_FIELDS))


class HealthRecord(_EventBase):
    """A student's registration, a change of their record, a transfer or their leaving."""

    FAMILY: ClassVar[str] = HEALTH_RECORD
    VERSION: ClassVar[int] = 1

    schema_: HealthRecordSchema = Field(default_factory=HealthRecordSchema, alias="schema")
    action: Literal["register", "update", "transfer", "leave"]
    effective_on: date
    county_id: Identifier
    sex: Sex
    birth_date: date
    grade: int = Field(ge=1, le=9)
    boarding: bool
    left_behind: bool = Field(description="parents work away from home (留守儿童)")
    disability: bool
    to_school_id: Identifier | None = Field(
        default=None, description="the receiving school; required if and only if transfer"
    )

    @field_validator("birth_date")
    @classmethod
    def _plausible_birth_date(cls, value: date, info: ValidationInfo) -> date:
        effective_on = info.data.get("effective_on")
        if not isinstance(effective_on, date):
            return value
        age_months = (effective_on - value).days / 30.4375
        if age_months <= 0:
            raise PydanticCustomError(
                "born_after_effective_on",
                "{value} is not before effective_on {effective_on}",
                {"value": value.isoformat(), "effective_on": effective_on.isoformat()},
            )
        if age_months >= AGE_MONTHS_MAX:
            raise PydanticCustomError(
                "implausible_age",
                "age {years} years at effective_on is implausible for a pupil",
                {"years": int(age_months // 12)},
            )
        return value

    @model_validator(mode="after")
    def _transfer_has_destination(self) -> Self:
        if self.action == "transfer" and self.to_school_id is None:
            raise PydanticCustomError(
                "transfer_without_destination",
                "required when action is transfer",
                {"field": "to_school_id"},
            )
        if self.action != "transfer" and self.to_school_id is not None:
            raise PydanticCustomError(
                "destination_without_transfer",
                "only allowed when action is transfer",
                {"field": "to_school_id"},
            )
        if self.to_school_id == self.school_id:
            raise PydanticCustomError(
                "transfer_to_same_school",
                "the receiving school is the sending school",
                {"field": "to_school_id"},
            )
        return self


class VisionScreening(_EventBase):
    """Uncorrected visual acuity of both eyes, optionally with refraction."""

    FAMILY: ClassVar[str] = VISION_SCREENING
    VERSION: ClassVar[int] = 1

    schema_: VisionScreeningSchema = Field(default_factory=VisionScreeningSchema, alias="schema")
    measured_on: date
    sex: Sex
    age_months: AgeMonths
    ucva_right: Ucva
    ucva_left: Ucva
    se_right: SphericalEquivalent | None = None
    se_left: SphericalEquivalent | None = None
    wears_glasses: bool
    screener: Identifier

    @field_validator("ucva_right", "ucva_left")
    @classmethod
    def _five_point_notation(cls, value: float) -> float:
        if abs(value * 10 - round(value * 10)) > 1e-6:
            raise PydanticCustomError(
                "not_five_point",
                "{value} is not 5-point notation (one decimal place, 3.0..5.3)",
                {"value": value},
            )
        return round(value, 1)


class BmiScreening(_EventBase):
    """Height and weight measured at a school screening."""

    FAMILY: ClassVar[str] = BMI_SCREENING
    VERSION: ClassVar[int] = 1

    schema_: BmiScreeningSchema = Field(default_factory=BmiScreeningSchema, alias="schema")
    measured_on: date
    sex: Sex
    age_months: AgeMonths
    height_cm: float | None = Field(
        default=None, ge=50, le=230, description="standing height in cm; null or absent when not measured"
    )
    weight_kg: float | None = Field(
        default=None, ge=10, le=250, description="weight in kg; null or absent when not measured"
    )
    screener: Identifier
    oedema: bool | None = Field(
        default=None,
        description="bilateral pitting oedema; null or absent: not recorded (treated as absent, as WHO does)",
    )
    age_completed_months: int | None = Field(
        default=None, ge=0, lt=AGE_MONTHS_MAX,
        description="completed calendar months of age when the birth date is known (the WS/T half-year "
        "groups use it); null or absent when only an age was recorded",
    )

    @model_validator(mode="after")
    def _some_measurement(self) -> Self:
        if self.height_cm is None and self.weight_kg is None:
            raise PydanticCustomError(
                "no_measurement",
                "height_cm and weight_kg are both missing: a growth screening needs at least one",
                {"field": "weight_kg"},
            )
        # Calendar months and days / 30.4375 drift apart by at most a few days.
        if self.age_completed_months is not None and abs(self.age_completed_months - self.age_months) >= 1.5:
            raise PydanticCustomError(
                "age_mismatch",
                "{completed} completed months does not fit age_months {age}",
                {"field": "age_completed_months", "completed": self.age_completed_months,
                 "age": f"{self.age_months:.2f}"},
            )
        return self


class PsychSurvey(_EventBase):
    """A student's answers to one questionnaire (PHQ-9, PHQ-A, GAD-7, health literacy)."""

    FAMILY: ClassVar[str] = PSYCH_SURVEY
    VERSION: ClassVar[int] = 1

    schema_: PsychSurveySchema = Field(default_factory=PsychSurveySchema, alias="schema")
    answered_on: date
    sex: Sex
    age_months: AgeMonths
    instrument: Identifier
    instrument_version: Annotated[
        str, Field(min_length=1, max_length=16, pattern=IDENTIFIER_PATTERN)
    ]
    answers: tuple[int, ...] = Field(min_length=1, max_length=200)

    @field_validator("answers")
    @classmethod
    def _answers_fit_instrument(
        cls, value: tuple[int, ...], info: ValidationInfo
    ) -> tuple[int, ...]:
        instrument_id = info.data.get("instrument")
        version = info.data.get("instrument_version")
        if not isinstance(instrument_id, str) or not isinstance(version, str):
            return value
        try:
            instrument = get_instrument(instrument_id, version)
        except UnknownInstrument as exc:
            # The registry's message repeats the id; only pass it on if the id is safe to echo.
            shown = _show(instrument_id)
            message = str(exc) if shown.startswith("'") else f"unknown instrument ({shown})"
            raise PydanticCustomError(
                "unknown_instrument", "{message}", {"field": "instrument", "message": message}
            ) from None
        try:
            instrument.check_answers(value)
        except InvalidAnswers as exc:
            raise PydanticCustomError("invalid_answers", "{message}", {"message": str(exc)}) from None
        return value


class FitnessTest(_EventBase):
    """One student's physical-fitness test on one day (国家学生体质健康标准, 2014 revision).

    Every item is optional: an item not measured is absent (null), never zero; 0 is a result
    (no pull-up done). An item that the standard does not test for the student's grade and sex
    is rejected, as is an implausible value. A wholly exempted student (免测) carries
    ``exempt`` and its reason and no item results (height and weight may still be measured);
    single items exempted on application are listed in ``exempt_items``.
    """

    FAMILY: ClassVar[str] = FITNESS_TEST
    VERSION: ClassVar[int] = 1

    schema_: FitnessTestSchema = Field(default_factory=FitnessTestSchema, alias="schema")
    measured_on: date
    sex: Sex
    grade: int = Field(ge=1, le=12, description="1-6 primary, 7-9 junior, 10-12 senior high")
    attempt: Literal["first", "retest"] = Field(
        default="first", description="a retest (补测) after a first test rated fail, once a school year")
    exempt: bool = Field(default=False, description="wholly exempted from the test (免测)")
    exemption_reason: Literal["illness", "disability", "injury", "not_stated"] | None = Field(
        default=None, description="required when exempt or exempt_items is non-empty (附表7); not_stated "
                                  "when the source (the national upload sheet) does not say")
    exempt_items: tuple[FitnessItemName, ...] = Field(
        default=(), max_length=11, description="single items exempted on application")
    height_cm: float | None = Field(default=None, ge=80, le=230)
    weight_kg: float | None = Field(default=None, ge=10, le=250)
    vital_capacity_ml: int | None = Field(default=None, ge=200, le=9000)
    run_50m_s: float | None = Field(default=None, ge=5.5, le=30)
    sit_and_reach_cm: float | None = Field(default=None, ge=-40, le=45)
    rope_skipping_count: int | None = Field(default=None, ge=0, le=300)
    sit_ups_count: int | None = Field(default=None, ge=0, le=100)
    shuttle_run_50m_x8_s: float | None = Field(default=None, ge=60, le=400)
    standing_long_jump_cm: int | None = Field(default=None, ge=30, le=350)
    pull_ups_count: int | None = Field(default=None, ge=0, le=60)
    run_800m_s: float | None = Field(default=None, ge=130, le=900)
    run_1000m_s: float | None = Field(default=None, ge=150, le=900)
    screener: Identifier

    @model_validator(mode="after")
    def _items_fit_grade_and_sex(self) -> Self:
        tested = items_for(self.sex, self.grade)
        for info in ITEM_INFO.values():
            given = getattr(self, info.field) is not None
            if (given or info.item in self.exempt_items) and info.item not in tested:
                raise PydanticCustomError(
                    "item_not_in_grade",
                    "{item} is not tested in grade {grade} ({sex}); that grade's items are {tested}",
                    {"field": info.field if given else "exempt_items", "item": info.item,
                     "grade": self.grade, "sex": self.sex,
                     "tested": ", ".join(tested)},
                )
            if given and info.item in self.exempt_items:
                raise PydanticCustomError(
                    "exempt_item_with_result", "{item} is both exempted and measured",
                    {"field": info.field, "item": info.item})
        if self.exempt and any(getattr(self, ITEM_INFO[item].field) is not None for item in tested):
            raise PydanticCustomError(
                "exempt_with_results", "a wholly exempted test (免测) carries no item results",
                {"field": "exempt"})
        if (self.exempt or self.exempt_items) and self.exemption_reason is None:
            raise PydanticCustomError(
                "exemption_without_reason", "required when exempt or exempt_items is given",
                {"field": "exemption_reason"})
        if not (self.exempt or self.exempt_items) and self.exemption_reason is not None:
            raise PydanticCustomError(
                "reason_without_exemption", "only allowed with exempt or exempt_items",
                {"field": "exemption_reason"})
        if len(set(self.exempt_items)) != len(self.exempt_items):
            raise PydanticCustomError(
                "repeated_exempt_item", "an item is listed twice", {"field": "exempt_items"})
        return self


Event: TypeAlias = HealthRecord | VisionScreening | BmiScreening | PsychSurvey | FitnessTest

_EVENT_MODELS: Final[tuple[type[_EventBase], ...]] = (
    HealthRecord,
    VisionScreening,
    BmiScreening,
    PsychSurvey,
    FitnessTest,
)


def _tag_of(family: object, version: object) -> str | None:
    # bool is an int subclass; {"version": true} must not pass for version 1.
    if isinstance(family, str) and type(version) is int:
        return f"{family}/{version}"
    return None


def _message_tag(value: object) -> str | None:
    if isinstance(value, dict):
        schema = value.get("schema")
        if isinstance(schema, dict):
            return _tag_of(schema.get("family"), schema.get("version"))
        return None
    if isinstance(value, _EventBase | Batch):
        return _tag_of(value.schema_.family, value.schema_.version)
    return None


_MODEL_BY_TAG: Final[dict[str, type[_EventBase]]] = {
    f"{model.FAMILY}/{model.VERSION}": model for model in _EVENT_MODELS
}
_BATCH_TAG: Final = f"{BATCH}/1"

_EventUnion = Annotated[
    Annotated[HealthRecord, Tag(f"{HEALTH_RECORD}/1")]
    | Annotated[VisionScreening, Tag(f"{VISION_SCREENING}/1")]
    | Annotated[BmiScreening, Tag(f"{BMI_SCREENING}/1")]
    | Annotated[PsychSurvey, Tag(f"{PSYCH_SURVEY}/1")]
    | Annotated[FitnessTest, Tag(f"{FITNESS_TEST}/1")],
    Discriminator(_message_tag),
]


class Batch(_Frozen):
    """Envelope for bulk sources: up to ``BATCH_MAX_EVENTS`` events in one message."""

    FAMILY: ClassVar[str] = BATCH
    VERSION: ClassVar[int] = 1

    schema_: BatchSchema = Field(default_factory=BatchSchema, alias="schema")
    batch_id: UUID
    events: tuple[_EventUnion, ...] = Field(max_length=BATCH_MAX_EVENTS)


_MessageUnion = Annotated[
    Annotated[HealthRecord, Tag(f"{HEALTH_RECORD}/1")]
    | Annotated[VisionScreening, Tag(f"{VISION_SCREENING}/1")]
    | Annotated[BmiScreening, Tag(f"{BMI_SCREENING}/1")]
    | Annotated[PsychSurvey, Tag(f"{PSYCH_SURVEY}/1")]
    | Annotated[FitnessTest, Tag(f"{FITNESS_TEST}/1")]
    | Annotated[Batch, Tag(_BATCH_TAG)],
    Discriminator(_message_tag),
]

# Built once: building a TypeAdapter compiles the validator, which is the expensive part.
_EVENT_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(_EventUnion)
_BATCH_ADAPTER: Final[TypeAdapter[Batch]] = TypeAdapter(Batch)
_MESSAGE_ADAPTER: Final[TypeAdapter[Event | Batch]] = TypeAdapter(_MessageUnion)


def _homogeneous_batch(model: type[_EventBase]) -> TypeAdapter[Any]:
    # The envelope with every member of one family: no per-member discriminator, which costs
    # more than the rest of a member's validation (the member is first built as a Python dict).
    envelope = create_model(
        f"{model.__name__}Batch",
        __base__=_Frozen,
        schema_=(BatchSchema, Field(alias="schema")),
        batch_id=(UUID, ...),
        events=(tuple[model, ...], Field(max_length=BATCH_MAX_EVENTS)),  # type: ignore[valid-type]
    )
    return TypeAdapter(envelope)


_FAMILY_BATCH_ADAPTERS: Final[dict[str, TypeAdapter[Any]]] = {
    model.FAMILY: _homogeneous_batch(model) for model in _EVENT_MODELS
}
# Below this size a message is more likely a single event than a batch worth the fast path.
_FAST_PATH_MIN_BYTES: Final = 2048


def _on_the_wire(model: BaseModel) -> bool:
    """Whether `schema`, its family and its version were all in the input (not defaulted)."""
    schema = getattr(model, "schema_", None)
    return ("schema_" in model.model_fields_set and isinstance(schema, EventSchema)
            and len(schema.model_fields_set) == 2)


def _decode_family_batch(data: bytes, family: str) -> DecodedMessage | None:
    """A batch whose members are all valid events of `family`, or None to take the general path.

    Whatever this accepts, the general path accepts too, with the same models: each member
    validates as the family's model, whose `schema` literals are exactly what the general
    path's discriminator keys on; presence of `schema` is checked because the models default
    it. Anything else (another family, one bad member, not a batch) returns None.
    """
    adapter = _FAMILY_BATCH_ADAPTERS.get(family)
    if adapter is None:
        return None
    try:
        batch = adapter.validate_json(data)
    except ValidationError:
        return None
    if not (_on_the_wire(batch) and all(_on_the_wire(event) for event in batch.events)):
        return None
    return DecodedMessage(batch_id=batch.batch_id, events=batch.events)


class EventRejected(ValueError):
    """A message that is not a valid event. ``code`` is stable; ``reason`` is for people."""

    def __init__(self, code: RejectionCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code: RejectionCode = code
        self.reason = reason


class _NotABatch(EventRejected):
    """Raised by the batch path when the JSON object is not a batch envelope at all."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodedMessage:
    """What one Kafka message held: a single event, or a batch with its rejected members."""

    batch_id: UUID | None
    events: tuple[Event, ...]
    rejected: tuple[tuple[int, EventRejected], ...] = ()

    @property
    def is_batch(self) -> bool:
        return self.batch_id is not None


class FieldError(NamedTuple):
    """One validation failure: the family (or ``batch``), the field path and a message."""

    family: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.family}.{self.field}: {self.message}"


# ---------------------------------------------------------------------------------------------
# Turning pydantic errors into short, specific, loggable messages.

_EXPECTED_BY_ERROR_TYPE: Final[Mapping[str, str]] = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "date_type": "a date YYYY-MM-DD",
    "date_parsing": "a date YYYY-MM-DD",
    "date_from_datetime_parsing": "a date YYYY-MM-DD",
    "date_from_datetime_inexact": "a date YYYY-MM-DD",
    "datetime_type": "an RFC 3339 date-time with a UTC offset",
    "datetime_parsing": "an RFC 3339 date-time with a UTC offset",
    "datetime_from_date_parsing": "an RFC 3339 date-time with a UTC offset",
    "timezone_aware": "an RFC 3339 date-time with a UTC offset",
    "uuid_type": "a UUID",
    "uuid_parsing": "a UUID",
    "uuid_version": "a UUID",
    "list_type": "an array",
    "tuple_type": "an array",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "finite_number": "a finite number",
}

_RANGE_ERRORS: Final = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})
_SAFE_ECHO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,31}", re.ASCII)


def _show(value: object) -> str:
    """A payload value as it may appear in a reason: numbers yes, free text no."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 24 else f"a number of {len(text)} characters"
    if isinstance(value, str):
        # Short codes such as an unknown action help the sender; anything that could be a name
        # or an ID number (non-ASCII, long, or many digits) is described, not repeated.
        if _SAFE_ECHO.fullmatch(value) and sum(c.isdigit() for c in value) < 6:
            return repr(value)
        return f"a string of {len(value)} characters"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _constraints(model: type[BaseModel], field: str) -> list[Any]:
    info = model.model_fields.get(field)
    if info is None:
        return []
    found = list(info.metadata)
    # An optional constrained field keeps its constraints inside the union's Annotated member.
    for member in get_args(info.annotation):
        for extra in getattr(member, "__metadata__", ()):
            found.extend(getattr(extra, "metadata", ()))
    return found


def _bounds(model: type[BaseModel], field: str) -> tuple[str, str, bool] | None:
    low: object = None
    high: object = None
    exclusive = False
    for item in _constraints(model, field):
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low, exclusive = item.gt, True
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.Lt):
            high, exclusive = item.lt, True
    if low is None or high is None:
        return None
    return str(low), str(high), exclusive


def _model_field_name(model: type[BaseModel], loc_name: str) -> str:
    for name, info in model.model_fields.items():
        if info.alias == loc_name:
            return name
    return loc_name


def _message_for(error: ErrorDetails, model: type[BaseModel] | None, field: str) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    leaf = field.rsplit(".", 1)[-1]
    if kind in _RANGE_ERRORS:
        if leaf == "age_months" and kind in {"greater_than", "greater_than_equal"}:
            return f"{_show(value)} <= 0: measured before birth"
        bounds = _bounds(model, _model_field_name(model, leaf)) if model is not None else None
        if bounds is not None:
            low, high, exclusive = bounds
            if exclusive:
                return f"{_show(value)} outside {low}..{high} (exclusive)"
            return f"{_show(value)} outside {low}..{high}"
        return f"{_show(value)}: {error['msg'].lower()}"
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unexpected field"
    if kind == "string_pattern_mismatch":
        length = len(value) if isinstance(value, str) else 0
        if leaf == "student_key":
            return (
                "must be exactly 64 lowercase hex digits (HMAC-SHA256 of the student number); "
                f"got {length} characters"
            )
        return (
            "must be a code of letters, digits and . _ : - (not a name or an ID number); "
            f"got {_show(value)}"
        )
    if kind in {"string_too_long", "string_too_short"}:
        length = len(value) if isinstance(value, str) else 0
        limit = ctx.get("max_length", ctx.get("min_length"))
        relation = "at most" if kind == "string_too_long" else "at least"
        return f"{length} characters, expected {relation} {limit}"
    if kind in {"too_long", "too_short"}:
        relation = "at most" if kind == "too_long" else "at least"
        limit = ctx.get("max_length", ctx.get("min_length"))
        return f"{ctx.get('actual_length', '?')} items, expected {relation} {limit}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {_show(value)}"
    if kind == "finite_number":
        return "expected a finite number"
    if kind in _EXPECTED_BY_ERROR_TYPE:
        return f"expected {_EXPECTED_BY_ERROR_TYPE[kind]}, got {_show(value)}"
    return error["msg"]


def _describe(
    error: ErrorDetails, *, default_model: type[BaseModel] | None, loc: tuple[int | str, ...]
) -> FieldError:
    model = default_model
    family = getattr(default_model, "FAMILY", "event") if default_model is not None else "event"
    # In the discriminated union the first location element is the tag, e.g. "bmi-screening/1".
    if loc and isinstance(loc[0], str) and loc[0] in _MODEL_BY_TAG:
        model = _MODEL_BY_TAG[loc[0]]
        family = model.FAMILY
        loc = loc[1:]
    ctx = error.get("ctx") or {}
    named = ctx.get("field")
    field = named if isinstance(named, str) else ".".join(str(part) for part in loc) or "event"
    return FieldError(family, field, _message_for(error, model, field))


def field_errors(error: ValidationError, model: type[BaseModel] | None = None) -> list[FieldError]:
    """Describe each failure of a pydantic ``ValidationError`` from one of these contracts.

    ``model`` is the contract class when it was validated directly rather than through the
    union (the importer does that); the descriptions never repeat free text from the input.
    """
    return [
        _describe(details, default_model=model, loc=details["loc"])
        for details in error.errors(include_url=False)
    ]


def _joined(problems: Sequence[FieldError]) -> str:
    shown = "; ".join(str(problem) for problem in problems[:3])
    if len(problems) > 3:
        shown += f" (and {len(problems) - 3} more)"
    return shown


def _untagged(value: object, *, allow_batch: bool) -> EventRejected:
    """Why the discriminator found no contract for ``value``."""
    if not isinstance(value, dict):
        return EventRejected("not_json", f"expected a JSON object, got {_show(value)}")
    schema = value.get("schema")
    if schema is None:
        return EventRejected("invalid_field", "schema: required")
    if not isinstance(schema, dict):
        return EventRejected(
            "invalid_field", f"schema: expected an object with family and version, got {_show(schema)}"
        )
    family = schema.get("family")
    version = schema.get("version")
    if not isinstance(family, str):
        return EventRejected("unknown_family", f"schema.family: expected a string, got {_show(family)}")
    if family not in SUPPORTED_VERSIONS:
        known = ", ".join(FAMILIES)
        return EventRejected(
            "unknown_family", f"schema.family: {_show(family)} is not a known family ({known})"
        )
    if family == BATCH and not allow_batch:
        return EventRejected(
            "unknown_family", "schema.family: a batch envelope where a single event was expected"
        )
    if type(version) is not int:
        return EventRejected(
            "unsupported_version", f"schema.version: expected an integer, got {_show(version)}"
        )
    supported = ", ".join(str(number) for number in SUPPORTED_VERSIONS[family])
    return EventRejected(
        "unsupported_version",
        f"schema.version: {family} version {version} is not supported (supported: {supported})",
    )


def _rejection(errors: Sequence[ErrorDetails], *, allow_batch: bool) -> EventRejected:
    """The rejection for a single message whose validation through a union failed."""
    for error in errors:
        if error["type"] in {"json_invalid", "json_type"}:
            detail = (error.get("ctx") or {}).get("error", "invalid JSON")
            return EventRejected("not_json", f"not valid JSON: {detail}")
    for error in errors:
        if error["type"] in {"union_tag_not_found", "union_tag_invalid"}:
            return _untagged(error.get("input"), allow_batch=allow_batch)
    problems = [_describe(error, default_model=None, loc=error["loc"]) for error in errors]
    return EventRejected("invalid_field", _joined(problems))


def _envelope_rejection(errors: Sequence[ErrorDetails]) -> EventRejected:
    """The rejection of a whole batch, from the errors that are not inside one event."""
    for error in errors:
        if error["type"] in {"json_invalid", "json_type"}:
            detail = (error.get("ctx") or {}).get("error", "invalid JSON")
            return _NotABatch("not_json", f"not valid JSON: {detail}")
    for error in errors:
        loc = error["loc"]
        if loc == () and error["type"] == "model_type":
            return _NotABatch("not_json", f"expected a JSON object, got {_show(error.get('input'))}")
        if loc in {("schema",), ("schema", "family")}:
            family = error.get("input") if loc == ("schema", "family") else None
            what = f"a {family} event" if family in SUPPORTED_VERSIONS else _show(family)
            if loc == ("schema", "family"):
                reason = f"schema.family: expected 'batch', got {what}"
            else:
                reason = "schema: expected {\"family\": \"batch\", \"version\": 1}"
            return _NotABatch("unknown_family", reason)
    for error in errors:
        if error["loc"] == ("schema", "version"):
            return EventRejected(
                "unsupported_version",
                f"schema.version: batch version {_show(error.get('input'))} is not supported "
                "(supported: 1)",
            )
        if error["loc"] == ("events",) and error["type"] == "too_long":
            actual = (error.get("ctx") or {}).get("actual_length", "more")
            return EventRejected(
                "too_large", f"batch.events: {actual} events, at most {BATCH_MAX_EVENTS} allowed"
            )
    problems = [_describe(error, default_model=Batch, loc=error["loc"]) for error in errors]
    return EventRejected("invalid_field", _joined(problems))


# ---------------------------------------------------------------------------------------------
# Decoding and encoding.


def _as_bytes(payload: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:
            raise EventRejected("not_json", "text is not encodable as UTF-8") from None
    if isinstance(payload, Mapping):
        # A mapping is judged as the JSON it stands for, so both paths accept exactly the same
        # events (strict validation of Python objects would refuse ISO strings for dates).
        try:
            return pydantic_core.to_json(dict(payload))
        except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
            raise EventRejected("not_json", f"mapping is not JSON-serialisable: {exc}") from None
    raise EventRejected(
        "not_json", f"expected bytes, str or a mapping, got {type(payload).__name__}"
    )


def _too_large(size: int, limit: int, what: str) -> EventRejected:
    return EventRejected("too_large", f"{what} is {size} bytes, over the {limit}-byte limit")


def decode_event(payload: bytes | bytearray | str | Mapping[str, Any]) -> Event:
    """Validate one event (JSON bytes, JSON text, or a mapping of its JSON form).

    Raises ``EventRejected`` with ``code`` one of ``not_json``, ``unknown_family``,
    ``unsupported_version``, ``invalid_field`` or ``too_large`` (over ``EVENT_MAX_BYTES``).
    """
    data = _as_bytes(payload)
    if len(data) > EVENT_MAX_BYTES:
        raise _too_large(len(data), EVENT_MAX_BYTES, "event")
    try:
        return _EVENT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise _rejection(exc.errors(include_url=False), allow_batch=False) from None


def _inner_rejection(errors: Sequence[ErrorDetails]) -> EventRejected:
    # Inner errors are located ("events", index, tag, field...); drop the first two.
    stripped: list[ErrorDetails] = []
    for error in errors:
        copy = error.copy()
        copy["loc"] = error["loc"][2:]
        stripped.append(copy)
    return _rejection(stripped, allow_batch=False)


def _batch_from_errors(
    data: bytes, errors: Sequence[ErrorDetails]
) -> tuple[UUID, list[Event], list[tuple[int, EventRejected]]]:
    """Salvage the valid events of a batch whose validation failed for some of them."""
    envelope: list[ErrorDetails] = []
    inner: dict[int, list[ErrorDetails]] = {}
    for error in errors:
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int):
            inner.setdefault(loc[1], []).append(error)
        else:
            envelope.append(error)
    if envelope:
        raise _envelope_rejection(envelope)
    # The envelope is valid, so the JSON parses and has an events array and a batch id.
    raw = pydantic_core.from_json(data)
    batch_id = UUID(raw["batch_id"])
    events: list[Event] = []
    rejected: list[tuple[int, EventRejected]] = []
    for index, raw_event in enumerate(raw["events"]):
        if index in inner:
            rejected.append((index, _inner_rejection(inner[index])))
            continue
        try:
            events.append(_EVENT_ADAPTER.validate_json(pydantic_core.to_json(raw_event)))
        except ValidationError as exc:
            rejected.append((index, _rejection(exc.errors(include_url=False), allow_batch=False)))
    return batch_id, events, rejected


def _decode_batch_bytes(data: bytes) -> tuple[UUID, list[Event], list[tuple[int, EventRejected]]]:
    if len(data) > BATCH_MAX_BYTES:
        raise _too_large(len(data), BATCH_MAX_BYTES, "batch")
    try:
        batch = _BATCH_ADAPTER.validate_json(data)
    except ValidationError as exc:
        return _batch_from_errors(data, exc.errors(include_url=False))
    return batch.batch_id, list(batch.events), []


def decode_batch(
    payload: bytes | bytearray | str | Mapping[str, Any],
) -> tuple[list[Event], list[tuple[int, EventRejected]]]:
    """Validate a batch envelope; return its valid events and ``(index, rejection)`` pairs.

    Inner events are judged independently. The whole batch is rejected (``EventRejected``) only
    when the envelope itself is wrong: not JSON, not a batch, an unsupported version, over
    ``BATCH_MAX_BYTES`` or ``BATCH_MAX_EVENTS``, or a bad ``batch_id``.
    """
    _, events, rejected = _decode_batch_bytes(_as_bytes(payload))
    return events, rejected


def decode_message(
    payload: bytes | bytearray | str | Mapping[str, Any], *, family: str | None = None
) -> DecodedMessage:
    """Validate a message that is either one event or a batch envelope.

    A single bad event raises ``EventRejected``; bad events inside a valid batch are returned
    in ``DecodedMessage.rejected`` with their index. `family`, when the caller expects batches
    of one family (a topic's), only makes decoding such batches faster: the result is the same.
    """
    data = _as_bytes(payload)
    if len(data) > BATCH_MAX_BYTES:
        raise _too_large(len(data), BATCH_MAX_BYTES, "message")
    if family is not None and len(data) >= _FAST_PATH_MIN_BYTES:
        fast = _decode_family_batch(data, family)
        if fast is not None:
            return fast
    if len(data) > EVENT_MAX_BYTES:
        # Only a batch may be this large; do not spend a full validation on a huge single event.
        try:
            batch_id, events, rejected = _decode_batch_bytes(data)
        except _NotABatch as exc:
            if exc.code == "not_json":
                raise
            raise _too_large(len(data), EVENT_MAX_BYTES, "event") from None
        return DecodedMessage(batch_id=batch_id, events=tuple(events), rejected=tuple(rejected))
    try:
        message = _MESSAGE_ADAPTER.validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["loc"][:1] == (_BATCH_TAG,):
            for error in errors:
                error["loc"] = error["loc"][1:]
            batch_id, events, rejected = _batch_from_errors(data, errors)
            return DecodedMessage(batch_id=batch_id, events=tuple(events), rejected=tuple(rejected))
        raise _rejection(errors, allow_batch=True) from None
    if isinstance(message, Batch):
        return DecodedMessage(batch_id=message.batch_id, events=message.events)
    return DecodedMessage(batch_id=None, events=(message,))


def encode_event(event: Event) -> bytes:
    """Compact JSON of one event, with the ``schema`` key as on the wire."""
    return event.model_dump_json(by_alias=True).encode("utf-8")


def encode_batch(events: Sequence[Event], *, batch_id: UUID | None = None) -> bytes:
    """Compact JSON of a batch envelope holding ``events``.

    Without ``batch_id`` the id is derived from the event ids, so the same events always make the
    same batch. Raises ``ValueError`` over ``BATCH_MAX_EVENTS`` events or ``BATCH_MAX_BYTES``:
    split the events first.
    """
    if len(events) > BATCH_MAX_EVENTS:
        raise ValueError(f"{len(events)} events, at most {BATCH_MAX_EVENTS} fit in a batch")
    if batch_id is None:
        batch_id = event_id_for(BATCH, *(str(event.event_id) for event in events))
    batch = Batch(batch_id=batch_id, events=tuple(events))
    data = batch.model_dump_json(by_alias=True).encode("utf-8")
    if len(data) > BATCH_MAX_BYTES:
        raise ValueError(f"batch is {len(data)} bytes, over the {BATCH_MAX_BYTES}-byte limit")
    return data


# ---------------------------------------------------------------------------------------------
# JSON Schema files for consumers outside Python.

_JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each contract, keyed ``"<family>.v<version>"`` (the batch included)."""
    schemas: dict[str, dict[str, Any]] = {}
    models: tuple[type[_EventBase] | type[Batch], ...] = (*_EVENT_MODELS, Batch)
    for model in models:
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schemas[f"{model.FAMILY}.v{model.VERSION}"] = {"$schema": _JSON_SCHEMA_DIALECT, **schema}
    return schemas


def _schema_text(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_files() -> dict[str, str]:
    """File name to file text of every generated schema (what ``write_schemas`` writes)."""
    return {f"{name}.json": _schema_text(schema) for name, schema in json_schemas().items()}


def write_schemas(directory: Path = SCHEMAS_DIRECTORY) -> list[Path]:
    """Regenerate the JSON Schema files in ``directory``, removing stale ``*.json`` files."""
    directory.mkdir(parents=True, exist_ok=True)
    files = schema_files()
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in sorted(files.items()):
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.contracts --write-schemas``: regenerate ``models/schemas/``."""
    parser = argparse.ArgumentParser(
        prog="python -m models.contracts", description="Event contract tools."
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--write-schemas", action="store_true", help="regenerate the JSON Schema files"
    )
    action.add_argument(
        "--check-schemas", action="store_true", help="exit 1 if the JSON Schema files are stale"
    )
    arguments = parser.parse_args(argv)
    if arguments.write_schemas:
        for path in write_schemas():
            sys.stdout.write(f"wrote {path}\n")
        return 0
    expected = schema_files()
    actual = {
        path.name: path.read_text(encoding="utf-8") for path in SCHEMAS_DIRECTORY.glob("*.json")
    }
    if actual != expected:
        sys.stdout.write("JSON Schema files are stale: run python -m models.contracts --write-schemas\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
