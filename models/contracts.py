"""Versioned event contracts: the one place where untrusted input becomes typed values.

Every message on an input topic is JSON carrying ``{"schema": {"family": ..., "version": ...}}``.
The family and version pick the pydantic model (a discriminated union, so one message is
validated against exactly one model and the errors name that model's fields). Everything past
this boundary works on the frozen models returned here.

Bulk sources wrap events in a batch envelope (``Batch``). Bytes become these models, or a
rejection, in ``models.codecs``; the JSON Schema files of these models are written by
``schoolhealth schemas write`` (``services.platform.event_schemas``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import (
    Annotated,
    Any,
    ClassVar,
    Final,
    Literal,
    Self,
    TypeAlias,
)
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from models.ages import months_between
from models.fitness import ITEM_INFO, items_for
from models.surveys import InvalidAnswers, UnknownInstrument, get_instrument
from models.types import Sex

__all__ = [
    "BATCH",
    "BATCH_MAX_BYTES",
    "BATCH_MAX_EVENTS",
    "BATCH_TAG",
    "BMI_SCREENING",
    "EVENT_MAX_BYTES",
    "EVENT_MODELS",
    "FAMILIES",
    "FITNESS_TEST",
    "HEALTH_RECORD",
    "IDENTIFIER_MAX_LENGTH",
    "IDENTIFIER_PATTERN",
    "MODEL_BY_TAG",
    "PSYCH_SURVEY",
    "SUBMISSION_FIELDS",
    "SUPPORTED_VERSIONS",
    "VISION_SCREENING",
    "Batch",
    "BatchSchema",
    "BmiScreening",
    "BmiScreeningSchema",
    "Event",
    "EventBase",
    "EventSchema",
    "EventUnion",
    "FitnessTest",
    "FitnessTestSchema",
    "FrozenModel",
    "HealthRecord",
    "HealthRecordSchema",
    "MessageUnion",
    "PsychSurvey",
    "PsychSurveySchema",
    "VisionScreening",
    "VisionScreeningSchema",
    "same_event",
    "shown_value",
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


_SAFE_ECHO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,31}", re.ASCII)


def shown_value(value: object) -> str:
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


class FrozenModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        serialize_by_alias=True,
        json_schema_extra=_wire_required,
    )


class EventSchema(FrozenModel):
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


class EventBase(FrozenModel):
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


def same_event(first: EventBase, second: EventBase) -> bool:
    """Whether two events with one id say the same thing (see `SUBMISSION_FIELDS`)."""
    return type(first) is type(second) and (
        first.model_dump(exclude=SUBMISSION_FIELDS) == second.model_dump(exclude=SUBMISSION_FIELDS))


class HealthRecord(EventBase):
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
        age_months = months_between(value, effective_on)
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


class VisionScreening(EventBase):
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


class BmiScreening(EventBase):
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


class PsychSurvey(EventBase):
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
            shown = shown_value(instrument_id)
            message = str(exc) if shown.startswith("'") else f"unknown instrument ({shown})"
            raise PydanticCustomError(
                "unknown_instrument", "{message}", {"field": "instrument", "message": message}
            ) from None
        try:
            instrument.check_answers(value)
        except InvalidAnswers as exc:
            raise PydanticCustomError("invalid_answers", "{message}", {"message": str(exc)}) from None
        return value


class FitnessTest(EventBase):
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

EVENT_MODELS: Final[tuple[type[EventBase], ...]] = (
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
    if isinstance(value, EventBase | Batch):
        return _tag_of(value.schema_.family, value.schema_.version)
    return None


MODEL_BY_TAG: Final[dict[str, type[EventBase]]] = {
    f"{model.FAMILY}/{model.VERSION}": model for model in EVENT_MODELS
}
BATCH_TAG: Final = f"{BATCH}/1"

EventUnion = Annotated[
    Annotated[HealthRecord, Tag(f"{HEALTH_RECORD}/1")]
    | Annotated[VisionScreening, Tag(f"{VISION_SCREENING}/1")]
    | Annotated[BmiScreening, Tag(f"{BMI_SCREENING}/1")]
    | Annotated[PsychSurvey, Tag(f"{PSYCH_SURVEY}/1")]
    | Annotated[FitnessTest, Tag(f"{FITNESS_TEST}/1")],
    Discriminator(_message_tag),
]


class Batch(FrozenModel):
    """Envelope for bulk sources: up to ``BATCH_MAX_EVENTS`` events in one message."""

    FAMILY: ClassVar[str] = BATCH
    VERSION: ClassVar[int] = 1

    schema_: BatchSchema = Field(default_factory=BatchSchema, alias="schema")
    batch_id: UUID
    events: tuple[EventUnion, ...] = Field(max_length=BATCH_MAX_EVENTS)


MessageUnion = Annotated[
    Annotated[HealthRecord, Tag(f"{HEALTH_RECORD}/1")]
    | Annotated[VisionScreening, Tag(f"{VISION_SCREENING}/1")]
    | Annotated[BmiScreening, Tag(f"{BMI_SCREENING}/1")]
    | Annotated[PsychSurvey, Tag(f"{PSYCH_SURVEY}/1")]
    | Annotated[FitnessTest, Tag(f"{FITNESS_TEST}/1")]
    | Annotated[Batch, Tag(BATCH_TAG)],
    Discriminator(_message_tag),
]
