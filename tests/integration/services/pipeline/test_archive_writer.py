"""The archive writer against the real database: each event stored once, however often it comes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, timedelta

import psycopg
import pytest

from models.pipeline import ProcessedMessages, classify_event
from services.pipeline.archive_writer import ArchiveWriter, Conflict, DeadLetter, array_literal
from services.platform.settings import Settings
from tests import factories
from tests.integration.conftest import count

pytestmark = pytest.mark.integration


def _batch(numbers: list[int]) -> ProcessedMessages:
    batch = ProcessedMessages()
    for n in numbers:
        classify_event(factories.bmi(n), batch)
        classify_event(factories.vision(n), batch)
    return batch


def test_new_batches_take_the_plain_insert_and_repeats_are_stored_once(isolated: Settings) -> None:
    settings = isolated

    async def scenario() -> int:
        writer = ArchiveWriter(settings.pg_dsn("app"))
        try:
            await writer.write(_batch(list(range(0, 100))), [])
            await writer.write(_batch(list(range(100, 200))), [])
            assert writer.conflict_fallbacks == 0  # new rows only: no fallback
            # Redelivered: half already stored, half new; then a batch repeating one event in itself.
            await writer.write(_batch(list(range(150, 250))), [])
            await writer.write(_batch([300, 300, 301]), [])
            return writer.conflict_fallbacks
        finally:
            await writer.close()

    fallbacks = asyncio.run(scenario())
    # Both tables of the two repeating batches took the ON CONFLICT path; nothing else did.
    assert fallbacks == 4
    for table in ("archive.growth_screenings", "archive.vision_screenings"):
        assert count(settings, f"SELECT count(*) FROM {table}") == 252
        assert count(settings, f"SELECT count(DISTINCT event_id) FROM {table}") == 252


def test_the_same_event_sent_again_later_by_another_submitter_is_an_exact_repeat(isolated: Settings) -> None:
    """A file imported twice, or the roster's and a records file's "register" of one enrolment: the
    id is derived from the content, only when and by whom it was sent differ. Not a conflict."""
    settings = isolated
    later = factories.NOW + timedelta(days=40)
    first = [factories.bmi(n) for n in range(5)] + [factories.record(n) for n in range(5)]
    again = [e.model_copy(update={"occurred_at": later, "submitted_by": "import-roster"}) for e in first]
    changed = factories.bmi(0, weight_kg=36.0, occurred_at=later.isoformat())

    async def scenario() -> list[Conflict]:
        conflicts: list[Conflict] = []

        async def collect(found: Sequence[Conflict]) -> Sequence[DeadLetter]:
            conflicts.extend(found)
            return []

        writer = ArchiveWriter(settings.pg_dsn("app"))
        try:
            for events in (first, again, [changed]):
                batch = ProcessedMessages()
                for event in events:
                    classify_event(event, batch)
                await writer.write(batch, [], on_conflicts=collect)
        finally:
            await writer.close()
        return conflicts

    conflicts = asyncio.run(scenario())
    # Only the event whose measurement changed under the same id is a conflict.
    assert [c.event_id for c in conflicts] == [changed.event_id]
    assert count(settings, "SELECT count(*) FROM archive.growth_screenings") == 5
    assert count(settings, "SELECT count(*) FROM archive.student_history") == 5
    assert count(settings, "SELECT count(*) FROM archive.growth_screenings WHERE weight_kg = 36.0") == 0


def test_two_writers_racing_with_the_same_batch_store_each_event_once(isolated: Settings) -> None:
    """Two workers holding the same redelivered batch at once (a rebalance): the measurement tables
    have no key of their own (migration 0080), so the registry alone must keep the second copy out."""
    settings = isolated

    async def scenario() -> list[int]:
        writers = [ArchiveWriter(settings.pg_dsn("app")) for _ in range(2)]
        try:
            for round_ in range(5):
                numbers = list(range(round_ * 40, round_ * 40 + 60))  # overlaps the round before
                await asyncio.gather(*(w.write(_batch(numbers), []) for w in writers))
            return [w.conflict_fallbacks for w in writers]
        finally:
            for w in writers:
                await w.close()

    fallbacks = asyncio.run(scenario())
    assert sum(fallbacks) >= 5  # every round, at least one writer found the other's copy
    for table in ("archive.growth_screenings", "archive.vision_screenings"):
        assert count(settings, f"SELECT count(*) FROM {table}") == 220
        assert count(settings, f"SELECT count(DISTINCT event_id) FROM {table}") == 220
    assert count(settings, "SELECT count(*) FROM archive.event_ids") == 440


def test_the_registry_is_the_only_key_of_the_measurement_tables(isolated: Settings) -> None:
    """Migration 0080: no second B-tree per row on the id; the student and school indexes remain."""
    settings = isolated
    for table in ("vision_screenings", "growth_screenings", "survey_results", "fitness_results"):
        assert count(settings, "SELECT count(*) FROM pg_constraint"
                     f" WHERE conrelid = 'archive.{table}'::regclass AND contype IN ('p', 'u')") == 0, table
        assert count(settings, "SELECT count(*) FROM pg_indexes"
                     f" WHERE schemaname = 'archive' AND tablename = '{table}'") >= 2, table


def test_the_marks_arrays_read_back_as_sent_whatever_the_text(isolated: Settings) -> None:
    """The writer sends its marks as array literals (`array_literal`); PostgreSQL must read back
    exactly the elements sent: quotes, backslashes, commas, braces, spaces, "NULL", empty strings."""
    hostile = ['plain', '', 'NULL', 'null', ' padded ', 'a,b', '{x}', 'say "hi"', 'back\\slash', '\\"', '"',
               '\\', '学校 S001', 'tab\there', 'line\nbreak', 'é' * 70]
    days = [date(2025, 9, 1), date(2026, 2, 28), date(2024, 2, 29)]
    with psycopg.connect(isolated.pg_dsn("app")) as conn:
        assert conn.execute("SELECT %s::text::text[]", (array_literal(hostile),)).fetchone() == (hostile,)
        assert conn.execute("SELECT %s::text::text[]", (array_literal([]),)).fetchone() == ([],)
        assert conn.execute("SELECT %s::text::date[]", (array_literal(days),)).fetchone() == (days,)
        years = [2025, -1, 0]
        assert conn.execute("SELECT %s::text::integer[]", (array_literal(years),)).fetchone() == (years,)
        # As the writer uses them: one row per element, in step.
        rows = conn.execute("SELECT * FROM unnest(%s::text::text[], %s::text::integer[])",
                            (array_literal(hostile), array_literal(range(len(hostile))))).fetchall()
        assert rows == [(text, n) for n, text in enumerate(hostile)]
