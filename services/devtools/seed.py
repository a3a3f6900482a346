"""Seeding an archive straight from a synthetic province, without Kafka (tests, training, demos).

The rows take the importer's path (`models.importing` validation, batch envelopes) and then the
worker's path (`models.pipeline` classification, `ArchiveWriter`), so a seeded archive holds
exactly what the streaming pipeline would have stored; only the broker is skipped.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from models.pipeline import ProcessedMessages, process_message
from models.synthetic import ProvinceSpec
from models.topics import INPUT_TOPICS
from services.devtools.synthetic_files import write_province
from services.intake.importer import ImportSummary, import_rows, read_rows
from services.pipeline.archive_writer import ArchiveWriter
from services.platform.settings import Settings

IMPORT_ORDER = ("schools", "roster", "records", "vision", "bmi", "survey")


class ArchivePublisher:
    """A `Publisher` that classifies and writes each batch envelope into the archive directly."""

    def __init__(self, settings: Settings, *, flush_events: int = 5000) -> None:
        self._loop = asyncio.new_event_loop()
        self._writer = ArchiveWriter(settings.pg_dsn("app"))
        self._pending = ProcessedMessages()
        self._flush_events = flush_events
        self.rejected = 0

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        process_message(value, expected_family=INPUT_TOPICS[topic], out=self._pending)
        if self._pending.accepted >= self._flush_events:
            self.flush()

    def flush(self) -> None:
        batch, self._pending = self._pending, ProcessedMessages()
        self.rejected += len(batch.rejected)
        if batch.accepted:
            self._loop.run_until_complete(self._writer.write(batch, ()))

    def close(self) -> None:
        self.flush()
        self._loop.run_until_complete(self._writer.close())
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
