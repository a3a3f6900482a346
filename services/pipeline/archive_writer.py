"""The health archive writer: micro-batches into PostgreSQL, idempotently.

Each batch is one transaction: binary COPY into temporary staging tables, then `INSERT ...
SELECT` into the archive, so a batch delivered twice (the worker crashed after writing but before
its Kafka offsets were committed) stores nothing twice: the insert runs in a savepoint, and if any
row is already stored (a unique violation) it runs again with `ON CONFLICT DO NOTHING`.
The caller acknowledges the batch's offsets only after `write` returns.

If PostgreSQL is unreachable the writer waits and retries the same batch, with backoff, forever:
offsets stay uncommitted meanwhile, so nothing is lost and the worker does not crash-loop.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Annotated, Any, NamedTuple, get_type_hints
from uuid import UUID

import psycopg
from psycopg import sql

from models.contracts import BmiScreening, FitnessTest, HealthRecord, PsychSurvey, VisionScreening
from models.fitness import ITEM_INFO, FitnessResult
from models.growth import GrowthResult
from models.pipeline import ProcessedMessages
from models.school_year import school_year
from models.surveys import SurveyResult
from models.vision import VisionResult
from services.access.users import OPERATOR_IDENTITIES
from services.pipeline.text_arrays import use_memoised_text_arrays

log = logging.getLogger(__name__)

# Instruments whose rules read single items (PHQ item 9): only these keep item answers.
ITEM_LEVEL_INSTRUMENTS = frozenset({"phq-a", "phq-9"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    item_index: int
    code: str
    reason: str
    school_id: str | None
    screener: str | None
    payload: bytes
    payload_size: int
    payload_sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflict:
    """An event whose id is already stored as another event (other content, date or family)."""

    event_id: UUID
    family: str
    stored_family: str


# Given the conflicts found inside the batch's transaction, produce their dead letters (acked by
# the broker) and return them, to be stored with the batch before it commits.
OnConflicts = Callable[[Sequence[Conflict]], Awaitable[Sequence[DeadLetter]]]



@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """An event whose submitter may not write it (`auth.submission_refusal`): not stored."""

    event_id: UUID
    family: str
    submitted_by: str
    school_id: str
    code: str


OnRefusals = Callable[[Sequence[Refusal]], Awaitable[Sequence[DeadLetter]]]

# What auth.submission_refusal calls each table's submissions (0041's kinds).
_KIND_OF_FAMILY = {"vision-screening": "vision", "bmi-screening": "bmi", "psych-survey": "survey",
                   "health-record": "records", "fitness-test": "fitness"}


# --- archive rows ------------------------------------------------------------------------------
# One NamedTuple per staging table: its field names ARE the table's columns, in COPY order, and
# each field's Annotated metadata is the column's PostgreSQL type (binary COPY needs it). The
# builders (`row_builder`, below) fill each column from the field of its name, or from a source
# named next to it, never by position, so neighbours of one type (right and left acuity, the
# z-scores) cannot trade places unnoticed. They return plain tuples in field order for COPY.
Uuid = Annotated[UUID, "uuid"]
UuidOrNone = Annotated[UUID | None, "uuid"]
Timestamp = Annotated[datetime, "timestamptz"]
Day = Annotated[date, "date"]
Text = Annotated[str, "text"]
TextOrNone = Annotated[str | None, "text"]
Texts = Annotated[list[str], "text[]"]
Bool = Annotated[bool, "bool"]
BoolOrNone = Annotated[bool | None, "bool"]
SmallInt = Annotated[int, "int2"]
SmallIntOrNone = Annotated[int | None, "int2"]
SmallInts = Annotated[list[int] | None, "int2[]"]
IntOrNone = Annotated[int | None, "int4"]
Real = Annotated[float, "float4"]
RealOrNone = Annotated[float | None, "float4"]
Double = Annotated[float, "float8"]
DoubleOrNone = Annotated[float | None, "float8"]
NumericOrNone = Annotated[Decimal | None, "numeric"]
Json = Annotated[Any, "jsonb"]  # dicts (binary COPY's jsonb dumper) or a JSON text


class VisionRow(NamedTuple):
    event_id: Uuid
    occurred_at: Timestamp
    student_key: Text
    school_id: Text
    submitted_by: Text
    supersedes: UuidOrNone
    measured_on: Day
    sex: Text
    age_months: Real
    ucva_right: Double
    ucva_left: Double
    se_right: DoubleOrNone
    se_left: DoubleOrNone
    wears_glasses: Bool
    screener: Text
    impairment_right: Text
    impairment_left: Text
    impairment_student: Text
    screening_myopia: BoolOrNone
    myopia_grade: TextOrNone
    reasons: Texts
    rule_version: Text
    reference: Text


class GrowthRow(NamedTuple):
    event_id: Uuid
    occurred_at: Timestamp
    student_key: Text
    school_id: Text
    submitted_by: Text
    supersedes: UuidOrNone
    measured_on: Day
    sex: Text
    age_months: Real
    height_cm: DoubleOrNone
    weight_kg: DoubleOrNone
    screener: Text
    bmi: RealOrNone
    bmi_for_age_z: RealOrNone
    height_for_age_z: RealOrNone
    who_category: Text
    wst586: Text
    wst456_wasting: Text
    wst456_stunting: Text
    flags: Texts
    not_applicable_reasons: Texts
    rule_version: Text
    reference: Text
    bmi_rounded: DoubleOrNone
    weight_for_age_z: RealOrNone
    who_weight_for_age: Text
    oedema: BoolOrNone
    age_completed_months: SmallIntOrNone


class SurveyRow(NamedTuple):
    event_id: Uuid
    occurred_at: Timestamp
    student_key: Text
    school_id: Text
    submitted_by: Text
    supersedes: UuidOrNone
    answered_on: Day
    sex: Text
    age_months: Real
    instrument: Text
    instrument_version: Text
    total: SmallInt
    max_total: SmallInt
    band: TextOrNone
    positive_screen: BoolOrNone
    literate: BoolOrNone
    dimension_scores: Json
    safety_flags: Texts
    item_answers: SmallInts
    rule_version: Text
    reference: Text


class HistoryRow(NamedTuple):
    event_id: Uuid
    occurred_at: Timestamp
    student_key: Text
    school_id: Text
    submitted_by: Text
    supersedes: UuidOrNone
    action: Text
    effective_on: Day
    county_id: Text
    grade: SmallInt
    to_school_id: TextOrNone
    boarding: Bool
    left_behind: Bool
    disability: Bool
    # Staged for the students upsert only (archive.student_history has neither).
    sex: Text
    birth_date: Day


class FitnessRow(NamedTuple):
    event_id: Uuid
    occurred_at: Timestamp
    student_key: Text
    school_id: Text
    submitted_by: Text
    supersedes: UuidOrNone
    measured_on: Day
    screener: Text
    sex: Text
    grade: SmallInt
    attempt: Text
    exempt: Bool
    exemption_reason: TextOrNone
    exempt_items: Texts
    height_cm: DoubleOrNone
    weight_kg: DoubleOrNone
    vital_capacity_ml: IntOrNone
    run_50m_s: DoubleOrNone
    sit_and_reach_cm: DoubleOrNone
    rope_skipping_count: SmallIntOrNone
    sit_ups_count: SmallIntOrNone
    shuttle_run_50m_x8_s: DoubleOrNone
    standing_long_jump_cm: SmallIntOrNone
    pull_ups_count: SmallIntOrNone
    run_800m_s: DoubleOrNone
    run_1000m_s: DoubleOrNone
    bmi: NumericOrNone
    bmi_category: TextOrNone
    bmi_score: SmallIntOrNone
    item_scores: Json
    item_bonus: Json
    status: Text
    missing_items: Texts
    failed_items: Texts
    standard_score: NumericOrNone
    bonus: SmallInt
    total: NumericOrNone
    band: TextOrNone
    document_only_tables: Texts
    table_version: Text
    reference: Text


def row_columns(row: type[Any]) -> tuple[tuple[str, str], ...]:
    """(column, PostgreSQL type) of a row type, in field order: the COPY column list."""
    hints = get_type_hints(row, include_extras=True)
    return tuple((name, hints[name].__metadata__[0]) for name in row._fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Table:
    target: str
    stage: str
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL type for binary COPY)
    # The table's own unique key, or None: the measurement tables have none since migration 0080,
    # the registry (archive.event_ids) is their events' key and repeats never reach them.
    conflict: str | None
    # How one stored event is found without a key of its own: the student's index columns.
    lookup: tuple[str, ...]
    family: str
    # The columns that hold what was submitted (not what the rules derived): two events with the
    # same id are the same event when these are equal.
    inputs: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def types(self) -> list[str]:
        return [type_ for _, type_ in self.columns]


# When and by whom an event was sent is not what it says (models.contracts.SUBMISSION_FIELDS).
_EVENT_INPUTS = ("student_key", "school_id", "supersedes")

VISION = _Table(
    target="archive.vision_screenings", stage="stage_vision", conflict=None,
    lookup=("student_key", "measured_on"),
    family="vision-screening",
    inputs=(*_EVENT_INPUTS, "measured_on", "sex", "age_months", "ucva_right",
            "ucva_left", "se_right", "se_left", "wears_glasses", "screener"),
    columns=row_columns(VisionRow),
)
GROWTH = _Table(
    target="archive.growth_screenings", stage="stage_growth", conflict=None,
    lookup=("student_key", "measured_on"),
    family="bmi-screening",
    inputs=(*_EVENT_INPUTS, "measured_on", "sex", "age_months", "height_cm",
            "weight_kg", "screener"),
    columns=row_columns(GrowthRow),
)
SURVEY = _Table(
    target="archive.survey_results", stage="stage_survey", conflict=None,
    lookup=("student_key", "answered_on"),
    family="psych-survey",
    # Item answers are kept for PHQ only; the total stands for the answers of the others.
    inputs=(*_EVENT_INPUTS, "answered_on", "sex", "age_months", "instrument",
            "instrument_version", "total", "item_answers"),
    columns=row_columns(SurveyRow),
)
HISTORY = _Table(
    target="archive.student_history", stage="stage_history", conflict="(event_id)", lookup=(),
    family="health-record",
    inputs=(*_EVENT_INPUTS, "action", "effective_on", "county_id", "grade",
            "to_school_id", "boarding", "left_behind", "disability"),
    columns=row_columns(HistoryRow),
)
FITNESS = _Table(
    target="archive.fitness_results", stage="stage_fitness", conflict=None,
    lookup=("student_key", "measured_on"),
    family="fitness-test",
    inputs=(*_EVENT_INPUTS, "measured_on", "screener", "sex", "grade", "attempt",
            "exempt", "exemption_reason", "exempt_items", "height_cm", "weight_kg", "vital_capacity_ml",
            "run_50m_s", "sit_and_reach_cm", "rope_skipping_count", "sit_ups_count", "shuttle_run_50m_x8_s",
            "standing_long_jump_cm", "pull_ups_count", "run_800m_s", "run_1000m_s"),
    columns=row_columns(FitnessRow),
)
_TABLES = (VISION, GROWTH, SURVEY, HISTORY, FITNESS)


# Where a column's value comes from when it is not the event's (or, if the event has none, the
# result's) field of the same name; also where both have one. Python expressions over `event` and
# `result`, checked when the builder is made: each names fields that exist.
_VISION_SOURCES = {
    "wears_glasses": "event.wears_glasses",
    "impairment_right": "result.right_grade", "impairment_left": "result.left_grade",
    "impairment_student": "result.student_grade", "reasons": "list(result.reasons)",
}
_GROWTH_SOURCES = {
    "sex": "event.sex", "age_months": "event.age_months", "oedema": "event.oedema",
    "flags": "list(result.flags)", "not_applicable_reasons": "list(result.not_applicable_reasons)",
    "bmi_rounded": "result.bmi_display",
}
_SURVEY_SOURCES = {
    "instrument": "event.instrument",
    "dimension_scores": "json.dumps(dict(result.dimension_scores)) if result.dimension_scores else None",
    "safety_flags": "list(result.safety_flags)",
    "item_answers": "list(event.answers) if event.instrument in ITEM_LEVEL_INSTRUMENTS else None",
}
_FITNESS_SOURCES = {
    "sex": "event.sex", "grade": "event.grade", "exempt_items": "list(event.exempt_items)",
    # Dicts: binary COPY's jsonb dumper serialises them (a JSON string would be stored as a string).
    "item_scores": "{score.item: score.score for score in result.items}",
    "item_bonus": "{score.item: score.bonus for score in result.items if score.bonus}",
    "missing_items": "list(result.missing_items)", "failed_items": "list(result.failed_items)",
    "document_only_tables": "list(result.document_only_tables)",
}


def _field_names(model: type) -> set[str]:
    if dataclasses.is_dataclass(model):
        return {field.name for field in dataclasses.fields(model)}
    return set(getattr(model, "model_fields", {}))


def row_builder(row: type[Any], sources: Mapping[str, str], *, event: type,
                result: type | None = None) -> Callable[[Any], tuple[Any, ...]]:
    """Make the function that turns one classified event into `row`'s values, in column order.

    Each column takes the event's field of its name (else the result's) unless `sources` says
    otherwise. The function is compiled once, as namedtuple compiles its constructor: a single
    tuple display, as fast as a hand-written positional builder (the writer builds some 100,000
    rows a second; Python's keyword calls of this arity cost more than the whole row), while
    nothing is written by position.
    """
    event_fields, result_fields = _field_names(event), _field_names(result) if result else set()
    expressions = []
    for column in row._fields:
        source = sources.get(column)
        if source is None:
            if column in event_fields and column in result_fields:
                raise TypeError(f"{row.__name__}.{column}: both the event and the result have it; say which")
            if column not in event_fields | result_fields:
                raise TypeError(f"{row.__name__}.{column}: neither the event nor the result has it")
            source = f"{'event' if column in event_fields else 'result'}.{column}"
        for node in ast.walk(ast.parse(source, mode="eval")):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in (
                    "event", "result"):
                fields = event_fields if node.value.id == "event" else result_fields
                if node.attr not in fields:
                    raise TypeError(f"{row.__name__}.{column}: {node.value.id} has no field {node.attr!r}")
        expressions.append(source)
    if unknown := set(sources) - set(row._fields):
        raise TypeError(f"{row.__name__} has no column {sorted(unknown)}")
    name = f"{row.__name__.removesuffix('Row').lower()}_row"
    unpack = "event, result = item.event, item.result" if result else "event = item"
    code = f"def {name}(item):\n    {unpack}\n    return (\n" + "".join(
        f"        {expression},  # {column}\n" for column, expression in zip(row._fields, expressions, strict=True)
    ) + "    )\n"
    namespace: dict[str, Any] = {"json": json, "ITEM_LEVEL_INSTRUMENTS": ITEM_LEVEL_INSTRUMENTS}
    exec(compile(code, f"<{name}>", "exec"), namespace)  # noqa: S102 - our own constant source, checked above
    built: Callable[[Any], tuple[Any, ...]] = namespace[name]
    built.__doc__ = f"The {row.__name__} of one event:\n\n{code}"
    return built


vision_row = row_builder(VisionRow, _VISION_SOURCES, event=VisionScreening, result=VisionResult)
growth_row = row_builder(GrowthRow, _GROWTH_SOURCES, event=BmiScreening, result=GrowthResult)
survey_row = row_builder(SurveyRow, _SURVEY_SOURCES, event=PsychSurvey, result=SurveyResult)
fitness_row = row_builder(FitnessRow, _FITNESS_SOURCES, event=FitnessTest, result=FitnessResult)
history_row = row_builder(HistoryRow, {}, event=HealthRecord)

# Every item the fitness tables score has its own column.
assert set(FitnessRow._fields) >= {info.field for info in ITEM_INFO.values()}


# The newest health-record event per student (by occurred_at) sets the current status; an older
# event arriving late only joins the history.
_UPSERT_STUDENTS = """
INSERT INTO archive.students AS s
    (student_key, school_id, county_id, sex, birth_date, grade, boarding, left_behind, disability,
     status, as_of, last_event_id)
SELECT DISTINCT ON (student_key)
    student_key, CASE WHEN action = 'transfer' THEN to_school_id ELSE school_id END, county_id, sex,
    birth_date, grade, boarding, left_behind, disability,
    CASE WHEN action = 'leave' THEN 'left' ELSE 'active' END, occurred_at, event_id
FROM stage_history
ORDER BY student_key, occurred_at DESC, event_id DESC
ON CONFLICT (student_key) DO UPDATE SET
    school_id = EXCLUDED.school_id, county_id = EXCLUDED.county_id, sex = EXCLUDED.sex,
    birth_date = EXCLUDED.birth_date, grade = EXCLUDED.grade, boarding = EXCLUDED.boarding,
    left_behind = EXCLUDED.left_behind, disability = EXCLUDED.disability, status = EXCLUDED.status,
    as_of = EXCLUDED.as_of, last_event_id = EXCLUDED.last_event_id
WHERE s.as_of < EXCLUDED.as_of OR (s.as_of = EXCLUDED.as_of AND s.last_event_id < EXCLUDED.last_event_id)
"""


# The (student, school year) pairs each staged table's events change in the rollups (migrations
# 0085, 0109). A screening or survey changes its student's school year and the one of the event it
# corrects. The pairs are taken from the batch in Python (`models.school_year`, the twin of
# `metrics.school_year`): a statement over staging cost PostgreSQL 6-10 µs per event (its join with
# the archive table for the corrected events had no statistics on the temporary table to go by).
# The batch may hold events later taken out of staging (repeats, refusals): marking their pairs too
# only recomputes a student-year more, never one less.
_DATED_MARKS: dict[str, tuple[str, str, str]] = {  # family → (batch list, target table, day field)
    VISION.family: ("vision", VISION.target, "measured_on"),
    GROWTH.family: ("growth", GROWTH.target, "measured_on"),
    SURVEY.family: ("surveys", SURVEY.target, "answered_on"),
}
_MARK_STUDENTS = ("INSERT INTO metrics.dirty_students (student_key, school_year)"
                  " SELECT * FROM unnest(%s::text::text[], %s::text::integer[])")


def array_literal(values: Iterable[object]) -> str:
    """PostgreSQL's text form of a one-dimensional array of `values` (``{"a","b"}``), every element
    quoted; passed as one text parameter and cast (``%s::text::text[]``).

    The marks' arrays hold one element per event of a batch: psycopg's list dumper adapts each
    element on its own (3.6 µs per event for a pair of arrays, measured), one join is 0.1 µs.
    Elements are strings, integers or dates; a string with a quote or a backslash is escaped.
    """
    texts = [value if isinstance(value, str) else str(value) for value in values]
    joined = '","'.join(texts)
    if '"' in joined or "\\" in joined:
        joined = '","'.join(text.replace("\\", "\\\\").replace('"', '\\"') for text in texts)
    return '{"' + joined + '"}' if texts else "{}"


def _mark_corrected(target: str, day: str) -> str:
    # The corrected events' school years, found through their student's index (the tables have no key).
    return (f"INSERT INTO metrics.dirty_students (student_key, school_year)"
            f" SELECT DISTINCT c.student_key, metrics.school_year(t.{day})"
            f" FROM unnest(%s::text[], %s::uuid[]) AS c(student_key, event_id)"
            f" JOIN {target} t ON t.student_key = c.student_key AND t.event_id = c.event_id")


# A health record moves the student's census-day record (school, grade, sex) of every later year; a
# fitness test enters the graduation score of the stage's later years: from the student's first.
_MARK_ONWARDS = {
    HISTORY.family: (
        "INSERT INTO metrics.dirty_students (student_key, school_year, onwards)"
        " SELECT h.student_key, min(metrics.school_year(h.effective_on)), true FROM archive.student_history h"
        " WHERE h.student_key IN (SELECT student_key FROM stage_history) GROUP BY h.student_key"),
    FITNESS.family: (
        "INSERT INTO metrics.dirty_students (student_key, school_year, onwards)"
        " SELECT f.student_key, min(metrics.school_year(f.measured_on)), true FROM archive.fitness_results f"
        " WHERE f.student_key IN (SELECT student_key FROM stage_fitness) GROUP BY f.student_key"),
}


# The (daily, school, day) of each vision and growth screening: the data-quality dailies recount
# those days of those schools where they are tables (migration 0115). Where they are continuous
# aggregates (TimescaleDB) nothing reads the marks: the condition, a one-time filter, writes none.
_DAILIES = {VISION.family: "vision", GROWTH.family: "growth"}
_MARK_DAYS = ("INSERT INTO metrics.dirty_days (daily, school_id, day)"
              " SELECT %s, * FROM unnest(%s::text::text[], %s::text::date[]) WHERE metrics.dailies_are_tables()")


def dirty_days(events: Sequence[Any]) -> list[tuple[str, date]]:
    """The (school, day) pairs of a batch of screenings, each once (in no particular order)."""
    return list({(event.school_id, event.measured_on) for event in events})


def dirty_marks(family: str, events: Sequence[Any]) -> tuple[list[tuple[str, int]], list[tuple[str, UUID]]]:
    """The (student, school year) pairs a batch of dated events changes (each once, in no particular
    order), and the (student, event id) pairs it corrects."""
    day = attrgetter(_DATED_MARKS[family][2])
    # A batch holds few distinct days: each day's school year is computed once.
    years: dict[date, int] = {}
    pairs: set[tuple[str, int]] = set()
    for event in events:
        on = day(event)
        year = years.get(on)
        if year is None:
            year = years[on] = school_year(on)
        pairs.add((event.student_key, year))
    corrected = [(event.student_key, event.supersedes) for event in events if event.supersedes is not None]
    return list(pairs), corrected


_INSERT_DEAD_LETTER = """
INSERT INTO ops.dead_letters (topic, kafka_partition, kafka_offset, item_index, code, reason,
                              school_id, screener, payload, payload_size, payload_sha256)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (topic, kafka_partition, kafka_offset, item_index) DO NOTHING
"""


class ArchiveWriter:
    """Writes classified micro-batches and dead letters; one connection, reconnecting as needed."""

    def __init__(self, dsn: str, *, max_backoff: float = 5.0,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self._dsn = dsn
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._max_backoff = max_backoff
        self._sleep = sleep
        self.retries = 0
        self.conflict_fallbacks = 0  # inserts (one per table and batch) redone with ON CONFLICT
        self._repeats = False  # the batch in hand repeats ids already registered

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed:
            connection = await psycopg.AsyncConnection.connect(self._dsn, connect_timeout=5)
            use_memoised_text_arrays(connection)
            for table in _TABLES:
                # Rows vanish at commit: a staging table only ever holds the batch in flight.
                await connection.execute(sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS"
                ).format(sql.Identifier(table.stage), sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_)) for name, type_ in table.columns)))
            await connection.commit()
            self._connection = connection
        return self._connection

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def write(self, batch: ProcessedMessages, dead_letters: Sequence[DeadLetter], *,
                    on_conflicts: OnConflicts | None = None, on_refusals: OnRefusals | None = None) -> None:
        """Write the batch in one transaction, retrying until PostgreSQL takes it.

        Events whose id is already stored with another family or other content are not written;
        `on_conflicts` gets them (inside the transaction, before it commits) and returns their
        dead letters, which are stored with the batch. Without it such events are an error.
        Events whose submitter may not write them (write scope, re-checked here: migration 0044)
        are not written either; `on_refusals` gets them likewise, and without it they are an error.
        """
        backoff = 0.2
        while True:
            try:
                connection = await self._connect()
                async with connection.transaction():
                    await self._write(connection, batch, dead_letters, on_conflicts, on_refusals)
                return
            except psycopg.OperationalError as error:
                self.retries += 1
                # The message names the server problem only; batches carry no identifiers to log.
                log.warning("archive unavailable (%s); retrying the batch in %.1fs",
                            str(error).splitlines()[0] if str(error) else type(error).__name__, backoff)
                await self.close_quietly()
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def close_quietly(self) -> None:
        try:
            await self.close()
        except psycopg.Error:
            self._connection = None

    async def _write(self, connection: psycopg.AsyncConnection[Any], batch: ProcessedMessages,
                     dead_letters: Sequence[DeadLetter], on_conflicts: OnConflicts | None,
                     on_refusals: OnRefusals | None = None) -> None:
        staged: list[_Table] = []
        for table, rows in (
            (VISION, [vision_row(item) for item in batch.vision]),
            (GROWTH, [growth_row(item) for item in batch.growth]),
            (SURVEY, [survey_row(item) for item in batch.surveys]),
            (HISTORY, [history_row(event) for event in batch.records]),
            (FITNESS, [fitness_row(item) for item in batch.fitness]),
        ):
            if rows:
                await self._stage(connection, table, rows)
                staged.append(table)
        letters = list(dead_letters)
        refusals = await self._refuse_out_of_scope(connection, staged)
        if refusals:
            if on_refusals is None:
                raise RuntimeError(f"{len(refusals)} event(s) submitted by someone who may not write them")
            letters += await on_refusals(refusals)
        conflicts = await self._register(connection, staged)
        if conflicts:
            if on_conflicts is None:
                raise RuntimeError(f"{len(conflicts)} event id(s) already stored with other content")
            letters += await on_conflicts(conflicts)
        for table in staged:
            await self._insert(connection, table, repeats=bool(conflicts) or self._repeats)
        if batch.records:
            await connection.execute(_UPSERT_STUDENTS)
        for table in staged:
            # In this transaction: the incremental refresh recomputes these student-years (0109).
            await self._mark_dirty(connection, batch, table)
        if letters:
            async with connection.cursor() as cursor:
                await cursor.executemany(_INSERT_DEAD_LETTER, [
                    (d.topic, d.partition, d.offset, d.item_index, d.code, d.reason, d.school_id,
                     d.screener, d.payload, d.payload_size, d.payload_sha256) for d in letters
                ])

    async def _mark_dirty(self, connection: psycopg.AsyncConnection[Any], batch: ProcessedMessages,
                          table: _Table) -> None:
        dated = _DATED_MARKS.get(table.family)
        if dated is None:
            await connection.execute(_MARK_ONWARDS[table.family])
            return
        listed, target, day = dated
        events = [item.event for item in getattr(batch, listed)]
        pairs, corrected = dirty_marks(table.family, events)
        await connection.execute(_MARK_STUDENTS, (array_literal(student for student, _ in pairs),
                                                  array_literal(year for _, year in pairs)))
        daily = _DAILIES.get(table.family)
        if daily is not None:
            days = dirty_days(events)
            await connection.execute(_MARK_DAYS, (daily, array_literal(school for school, _ in days),
                                                  array_literal(when for _, when in days)))
        if corrected:
            await connection.execute(_mark_corrected(target, day), (
                [student for student, _ in corrected], [event_id for _, event_id in corrected]))

    async def _stage(self, connection: psycopg.AsyncConnection[Any], table: _Table,
                     rows: Sequence[tuple[Any, ...]]) -> None:
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in table.names)
        async with connection.cursor() as cursor, cursor.copy(sql.SQL(
                "COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(table.stage), columns)) as copy:
            copy.set_types(table.types)
            for row in rows:
                await copy.write_row(row)

    async def _refuse_out_of_scope(self, connection: psycopg.AsyncConnection[Any],
                                   staged: Sequence[_Table]) -> list[Refusal]:
        """Remove from staging the new events whose submitter may not write them; return them.

        The operator's identities are skipped without a call; an event already registered (a
        redelivery) was checked when it was stored and is left to `_register`.
        """
        refusals: list[Refusal] = []
        for table in staged:
            action = sql.SQL("s.action") if table is HISTORY else sql.SQL("NULL")
            cursor = await connection.execute(sql.SQL(
                "SELECT event_id, submitted_by, school_id, refusal FROM ("
                " SELECT s.event_id, s.submitted_by, s.school_id, auth.submission_refusal("
                "  s.submitted_by, s.student_key, s.school_id, {kind}, {action}) AS refusal"
                " FROM {stage} s WHERE s.submitted_by <> ALL(%s)"
                "  AND NOT EXISTS (SELECT 1 FROM archive.event_ids r WHERE r.event_id = s.event_id)) checked"
                " WHERE refusal IS NOT NULL").format(
                    kind=sql.Literal(_KIND_OF_FAMILY[table.family]), action=action,
                    stage=sql.Identifier(table.stage)), (list(OPERATOR_IDENTITIES),))
            found = await cursor.fetchall()
            if found:
                await connection.execute(sql.SQL("DELETE FROM {} WHERE event_id = ANY(%s)").format(
                    sql.Identifier(table.stage)), ([row[0] for row in found],))
                refusals += [Refusal(event_id=event_id, family=table.family, submitted_by=user, school_id=school,
                                     code=code) for event_id, user, school, code in found]
        return refusals

    async def _register(self, connection: psycopg.AsyncConnection[Any], staged: Sequence[_Table]) -> list[Conflict]:
        """Record the staged event ids in the registry; return the ids stored before as another event.

        Nearly every batch is new: one plain insert, in a savepoint. If an id is already there (a
        redelivery, or a reused id), each staged row whose id is registered is either an exact
        repeat (same family, and the stored row says the same) or a conflict (another family, or
        other content or date). Both leave staging: a repeat is already stored, a conflict is
        returned for its dead letter. The rest is then registered. The registry is the only key
        of the measurement tables (migration 0080), so a repeat must never reach them.
        """
        self._repeats = False
        if not staged:
            return []
        ids = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT event_id, {} FROM {}").format(sql.Literal(t.family), sql.Identifier(t.stage))
            for t in staged)
        insert = sql.SQL("INSERT INTO archive.event_ids (event_id, family) {}").format(ids)
        try:
            async with connection.transaction():
                await connection.execute(insert)
            return []
        except psycopg.errors.UniqueViolation:
            self._repeats = True
        conflicts: list[Conflict] = []
        while True:
            conflicts += await self._remove_registered(connection, staged)
            try:
                # Another writer may register some of the rest meanwhile (two workers holding one
                # redelivered batch): then look again; each round sees more of what is committed.
                async with connection.transaction():
                    await connection.execute(insert)
                return conflicts
            except psycopg.errors.UniqueViolation:
                continue

    async def _remove_registered(self, connection: psycopg.AsyncConnection[Any],
                                 staged: Sequence[_Table]) -> list[Conflict]:
        """Take out of staging every row whose id is registered; return those that are conflicts."""
        conflicts: list[Conflict] = []
        for table in staged:
            stored = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(n)) for n in table.inputs)
            new = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(n)) for n in table.inputs)
            # The stored row is found through its student's index (the tables have no key of their own).
            where = sql.SQL(" AND ").join(
                [sql.SQL("t.{0} = s.{0}").format(sql.Identifier(n)) for n in table.lookup]
                + [sql.SQL("t.event_id = s.event_id")])
            cursor = await connection.execute(sql.SQL(
                "SELECT s.event_id, r.family, r.family = {family} AND EXISTS (SELECT 1 FROM {target} t"
                " WHERE {where} AND ROW({stored}) IS NOT DISTINCT FROM ROW({new}))"
                " FROM {stage} s JOIN archive.event_ids r USING (event_id)").format(
                    stage=sql.Identifier(table.stage), family=sql.Literal(table.family),
                    target=sql.SQL(table.target), where=where, stored=stored, new=new))
            found: list[tuple[UUID, str, bool]] = await cursor.fetchall()
            if found:
                await connection.execute(sql.SQL("DELETE FROM {} WHERE event_id = ANY(%s)").format(
                    sql.Identifier(table.stage)), ([event_id for event_id, _, _ in found],))
                conflicts += [Conflict(event_id=event_id, family=table.family, stored_family=family)
                              for event_id, family, same in found if not same]
            # One id twice in the batch itself: the first row is kept (the ingest path removes such
            # repeats before, in message order; the writer does not rely on it).
            await connection.execute(sql.SQL(
                "DELETE FROM {0} a USING {0} b WHERE a.event_id = b.event_id AND a.ctid > b.ctid").format(
                    sql.Identifier(table.stage)))
            # One id in two families of the batch: the family staged first keeps it.
            for earlier in staged[:staged.index(table)]:
                cursor = await connection.execute(sql.SQL(
                    "DELETE FROM {} s WHERE event_id IN (SELECT event_id FROM {}) RETURNING event_id").format(
                        sql.Identifier(table.stage), sql.Identifier(earlier.stage)))
                conflicts += [Conflict(event_id=event_id, family=table.family, stored_family=earlier.family)
                              for (event_id,) in await cursor.fetchall()]
        return conflicts

    async def _insert(self, connection: psycopg.AsyncConnection[Any], table: _Table, *, repeats: bool) -> None:
        # History staging also carries sex and birth date, for the students upsert only.
        target_columns = [n for n in table.names if table is not HISTORY or n not in ("sex", "birth_date")]
        target = sql.SQL(", ").join(sql.Identifier(name) for name in target_columns)
        insert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
            sql.SQL(table.target), target, target, sql.Identifier(table.stage))
        async with connection.cursor() as cursor:
            if table.conflict is None:
                # Only ids registered by this batch are left in staging (`_register`): none is stored yet.
                if repeats:
                    self.conflict_fallbacks += 1  # the batch took the repeat path
                await cursor.execute(insert)
                return
            if not repeats:
                try:
                    # Nearly every batch is new: a plain insert, in a savepoint, skips ON CONFLICT's
                    # speculative insertion (a fifth of PostgreSQL's work per row, measured).
                    async with connection.transaction():
                        await cursor.execute(insert)
                    return
                except psycopg.errors.UniqueViolation:
                    pass
            # Redelivered after a crash: the rows already stored are skipped.
            self.conflict_fallbacks += 1
            await cursor.execute(sql.SQL("{} ON CONFLICT {} DO NOTHING").format(insert, sql.SQL(table.conflict)))


def write_once(dsn: str, batch: ProcessedMessages) -> None:
    """Write one batch (no dead letters) through a writer of its own, then close it; for callers
    outside an event loop (the scale benchmark, tests). Conflicts and refusals are errors."""

    async def write() -> None:
        writer = ArchiveWriter(dsn)
        try:
            await writer.write(batch, [])
        finally:
            await writer.close()

    asyncio.run(write())
