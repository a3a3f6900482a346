"""Bytes to events and back: the codecs of the event contracts (``models.contracts``).

Every message on an input topic is JSON, one event or a batch envelope. ``decode_message`` turns
it into typed events, or rejections: ``EventRejected`` with a stable ``code`` for machines and a
short ``reason`` for people, e.g. ``"bmi-screening.height_cm: 512.0 outside 50..230"``. Reasons
never repeat free text from the payload (it may hold a name or an ID number); they repeat numbers,
and short identifier-like strings only where that helps (an unknown family or action).

Each inner event of a batch is judged on its own: one bad measurement is rejected with its index
while the rest of the batch is accepted. A batch whose members are all of one family takes a
faster path with the same models (``_decode_family_batch``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, TypeAlias, get_args
from uuid import UUID

import annotated_types
import pydantic_core
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import ErrorDetails

from models.contracts import (
    BATCH,
    BATCH_MAX_BYTES,
    BATCH_MAX_EVENTS,
    BATCH_TAG,
    EVENT_MAX_BYTES,
    EVENT_MODELS,
    FAMILIES,
    MODEL_BY_TAG,
    SUPPORTED_VERSIONS,
    Batch,
    BatchSchema,
    Event,
    EventBase,
    EventSchema,
    EventUnion,
    FrozenModel,
    MessageUnion,
    shown_value,
)
from models.identity import event_id_for

__all__ = [
    "DecodedMessage",
    "EventRejected",
    "FieldError",
    "RejectionCode",
    "decode_batch",
    "decode_event",
    "decode_message",
    "encode_batch",
    "encode_event",
    "field_errors",
]

RejectionCode: TypeAlias = Literal[
    "not_json", "unknown_family", "unsupported_version", "invalid_field", "too_large"
]

# Built once: building a TypeAdapter compiles the validator, which is the expensive part.
_EVENT_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(EventUnion)
_BATCH_ADAPTER: Final[TypeAdapter[Batch]] = TypeAdapter(Batch)
_MESSAGE_ADAPTER: Final[TypeAdapter[Event | Batch]] = TypeAdapter(MessageUnion)


def _homogeneous_batch(model: type[EventBase]) -> TypeAdapter[Any]:
    # The envelope with every member of one family: no per-member discriminator, which costs
    # more than the rest of a member's validation (the member is first built as a Python dict).
    envelope = create_model(
        f"{model.__name__}Batch",
        __base__=FrozenModel,
        schema_=(BatchSchema, Field(alias="schema")),
        batch_id=(UUID, ...),
        events=(tuple[model, ...], Field(max_length=BATCH_MAX_EVENTS)),  # type: ignore[valid-type]
    )
    return TypeAdapter(envelope)


_FAMILY_BATCH_ADAPTERS: Final[dict[str, TypeAdapter[Any]]] = {
    model.FAMILY: _homogeneous_batch(model) for model in EVENT_MODELS
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
            return f"{shown_value(value)} <= 0: measured before birth"
        bounds = _bounds(model, _model_field_name(model, leaf)) if model is not None else None
        if bounds is not None:
            low, high, exclusive = bounds
            if exclusive:
                return f"{shown_value(value)} outside {low}..{high} (exclusive)"
            return f"{shown_value(value)} outside {low}..{high}"
        return f"{shown_value(value)}: {error['msg'].lower()}"
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
            f"got {shown_value(value)}"
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
        return f"expected {ctx.get('expected')}, got {shown_value(value)}"
    if kind == "finite_number":
        return "expected a finite number"
    if kind in _EXPECTED_BY_ERROR_TYPE:
        return f"expected {_EXPECTED_BY_ERROR_TYPE[kind]}, got {shown_value(value)}"
    return error["msg"]


def _describe(
    error: ErrorDetails, *, default_model: type[BaseModel] | None, loc: tuple[int | str, ...]
) -> FieldError:
    model = default_model
    family = getattr(default_model, "FAMILY", "event") if default_model is not None else "event"
    # In the discriminated union the first location element is the tag, e.g. "bmi-screening/1".
    if loc and isinstance(loc[0], str) and loc[0] in MODEL_BY_TAG:
        model = MODEL_BY_TAG[loc[0]]
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
        return EventRejected("not_json", f"expected a JSON object, got {shown_value(value)}")
    schema = value.get("schema")
    if schema is None:
        return EventRejected("invalid_field", "schema: required")
    if not isinstance(schema, dict):
        return EventRejected(
            "invalid_field", f"schema: expected an object with family and version, got {shown_value(schema)}"
        )
    family = schema.get("family")
    version = schema.get("version")
    if not isinstance(family, str):
        return EventRejected("unknown_family", f"schema.family: expected a string, got {shown_value(family)}")
    if family not in SUPPORTED_VERSIONS:
        known = ", ".join(FAMILIES)
        return EventRejected(
            "unknown_family", f"schema.family: {shown_value(family)} is not a known family ({known})"
        )
    if family == BATCH and not allow_batch:
        return EventRejected(
            "unknown_family", "schema.family: a batch envelope where a single event was expected"
        )
    if type(version) is not int:
        return EventRejected(
            "unsupported_version", f"schema.version: expected an integer, got {shown_value(version)}"
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
            return _NotABatch("not_json", f"expected a JSON object, got {shown_value(error.get('input'))}")
        if loc in {("schema",), ("schema", "family")}:
            family = error.get("input") if loc == ("schema", "family") else None
            what = f"a {family} event" if family in SUPPORTED_VERSIONS else shown_value(family)
            if loc == ("schema", "family"):
                reason = f"schema.family: expected 'batch', got {what}"
            else:
                reason = "schema: expected {\"family\": \"batch\", \"version\": 1}"
            return _NotABatch("unknown_family", reason)
    for error in errors:
        if error["loc"] == ("schema", "version"):
            return EventRejected(
                "unsupported_version",
                f"schema.version: batch version {shown_value(error.get('input'))} is not supported "
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
        if errors and errors[0]["loc"][:1] == (BATCH_TAG,):
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
