"""Seeding an archive straight from a synthetic province, without Kafka (tests, training, demos).

The rows take the importer's path (`models.importing` validation, batch envelopes) and then the
worker's path (`models.pipeline` classification, `ArchiveWriter`), so a seeded archive holds
exactly what the streaming pipeline would have stored; only the broker is skipped.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from models.pipeline import ProcessedMessages, process_message
from models.synthetic import ProvinceSpec
from models.topics import INPUT_TOPICS
from services.devtools.synthetic_files import write_province
from services.intake.importer import ImportSummary, import_rows, read_rows
from services.pipeline.archive_writer import ArchiveWriter
from services.platform.settings import Settings

T = TypeVar("T")

IMPORT_ORDER = ("schools", "roster", "records", "vision", "bmi", "survey")


class ArchivePublisher:
    """A `Publisher` that classifies and writes each batch envelope into the archive directly.

    The writes run on a thread of their own, one batch at a time and in order: while PostgreSQL
    stores one batch, this thread validates and classifies the next (at most one batch in flight,
    so memory stays bounded by two batches). A failed write is raised by the next `publish`,
    `drain` or `close`; `drain` returns once everything published is stored.
    """

    def __init__(self, settings: Settings, *, flush_events: int = 5000) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="archive-writer", daemon=True)
        self._thread.start()
        self._writer = ArchiveWriter(settings.pg_dsn("app"))
        self._pending = ProcessedMessages()
        self._in_flight: Future[None] | None = None
        self._flush_events = flush_events
        self.rejected = 0

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        process_message(value, expected_family=INPUT_TOPICS[topic], out=self._pending)
        if self._pending.accepted >= self._flush_events:
            self.flush()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the writer's loop, after the batch in flight, and wait for it."""
        self.drain()
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def drain(self) -> None:
        """Wait until the batch in flight is stored (raising its error, if it failed)."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def flush(self) -> None:
        batch, self._pending = self._pending, ProcessedMessages()
        self.rejected += len(batch.rejected)
        self.drain()
        if batch.accepted:
            self._in_flight = asyncio.run_coroutine_threadsafe(self._writer.write(batch, ()), self._loop)

    def close(self) -> None:
        try:
            self.flush()
            self.drain()
        finally:
            asyncio.run_coroutine_threadsafe(self._writer.close(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


@dataclass(slots=True, kw_only=True)
class SeedStats:
    files: dict[str, Path] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def truth_csv(self) -> Path:
        return self.files["truth"]


def import_directory(settings: Settings, directory: Path, publisher: ArchivePublisher | None = None) -> SeedStats:
    """Import a province's CSV files in dependency order (schools before roster before events)."""
    stats = SeedStats(files={path.stem: path for path in directory.glob("*.csv")})
    own = publisher is None
    active = publisher or ArchivePublisher(settings)
    try:
        with psycopg.connect(settings.pg_dsn("app")) as conn:
            for kind in IMPORT_ORDER:
                header, rows = read_rows(stats.files[kind])
                summary = ImportSummary(kind=kind, path=stats.files[kind], import_id=uuid.uuid4())
                import_rows(settings, kind, header, rows, summary=summary, publisher=active, conn=conn)
                # The next kind is checked against this one's rows (the roster against the schools, ...).
                active.drain()
                stats.accepted[kind] = summary.accepted
                stats.rejected[kind] = len(summary.rejected)
    finally:
        if own:
            active.close()
    return stats


def import_fitness(settings: Settings, province: Path, *, school_years: tuple[int, ...] | None = None,
                   publisher: ArchivePublisher | None = None) -> int:
    """Generate the province's fitness upload sheets and import them (the PE teachers' path); return tests."""
    from services.devtools.fitness_synthetic_files import write_fitness_sheets
    from services.intake.fitness_exchange import import_upload_sheet

    files = write_fitness_sheets(province, Path(tempfile.mkdtemp(prefix="schoolhealth-fitness-")),
                                 school_years=school_years)
    own = publisher is None
    active = publisher or ArchivePublisher(settings)
    accepted = 0
    try:
        for sheet in files.sheets:
            accepted += import_upload_sheet(settings, sheet.path, school_id=sheet.school_id,
                                            measured_on=sheet.measured_on, screener="pe-1", attempt=sheet.attempt,
                                            publisher=active).accepted
    finally:
        if own:
            active.close()
    return accepted


def seed_archive(settings: Settings, *, students: int, seed: int = 20251,
                 school_years: tuple[int, ...] = (2022, 2023, 2024, 2025),
                 out_dir: Path | None = None) -> SeedStats:
    """Generate a synthetic province and write it into the archive of `settings` (no Kafka).

    The CSV files (including `truth.csv`, the generator's true risks) stay in `out_dir`, or in a
    temporary directory that is kept for the caller to read `SeedStats.truth_csv`.
    """
    directory = out_dir or Path(tempfile.mkdtemp(prefix="schoolhealth-seed-"))
    directory.mkdir(parents=True, exist_ok=True)
    write_province(ProvinceSpec(students=students, seed=seed, school_years=school_years), directory)
    return import_directory(settings, directory)
