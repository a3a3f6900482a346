"""The national upload sheet through the platform: import a school's sheet into Kafka, export results.

Import reads the sheet (CSV in UTF-8 or GB18030, or XLSX) with the importer's reader, turns each
row into a `fitness-test` event (`models.fitness_upload`), and publishes batch envelopes on the
fitness topic keyed by school; rejected rows go to a per-row report and `ops.import_rejections`,
never silently dropped. Export writes a school's results for one school year, the year's result
per student by the retest rule (`archive.fitness_year`), in the same columns.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from models.fitness_upload import (
    UPLOAD_COLUMNS,
    UploadHeaderRejected,
    UploadRowRejected,
    check_upload_header,
    export_row,
    row_to_fitness_event,
)
from services.access.users import OPERATOR_IDENTITIES
from services.intake.importer import (
    ImportSummary,
    Publisher,
    Rejected,
    _Batcher,
    read_rows,
    record_rejections,
    write_report,
)
from services.platform.kafka import KafkaPublisher
from services.platform.settings import Settings

__all__ = ["UploadHeaderRejected", "export_school_year", "import_upload_sheet"]

IMPORTER_ID = OPERATOR_IDENTITIES[1]
KIND = "fitness"


def import_upload_sheet(
    settings: Settings, path: Path, *, school_id: str, measured_on: date, screener: str,
    attempt: str = "first", dry_run: bool = False, report_path: Path | None = None,
    publisher: Publisher | None = None, now: datetime | None = None,
) -> ImportSummary:
    """Import one upload sheet of `school_id`; raises `UploadHeaderRejected` for a wrong header."""
    started = time.monotonic()
    summary = ImportSummary(kind=KIND, path=path, import_id=uuid.uuid4())
    header, rows = read_rows(path)
    columns = check_upload_header(header)
    secret = settings.student_key_secret.get_secret_value().encode()
    now = now or datetime.now(UTC)
    own_publisher = publisher is None and not dry_run
    active: Publisher | None = None if dry_run else (KafkaPublisher(settings) if own_publisher else publisher)
    batcher = _Batcher(active, summary)
    try:
        for number, row in enumerate(rows, start=1):
            cells = {column: row.get(name, "") for column, name in zip(columns, header, strict=True)}
            try:
                batcher.add(row_to_fitness_event(cells, secret=secret, school_id=school_id, measured_on=measured_on,
                                                 screener=screener, submitted_by=IMPORTER_ID, now=now,
                                                 attempt=attempt))
                summary.accepted += 1
            except UploadRowRejected as error:
                summary.rejected.append(Rejected(row_number=number, field=error.column, reason=error.reason,
                                                 school_id=school_id, screener=screener))
        batcher.flush()
    finally:
        if own_publisher and isinstance(active, KafkaPublisher):
            active.close()
    if summary.rejected:
        if not dry_run:
            with psycopg.connect(settings.pg_dsn("app")) as conn:
                record_rejections(conn, summary)
        write_report(summary, report_path or path.with_name(f"{path.stem}.rejected.csv"))
    summary.seconds = time.monotonic() - started
    return summary


_EXPORT_QUERY = """
SELECT r.national_number, r.name, r.birth_date, r.class_name, y.*
FROM archive.fitness_year y
JOIN roster.students r USING (student_key)
WHERE y.school_id = %(school)s AND y.school_year = %(year)s
ORDER BY y.grade, r.class_name NULLS LAST, r.national_number
"""


def export_school_year(settings: Settings, *, school_id: str, year: int, path: Path) -> int:
    """Write the school's results of school `year` as an upload sheet (.csv or .xlsx); returns rows."""
    with psycopg.connect(settings.pg_dsn("app"), row_factory=dict_row) as conn:
        records: list[dict[str, Any]] = conn.execute(_EXPORT_QUERY, {"school": school_id, "year": year}).fetchall()
    rows = [export_row(record, record) for record in records]
    write_upload_sheet(path, rows)
    return len(rows)


def write_upload_sheet(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows in the national upload sheet's columns, as .xlsx or .csv. Names and class names come from
    the roster: no cell is written so that a spreadsheet would run it as a formula."""
    from services.platform.safe_csv import SafeDictWriter, xlsx_safe_row

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook()
        sheet = workbook.active
        assert sheet is not None
        sheet.append(list(UPLOAD_COLUMNS))
        for row in rows:
            sheet.append(xlsx_safe_row(row[column] for column in UPLOAD_COLUMNS))
        workbook.save(path)
    else:
        # UTF-8 with a byte-order mark: Excel and WPS on Chinese Windows open it correctly.
        with path.open("w", newline="", encoding="utf-8-sig") as handle:
            writer = SafeDictWriter(handle, fieldnames=list(UPLOAD_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
