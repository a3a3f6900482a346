"""From one Kafka message's bytes to classified events and reasoned rejections.

This is the whole of the worker's per-message logic, as a pure function: decode and validate the
message (one event or a batch envelope), check that each event belongs on the topic it came from,
and classify it by the standards. Anything that fails becomes a `Rejection` carrying its reason
and the original bytes, so the caller can dead-letter it; nothing is dropped silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from models.codecs import DecodedMessage, EventRejected, decode_message
from models.contracts import (
    IDENTIFIER_MAX_LENGTH,
    IDENTIFIER_PATTERN,
    BmiScreening,
    Event,
    FitnessTest,
    HealthRecord,
    PsychSurvey,
    VisionScreening,
)
from models.fitness import FitnessResult, score_fitness_event
from models.growth import GrowthResult, classify_growth
from models.surveys import SurveyResult, get_instrument
from models.vision import VisionResult, classify_vision

WHOLE_MESSAGE = -1
# The code of a message whose processing raised: it is dead-lettered with the error's type, its
# batch goes on. Nothing a message contains may fail the other messages of its micro-batch.
PROCESSING_ERROR = "processing_error"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifiedVision:
    event: VisionScreening
    result: VisionResult


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifiedGrowth:
    event: BmiScreening
    result: GrowthResult


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifiedSurvey:
    event: PsychSurvey
    result: SurveyResult


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifiedFitness:
    event: FitnessTest
    result: FitnessResult


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Why a message, or one event inside a batch (`item_index` ≥ 0), was not accepted."""

    code: str
    reason: str
    item_index: int
    payload: bytes
    school_id: str | None = None
    screener: str | None = None


@dataclass(slots=True, kw_only=True)
class ProcessedMessages:
    """Accumulates what a micro-batch of messages held, grouped by archive table."""

    records: list[HealthRecord] = field(default_factory=list)
    vision: list[ClassifiedVision] = field(default_factory=list)
    growth: list[ClassifiedGrowth] = field(default_factory=list)
    surveys: list[ClassifiedSurvey] = field(default_factory=list)
    fitness: list[ClassifiedFitness] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return (len(self.records) + len(self.vision) + len(self.growth) + len(self.surveys)
                + len(self.fitness))


# Every list of ProcessedMessages, accepted and rejected: what one message may have added.
OUTPUT_LISTS = tuple(f.name for f in fields(ProcessedMessages))


def accepted_events(out: ProcessedMessages) -> list[Event]:
    """Every accepted event of `out`, whatever its family (classified ones carry theirs)."""
    return [getattr(item, "event", item) for name in OUTPUT_LISTS if name != "rejected"
            for item in getattr(out, name)]


def _family(event: Event) -> str:
    return str(event.schema_.family)


class _Members:
    """The members of a batch envelope as JSON, parsed once, only when one is rejected."""

    __slots__ = ("_members", "_payload")

    def __init__(self, payload: bytes) -> None:
        self._payload = payload
        self._members: list[Any] | None = None

    def payload_of(self, index: int) -> bytes:
        """The JSON of one member, for its dead letter (the whole message if it cannot be cut out)."""
        if self._members is None:
            try:
                members = json.loads(self._payload)["events"]
            except (ValueError, KeyError, TypeError, RecursionError):
                members = None
            self._members = members if isinstance(members, list) else []
        if not 0 <= index < len(self._members):
            return self._payload
        try:
            return json.dumps(self._members[index], separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate (an escaped \ud800): keep it escaped
            return json.dumps(self._members[index], separators=(",", ":")).encode()


def _identifier_or_none(value: object) -> str | None:
    """`value` if it is a valid identifier of the contracts (ASCII, no NUL, no surrogate), else None."""
    if isinstance(value, str) and len(value) <= IDENTIFIER_MAX_LENGTH and _IDENTIFIER.match(value):
        return value
    return None


def _best_effort_origin(payload: bytes) -> tuple[str | None, str | None]:
    """School and screener of a rejected event, when its JSON still says them validly (for data quality)."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the interpreter's stack
        return None, None
    if not isinstance(data, dict):
        return None, None
    return _identifier_or_none(data.get("school_id")), _identifier_or_none(data.get("screener"))


def classify_event(event: Event, out: ProcessedMessages) -> None:
    """Classify one valid event into `out`; raises ValueError when a standard cannot judge it."""
    if isinstance(event, BmiScreening):
        growth = classify_growth(sex=event.sex, age_months=event.age_months,
                                 height_cm=event.height_cm, weight_kg=event.weight_kg,
                                 calendar_months=event.age_completed_months, oedema=event.oedema)
        out.growth.append(ClassifiedGrowth(event=event, result=growth))
    elif isinstance(event, VisionScreening):
        vision = classify_vision(age_years=event.age_months / 12.0, ucva_right=event.ucva_right,
                                 ucva_left=event.ucva_left, se_right=event.se_right,
                                 se_left=event.se_left, wears_glasses=event.wears_glasses)
        out.vision.append(ClassifiedVision(event=event, result=vision))
    elif isinstance(event, PsychSurvey):
        instrument = get_instrument(event.instrument, event.instrument_version)
        out.surveys.append(ClassifiedSurvey(event=event, result=instrument.score(event.answers)))
    elif isinstance(event, HealthRecord):
        out.records.append(event)
    elif isinstance(event, FitnessTest):
        out.fitness.append(ClassifiedFitness(event=event, result=score_fitness_event(event)))
    else:  # pragma: no cover - the Event union is closed
        raise TypeError(f"unhandled event type {type(event).__name__}")


def process_message(payload: bytes, *, expected_family: str | None, out: ProcessedMessages) -> None:
    """Decode, check and classify one Kafka message into `out` (accepted and rejected alike).

    `expected_family` is the family the topic carries; an event of another family is rejected
    with code `wrong_topic`, because it would otherwise bypass its topic's ordering and consumers.

    Total in the bytes: if anything raises while this message is processed, what it had added to
    `out` is taken back and the whole message is rejected with code `processing_error` (naming the
    error's type, never its text, which may quote the message), so one message never fails the
    others of its batch. Only BaseExceptions that are not Exceptions (cancellation, exit) escape.
    """
    lists = [getattr(out, name) for name in OUTPUT_LISTS]
    marks = [len(items) for items in lists]
    try:
        _process_message(payload, expected_family=expected_family, out=out)
    except Exception as error:  # dead-lettered with the error's type: the batch goes on
        for items, mark in zip(lists, marks, strict=True):
            del items[mark:]
        out.rejected.append(Rejection(
            code=PROCESSING_ERROR, item_index=WHOLE_MESSAGE, payload=bytes(payload),
            reason=f"the message could not be processed ({type(error).__name__}); kept for replay"))


def _process_message(payload: bytes, *, expected_family: str | None, out: ProcessedMessages) -> None:
    try:
        decoded: DecodedMessage = decode_message(payload, family=expected_family)
    except EventRejected as whole:
        school, screener = _best_effort_origin(payload[:70_000])
        out.rejected.append(Rejection(code=whole.code, reason=whole.reason, item_index=WHOLE_MESSAGE,
                                      payload=payload, school_id=school, screener=screener))
        return
    single = not decoded.is_batch
    members = _Members(payload)
    for index, member_rejection in decoded.rejected:
        member = members.payload_of(index)
        school, screener = _best_effort_origin(member)
        out.rejected.append(Rejection(code=member_rejection.code, reason=member_rejection.reason, item_index=index,
                                      payload=member, school_id=school, screener=screener))
    rejected_indexes = {index for index, _ in decoded.rejected}
    position = 0
    for event in decoded.events:
        # Events come back in order, skipping the rejected members: recover each one's index.
        while position in rejected_indexes:
            position += 1
        index = WHOLE_MESSAGE if single else position
        position += 1
        screener = getattr(event, "screener", None)
        if expected_family is not None and _family(event) != expected_family:
            out.rejected.append(Rejection(
                code="wrong_topic",
                reason=f"a {_family(event)} event on the topic for {expected_family} events",
                item_index=index, payload=payload if single else members.payload_of(index),
                school_id=_identifier_or_none(event.school_id), screener=_identifier_or_none(screener)))
            continue
        try:
            classify_event(event, out)
        except ValueError as error:
            out.rejected.append(Rejection(
                code="unclassifiable", reason=f"{_family(event)}: {error}", item_index=index,
                payload=payload if single else members.payload_of(index),
                school_id=_identifier_or_none(event.school_id), screener=_identifier_or_none(screener)))


def locate_events(payload: bytes, *, expected_family: str | None) -> list[tuple[Event, int, bytes]]:
    """The accepted events of one message with their item index and their own JSON bytes.

    For the rare paths that must name where an accepted event came from (a conflicting duplicate's
    dead letter, the delivery audit): a single event is `WHOLE_MESSAGE` with the whole message.
    """
    out = ProcessedMessages()
    process_message(payload, expected_family=expected_family, out=out)
    events = accepted_events(out)
    if not events:
        return []
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        data = None
    members = data.get("events") if isinstance(data, dict) else None
    if not isinstance(members, list):
        return [(event, WHOLE_MESSAGE, bytes(payload)) for event in events]
    positions: dict[str, list[int]] = {}
    for index, member in enumerate(members):
        if isinstance(member, dict):
            positions.setdefault(str(member.get("event_id")), []).append(index)
    cutter = _Members(payload)
    located: list[tuple[Event, int, bytes]] = []
    for event in events:
        indexes = positions.get(str(event.event_id)) or [WHOLE_MESSAGE]
        index = indexes.pop(0) if len(indexes) > 1 else indexes[0]
        located.append((event, index, cutter.payload_of(index) if index != WHOLE_MESSAGE else bytes(payload)))
    return located
