"""Classified events into the archive through the real archive writer, for integration tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from models.pipeline import ProcessedMessages, classify_event
from services.pipeline.archive_writer import write_once
from services.platform.settings import Settings


def write_classified(settings: Settings, events: Iterable[Any]) -> None:
    """Classify `events` (every one must be accepted) and write them in one batch as the app role."""
    batch = ProcessedMessages()
    for event in events:
        classify_event(event, batch)
    assert not batch.rejected, batch.rejected

    write_once(settings.pg_dsn("app"), batch)
