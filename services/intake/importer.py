"""Bulk import for school doctors: CSV or XLSX in, validated events to Kafka, a per-row report out.

Rows are validated by `models.importing` (the same contracts as the Kafka path). Valid screening
and health-record rows are published with kafka-python (acks=all, idempotent producer) as batch
envelopes of up to `BATCH_EVENTS` events of one school, keyed by school so a student's events stay
in order. Schools go to `archive.schools`; roster rows put names only into the protected
`roster.students` table and publish a pseudonymous "register" event. Event ids derive from row
content, so importing the same file twice stores nothing twice.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg

from models.codecs import encode_batch
from models.contracts import IDENTIFIER_MAX_LENGTH, IDENTIFIER_PATTERN, Event
from models.importing import (
    COLUMNS,
    HeaderRejected,
    RosterEntry,
    RowRejected,
    School,
    canonical_column,
    check_header,
    parse_roster_row,
    parse_school_row,
    roster_to_event,
    row_to_event,
)
from models.topics import TOPIC_FOR_FAMILY
from services.access.users import OPERATOR_IDENTITIES
from services.intake.bounded_files import BULK_LIMITS, FileLimits, FileRefused, SafeCsvWriter, read_bounded
from services.platform.kafka import KafkaPublisher
from services.platform.settings import Settings

BATCH_EVENTS = 500
KINDS = ("schools", "roster", "records", "vision", "bmi", "survey")
IMPORTER_ID = OPERATOR_IDENTITIES[0]
REDACTED = "(redacted)"
_CODE = re.compile(IDENTIFIER_PATTERN)
_DIGIT_RUN = re.compile(r"\d{7}", re.ASCII)


class Publisher(Protocol):
    def publish(self, topic: str, key: bytes, value: bytes) -> None: ...
    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    row_number: int  # 1-based data row number (the header is row 0)
    field: str | None
    reason: str
    school_id: str | None
    screener: str | None


@dataclass(slots=True, kw_only=True)
class ImportSummary:
    kind: str
    path: Path
    import_id: uuid.UUID
    accepted: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    published_messages: int = 0
    report_path: Path | None = None
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.accepted + len(self.rejected)


class UnreadableFile(ValueError):
    """A file that is not a CSV or XLSX file this importer can read; ``problem`` says why in one sentence.

    ``code`` names the problem for translation: ``not_xlsx``, ``not_text``, ``not_csv``.
    """

    def __init__(self, code: str, problem: str) -> None:
        super().__init__(problem)
        self.code = code
        self.problem = problem


_XLSX_HINT = "save it again from Excel or WPS as .xlsx, or as CSV (UTF-8)"


def _csv_encoding(path: Path) -> str:
    """UTF-8 (a BOM tolerated), else GB18030: what Excel and WPS write for CSV on Chinese Windows."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    with path.open("rb") as handle:
        try:
            while block := handle.read(1 << 20):
                decoder.decode(block, final=False)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8-sig"


def _unreadable(path: Path, refused: FileRefused) -> UnreadableFile | FileRefused:
    """The bounded reader's "cannot read this at all" refusals as `UnreadableFile`; limits stay `FileRefused`."""
    if refused.code == "not_a_workbook":
        return UnreadableFile("not_xlsx", f"{path.name} is not an Excel workbook (.xlsx) that can be read; "
                                          f"{_XLSX_HINT}")
    if refused.code in ("not_csv", "not_utf8"):
        return UnreadableFile("not_csv", f"{path.name} cannot be read as CSV ({refused.en}); {_XLSX_HINT}")
    return refused


def read_rows(path: Path, limits: FileLimits = BULK_LIMITS) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The header and the data rows of a CSV (UTF-8 or GB18030) or XLSX (first sheet) file.

    Column headings in Chinese (学籍号, 身高(cm), …) become the English column names. Raises
    ``UnreadableFile`` for a file that is neither, and ``FileRefused`` for one beyond `limits`
    (rows, cells, what an XLSX file expands to), before or while the rows are read.
    """
    encoding = "utf-8-sig"
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        encoding = _csv_encoding(path)
        with path.open(newline="", encoding=encoding) as handle:
            try:
                sample = handle.read(4096)
            except UnicodeDecodeError:
                raise UnreadableFile("not_text", f"{path.name} is not a text (CSV) file; {_XLSX_HINT}") from None
        if "\x00" in sample:
            raise UnreadableFile("not_text", f"{path.name} is not a text (CSV) file; {_XLSX_HINT}")
    try:
        header, rows = read_bounded(path, limits, encoding=encoding, rename=canonical_column)
    except FileRefused as refused:
        raise _unreadable(path, refused) from None

    def checked_rows() -> Iterator[dict[str, str]]:
        try:
            yield from rows
        except FileRefused as refused:
            raise _unreadable(path, refused) from None

    return header, checked_rows()


def shown_code(value: str | None) -> str | None:
    """A school or screener cell as it may be stored with a rejection: a plain code, else redacted.

    A rejected row's cells can hold anything (a name, an ID number, a formula), and rejection rows
    are summarised for the data-quality dashboard: only a well-formed code is kept.
    """
    if not value:
        return None
    if len(value) <= IDENTIFIER_MAX_LENGTH and _CODE.fullmatch(value) and not _DIGIT_RUN.search(value):
        return value
    return REDACTED


def _origin(row: dict[str, str]) -> tuple[str | None, str | None]:
    return (shown_code(row.get("school_id")), shown_code(row.get("screener")))


class _Batcher:
    """Groups events into batch envelopes per (topic, school), flushing at BATCH_EVENTS.

    The one way events are published in bulk (the importer, the fitness sheets, the upload pages);
    `messages` counts the envelopes sent (also added to `summary` when one is given).
    """

    def __init__(self, publisher: Publisher | None, summary: ImportSummary | None) -> None:
        self._publisher = publisher
        self._summary = summary
        self._pending: dict[tuple[str, str], list[Event]] = {}
        self.messages = 0

    def add(self, event: Event) -> None:
        key = (TOPIC_FOR_FAMILY[str(event.schema_.family)], event.school_id)
        pending = self._pending.setdefault(key, [])
        pending.append(event)
        if len(pending) >= BATCH_EVENTS:
            self._send(key)

    def _send(self, key: tuple[str, str]) -> None:
        events = self._pending.pop(key, [])
        if events and self._publisher is not None:
            self._publisher.publish(key[0], key[1].encode(), encode_batch(events))
            self.messages += 1
            if self._summary is not None:
                self._summary.published_messages += 1

    def flush(self) -> None:
        for key in list(self._pending):
            self._send(key)
        if self._publisher is not None:
            self._publisher.flush()


def publish_events(settings: Settings, events: Iterable[Event]) -> int:
    """Publish `events` in batch envelopes of one school each (at most BATCH_EVENTS events), keyed
    by school, on their families' topics; wait for the broker; return the number of envelopes."""
    publisher = KafkaPublisher(settings)
    batcher = _Batcher(publisher, None)
    try:
        for event in events:
            batcher.add(event)
        batcher.flush()
    finally:
        publisher.close()
    return batcher.messages


def _write_schools(conn: psycopg.Connection[Any], schools: list[School]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO archive.schools (school_id, name, county_id, county_name, urban_rural, stage,"
            " boarding, enrollment, school_doctors) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (school_id) DO UPDATE SET name = EXCLUDED.name, county_id = EXCLUDED.county_id,"
            " county_name = EXCLUDED.county_name, urban_rural = EXCLUDED.urban_rural, stage = EXCLUDED.stage,"
            " boarding = EXCLUDED.boarding, enrollment = EXCLUDED.enrollment,"
            " school_doctors = EXCLUDED.school_doctors, updated_at = now()",
            [(s.school_id, s.name, s.county_id, s.county_name, s.urban_rural, s.stage, s.boarding,
              s.enrollment or 0, s.school_doctors or 0) for s in schools],
        )


def _write_roster(conn: psycopg.Connection[Any], entries: list[RosterEntry]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO roster.students (student_key, school_id, national_number, name, sex, birth_date, grade,"
            " enrolled_on, class_name, guardian_name)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (student_key) DO UPDATE SET"
            " school_id = EXCLUDED.school_id, name = EXCLUDED.name, sex = EXCLUDED.sex,"
            " birth_date = EXCLUDED.birth_date, grade = EXCLUDED.grade, enrolled_on = EXCLUDED.enrolled_on,"
            " class_name = coalesce(EXCLUDED.class_name, roster.students.class_name),"
            " guardian_name = coalesce(EXCLUDED.guardian_name, roster.students.guardian_name), updated_at = now()",
            [(e.student_key, e.school_id, e.student_number, e.name, e.sex, e.birth_date, e.grade, e.enrolled_on,
              e.class_name, e.guardian_name) for e in entries],
        )


def _write_reference(conn: psycopg.Connection[Any], schools: list[School], roster: list[RosterEntry]) -> None:
    if schools:
        _write_schools(conn, schools)
    if roster:
        _write_roster(conn, roster)
    conn.commit()
    schools.clear()
    roster.clear()


def county_of_schools(conn: psycopg.Connection[Any]) -> dict[str, str]:
    return dict(conn.execute("SELECT school_id, county_id FROM archive.schools").fetchall())


def import_rows(
    settings: Settings,
    kind: str,
    header: list[str],
    rows: Iterable[dict[str, str]],
    *,
    summary: ImportSummary,
    publisher: Publisher | None,
    conn: psycopg.Connection[Any] | None,
    on_row: Callable[[], None] | None = None,
    now: datetime | None = None,
) -> ImportSummary:
    """Validate and route rows of one kind. `publisher`/`conn` None: validate only (dry run)."""
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}: expected one of {', '.join(KINDS)}")
    check_header(kind, header)
    secret = settings.student_key_secret.get_secret_value().encode()
    now = now or datetime.now(UTC)
    batcher = _Batcher(publisher, summary)
    schools: list[School] = []
    roster: list[RosterEntry] = []
    counties = county_of_schools(conn) if conn is not None and kind == "roster" else {}
    for number, row in enumerate(rows, start=1):
        if on_row is not None:
            on_row()
        try:
            if kind == "schools":
                schools.append(parse_school_row(row))
            elif kind == "roster":
                entry = parse_roster_row(row, secret=secret)
                county = counties.get(entry.school_id)
                if conn is not None and county is None:
                    raise RowRejected("school_id", "unknown school: import schools.csv first")
                roster.append(entry)
                batcher.add(roster_to_event(entry, county_id=county or "unknown",
                                            submitted_by=IMPORTER_ID, now=now))
            else:
                batcher.add(row_to_event(kind, row, secret=secret, submitted_by=IMPORTER_ID,  # type: ignore[arg-type]
                                         now=now))
            summary.accepted += 1
        except RowRejected as error:
            school, screener = _origin(row)
            summary.rejected.append(Rejected(row_number=number, field=error.field, reason=error.reason,
                                             school_id=school, screener=screener))
        if conn is not None and len(schools) + len(roster) >= 1000:
            _write_reference(conn, schools, roster)
    if conn is not None:
        _write_reference(conn, schools, roster)
    # Roster rows commit before their register events are published: a worker never sees a key
    # that the school's own staff cannot resolve.
    batcher.flush()
    return summary


def record_rejections(conn: psycopg.Connection[Any], summary: ImportSummary) -> None:
    """Keep the rejected rows' reasons (no row content) for the data-quality dashboard."""
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO ops.import_rejections (import_id, kind, row_number, school_id, screener, field, reason)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(summary.import_id, summary.kind, r.row_number, r.school_id, r.screener, r.field, r.reason)
             for r in summary.rejected],
        )
    conn.commit()


def write_report(summary: ImportSummary, path: Path) -> Path:
    """The per-row error report: row number, column, reason (no names or numbers)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(["row", "column", "reason", "school_id"])
        for r in summary.rejected:
            writer.writerow([r.row_number, r.field or "", r.reason, r.school_id or ""])
    summary.report_path = path
    return path


def import_file(
    settings: Settings,
    kind: str,
    path: Path,
    *,
    dry_run: bool = False,
    report_path: Path | None = None,
    publisher: Publisher | None = None,
    on_row: Callable[[], None] | None = None,
) -> ImportSummary:
    """Import one file; raises HeaderRejected for a wrong header, never for a bad row."""
    import time

    started = time.monotonic()
    summary = ImportSummary(kind=kind, path=path, import_id=uuid.uuid4())
    if not dry_run:
        # Read the file through once before anything is published: a file refused on its limits
        # half-way would otherwise leave its first rows published and the rest neither published
        # nor reported.
        for _ in read_rows(path)[1]:
            pass
    header, rows = read_rows(path)
    if dry_run:
        import_rows(settings, kind, header, rows, summary=summary, publisher=None, conn=None, on_row=on_row)
    else:
        own_publisher = publisher is None and kind != "schools"
        active = KafkaPublisher(settings) if own_publisher else publisher
        try:
            with psycopg.connect(settings.pg_dsn("app")) as conn:
                import_rows(settings, kind, header, rows, summary=summary, publisher=active, conn=conn,
                            on_row=on_row)
                if summary.rejected:
                    record_rejections(conn, summary)
        finally:
            if own_publisher and isinstance(active, KafkaPublisher):
                active.close()
    if summary.rejected:
        write_report(summary, report_path or path.with_name(f"{path.stem}.rejected.csv"))
    summary.seconds = time.monotonic() - started
    return summary


__all__ = ["COLUMNS", "KINDS", "FileRefused", "HeaderRejected", "ImportSummary", "UnreadableFile",
           "import_file",
           "read_rows"]
