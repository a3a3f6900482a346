"""Every archive column receives the field of its name, through the real writer and PostgreSQL.

The writer's rows are built from named fields (`services.pipeline.archive_writer`); this test does
not trust that. For each family it writes three events chosen so that every two columns of one
type hold different values in at least one of them (checked first: otherwise a swap could pass),
then reads each stored row back by column name and compares it with the event's (or result's)
field of that name, or the source this test names for the few columns named otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import combinations
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from models.pipeline import ProcessedMessages, classify_event
from services.pipeline.archive_writer import FITNESS, GROWTH, HISTORY, SURVEY, VISION, write_once
from services.platform.settings import Settings
from tests import factories

pytestmark = pytest.mark.integration

# Columns whose value is not the event's or the result's field of the same name (written out here
# independently of the writer).
RENAMED: dict[str, dict[str, Any]] = {
    VISION.target: {
        "impairment_right": lambda e, r: r.right_grade, "impairment_left": lambda e, r: r.left_grade,
        "impairment_student": lambda e, r: r.student_grade,
    },
    GROWTH.target: {"bmi_rounded": lambda e, r: r.bmi_display},
    SURVEY.target: {
        "item_answers": lambda e, r: list(e.answers),
        "dimension_scores": lambda e, r: dict(r.dimension_scores) or None,
    },
    FITNESS.target: {
        "item_scores": lambda e, r: {s.item: s.score for s in r.items},
        "item_bonus": lambda e, r: {s.item: s.bonus for s in r.items if s.bonus},
    },
    HISTORY.target: {},
}

# Same-typed columns that these events cannot tell apart, and why that is acceptable.
INDISTINCT = {
    # Fixed per rule set, not per event.
    ("rule_version", "reference"), ("table_version", "reference"), ("rule_version", "table_version"),
}


def _expected(column: str, target: str, event: Any, result: Any) -> Any:
    if column in RENAMED[target]:
        return RENAMED[target][column](event, result)
    # The event's field first (what was submitted; growth's sex and oedema are on both).
    if column in type(event).model_fields:
        return getattr(event, column)
    return getattr(result, column)


def _same(stored: Any, expected: Any) -> bool:
    if isinstance(expected, tuple):
        expected = list(expected)
    # Stored as real (float4) or numeric: equal to the submitted float as far as the column keeps.
    if isinstance(expected, float) and isinstance(stored, float | Decimal):
        return bool(float(stored) == pytest.approx(expected, rel=1e-6))
    if isinstance(expected, Decimal) and stored is not None:
        return bool(Decimal(stored) == expected)
    return bool(stored == expected)


def _events() -> list[Any]:
    vision = [
        factories.vision(1, ucva_right=5.0, ucva_left=4.7, se_right=-0.25, se_left=-1.25, wears_glasses=False),
        factories.vision(2, ucva_right=4.4, ucva_left=5.1, se_right=-3.5, se_left=0.5, wears_glasses=True,
                         screener="screener-9", sex="male"),
        factories.vision(3, ucva_right=4.9, ucva_left=4.9, se_right=None, se_left=-6.5, age_months=150.0),
    ]
    growth = [
        factories.bmi(1, height_cm=140.0, weight_kg=35.0, age_months=130.0),
        factories.bmi(2, height_cm=120.0, weight_kg=40.0, age_months=100.0, oedema=False, age_completed_months=100),
        factories.bmi(3, height_cm=150.0, weight_kg=32.0, age_months=140.0, supersedes=None, screener="s-7"),
    ]
    surveys = [
        factories.survey(1, answers=[1, 1, 0, 1, 0, 0, 1, 0, 0]),
        factories.survey(2, answers=[3, 3, 3, 2, 3, 3, 2, 3, 1], sex="female", age_months=170.0),
        factories.survey(3, answers=[0, 0, 0, 0, 0, 0, 0, 0, 2], instrument_version="1"),
    ]
    records = [
        factories.record(1, boarding=True, left_behind=False, disability=False, grade=3),
        factories.record(2, boarding=False, left_behind=True, disability=False, grade=6, sex="male"),
        factories.record(3, boarding=False, left_behind=False, disability=True, grade=8, county_id="C07"),
    ]
    fitness = [
        factories.fitness(1),
        factories.fitness(2, sex="female", weight_kg=70.0, run_800m_s=300.0, sit_ups_count=10),
        factories.fitness(3, exempt_items=["run_1000m"], exemption_reason="injury", run_1000m_s=None, grade=7,
                          pull_ups_count=2),
    ]
    return [*vision, *growth, *surveys, *records, *fitness]


def _tables(batch: ProcessedMessages) -> list[tuple[Any, list[tuple[Any, Any]]]]:
    return [
        (VISION, [(i.event, i.result) for i in batch.vision]),
        (GROWTH, [(i.event, i.result) for i in batch.growth]),
        (SURVEY, [(i.event, i.result) for i in batch.surveys]),
        (FITNESS, [(i.event, i.result) for i in batch.fitness]),
        (HISTORY, [(e, None) for e in batch.records]),
    ]


def _fetch(settings: Settings, query: str, ids: Sequence[Any]) -> dict[Any, dict[str, Any]]:
    with psycopg.connect(settings.pg_dsn("admin"), row_factory=dict_row) as conn:
        return {row["event_id"]: row for row in conn.execute(query, (list(ids),)).fetchall()}


def test_every_archive_column_receives_the_field_of_its_name(isolated: Settings) -> None:
    settings = isolated
    batch = ProcessedMessages()
    for event in _events():
        classify_event(event, batch)
    tables = _tables(batch)
    assert all(len(pairs) == 3 for _, pairs in tables), [len(p) for _, p in tables]

    # First: the events can catch a swap. Every two columns of one type differ in some event.
    for table, pairs in tables:
        names = [n for n in table.names if not (table is HISTORY and n in ("sex", "birth_date"))]
        types = dict(table.columns)
        vectors = {n: [_expected(n, table.target, e, r) for e, r in pairs] for n in names}
        for a, b in combinations(names, 2):
            if types[a] == types[b] and (a, b) not in INDISTINCT and (b, a) not in INDISTINCT:
                assert vectors[a] != vectors[b], f"{table.target}: {a} and {b} hold the same values"

    write_once(settings.pg_dsn("app"), batch)

    for table, pairs in tables:
        stored = _fetch(settings, f"SELECT * FROM {table.target} WHERE event_id = ANY(%s)",
                        [e.event_id for e, _ in pairs])
        assert len(stored) == 3, table.target
        types = dict(table.columns)
        for event, result in pairs:
            row = stored[event.event_id]
            for column in table.names:
                if table is HISTORY and column in ("sex", "birth_date"):
                    continue
                expected = _expected(column, table.target, event, result)
                assert _same(row[column], expected), (
                    f"{table.target}.{column}: stored {row[column]!r}, the field of that name is {expected!r}")

    # History stages sex and birth date for the students upsert only: they land in archive.students.
    records = dict(tables)[HISTORY]
    with psycopg.connect(settings.pg_dsn("admin"), row_factory=dict_row) as conn:
        students = {row["student_key"]: row for row in conn.execute(
            "SELECT student_key, sex, birth_date, grade FROM archive.students").fetchall()}
    for event, _ in records:
        assert (students[event.student_key]["sex"], students[event.student_key]["birth_date"],
                students[event.student_key]["grade"]) == (event.sex, event.birth_date, event.grade)
