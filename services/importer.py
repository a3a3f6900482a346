"""Bulk import for school doctors: CSV or XLSX in, validated events to Kafka, a per-row report out.

Rows are validated by `models.importing` (the same contracts as the Kafka path). Valid screening
and health-record rows are published with kafka-python (acks=all, idempotent producer) as batch
envelopes of up to `BATCH_EVENTS` events of one school, keyed by school so a student's events stay
in order. Schools go to `archive.schools`; roster rows put names only into the protected
`roster.students` table and publish a pseudonymous "register" event. Event ids derive from row
content, so importing the same file twice stores nothing twice.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg

from models.contracts import Event, encode_batch
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
from services.settings import Settings

BATCH_EVENTS = 500
KINDS = ("schools", "roster", "records", "vision", "bmi", "survey")
IMPORTER_ID = "importer"


class Publisher(Protocol):
    def publish(self, topic: str, key: bytes, value: bytes) -> None: ...
    def flush(self) -> None: ...


class KafkaPublisher:
    """kafka-python producer: synchronous, idempotent, acks=all. Errors surface on flush."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaProducer

        self._settings = settings
        self._producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20,
            max_request_size=10 * 1024 * 1024, batch_size=1024 * 1024,
        )
        self._futures: list[Any] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self._futures.append(self._producer.send(self._settings.topic(topic), key=key, value=value))
        if len(self._futures) >= 200:
            self.flush()

    def flush(self) -> None:
        self._producer.flush()
        for future in self._futures:
            future.get(timeout=60)  # raises if the broker refused the message
        self._futures.clear()

    def close(self) -> None:
        self.flush()
        self._producer.close()


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


def read_rows(path: Path) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The header and the data rows of a CSV (UTF-8 or GB18030) or XLSX (first sheet) file.

    Column headings in Chinese (学籍号, 身高(cm), …) become the English column names. Raises
    ``UnreadableFile`` for a file that is neither.
    """
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    encoding = _csv_encoding(path)
    # The header is read on its own, so a file refused for its header leaves no handle open; the
    # rows are read by the generator, which closes its file however it ends.
    with path.open(newline="", encoding=encoding) as handle:
        try:
            sample = handle.read(4096)
        except UnicodeDecodeError:
            raise UnreadableFile("not_text", f"{path.name} is not a text (CSV) file; {_XLSX_HINT}") from None
        if "\x00" in sample:
            raise UnreadableFile("not_text", f"{path.name} is not a text (CSV) file; {_XLSX_HINT}")
        handle.seek(0)
        try:
            header = [canonical_column(name) for name in csv.DictReader(handle).fieldnames or []]
        except csv.Error as error:
            raise UnreadableFile("not_csv", f"{path.name} cannot be read as CSV ({error}); {_XLSX_HINT}") from None

    def csv_rows() -> Iterator[dict[str, str]]:
        with path.open(newline="", encoding=encoding) as rows:
            reader = csv.DictReader(rows)
            try:
                _ = reader.fieldnames  # reads the header record, then its canonical names replace it
                reader.fieldnames = header
                yield from reader
            except csv.Error as error:
                raise UnreadableFile("not_csv", f"{path.name}, line {reader.line_num}, cannot be read as CSV "
                                                f"({error}); {_XLSX_HINT}") from None

    return header, csv_rows()


def _read_xlsx(path: Path) -> tuple[list[str], Iterator[dict[str, str]]]:
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            first = next(workbook.worksheets[0].iter_rows(values_only=True), ())
        finally:
            workbook.close()  # a file refused for its header leaves nothing open
        header = [canonical_column(str(cell).strip()) if cell is not None else "" for cell in first]
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, IndexError, ValueError):
        raise UnreadableFile("not_xlsx", f"{path.name} is not an Excel workbook (.xlsx) that can be read; "
                                         f"{_XLSX_HINT}") from None

    def xlsx_rows() -> Iterator[dict[str, str]]:
        workbook = load_workbook(path, read_only=True, data_only=True)
        values = workbook.worksheets[0].iter_rows(values_only=True)
        next(values, None)  # the header, read above
        try:
            for cells in values:
                if cells is None or all(cell is None for cell in cells):
                    continue
                yield {name: _cell_text(cell) for name, cell in zip(header, cells, strict=False)}
        finally:
            workbook.close()

    return header, xlsx_rows()


def _cell_text(cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, datetime):
        return cell.date().isoformat() if cell.time() == datetime.min.time() else cell.isoformat()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def _origin(row: dict[str, str]) -> tuple[str | None, str | None]:
    return (row.get("school_id") or None, row.get("screener") or None)


class _Batcher:
    """Groups events into batch envelopes per (topic, school), flushing at BATCH_EVENTS."""

    def __init__(self, publisher: Publisher | None, summary: ImportSummary) -> None:
        self._publisher = publisher
        self._summary = summary
        self._pending: dict[tuple[str, str], list[Event]] = {}

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
            self._summary.published_messages += 1

    def flush(self) -> None:
        for key in list(self._pending):
            self._send(key)
        if self._publisher is not None:
            self._publisher.flush()


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
        writer = csv.writer(handle)
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


__all__ = ["COLUMNS", "KINDS", "HeaderRejected", "ImportSummary", "KafkaPublisher", "UnreadableFile", "import_file",
           "read_rows"]
