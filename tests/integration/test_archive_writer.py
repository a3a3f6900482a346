"""The archive writer against the real database: each event stored once, however often it comes."""

from __future__ import annotations

import asyncio

import pytest

from models.pipeline import ProcessedMessages, classify_event
from services.archive import ArchiveWriter
from services.settings import Settings
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
