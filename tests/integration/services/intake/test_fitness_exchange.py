"""A school's national upload sheet imported through Kafka and a worker, then exported back."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from openpyxl import Workbook

from models.fitness_upload import UPLOAD_COLUMNS, row_to_fitness_event
from models.identity import student_key
from services.intake.fitness_exchange import export_school_year, import_upload_sheet
from services.platform.settings import Settings
from tests.integration.conftest import WorkerProcess, count, wait_for

pytestmark = pytest.mark.integration

ROWS = [
    # grade code, class, student number, sex, birth date, height, weight, items...
    {"年级编号": "22", "班级编号": "3", "班级名称": "3", "学籍号": "G000000000000000101", "姓名": "学生甲", "性别": "1",
     "出生日期": "2012-03-01", "身高": "160", "体重": "50", "肺活量": "3000", "50米跑": "8", "坐位体前屈": "10",
     "立定跳远": "210", "引体向上": "12", "1000米跑": "3'46"},
    {"年级编号": "22", "班级编号": "3", "班级名称": "3", "学籍号": "G000000000000000102", "姓名": "学生乙", "性别": "2",
     "出生日期": "2012-05-01", "身高": "155.5", "体重": "46", "肺活量": "2500", "50米跑": "9.4",
     "坐位体前屈": "16.2", "立定跳远": "165", "一分钟仰卧起坐": "40", "800米跑": "免测"},
    {"年级编号": "13", "班级编号": "1", "班级名称": "1", "学籍号": "G000000000000000103", "姓名": "学生丙", "性别": "2",
     "出生日期": "2016-09-01", "身高": "130", "体重": "26", "肺活量": "1300", "50米跑": "10.8",
     "坐位体前屈": "15", "一分钟跳绳": "115", "一分钟仰卧起坐": "30"},
    # A girl with the boys' 1000 m: rejected with its reason, never silently dropped.
    {"年级编号": "22", "班级编号": "3", "班级名称": "3", "学籍号": "G000000000000000104", "姓名": "学生丁", "性别": "2",
     "出生日期": "2012-01-01", "身高": "150", "体重": "45", "1000米跑": "4'00"},
]


def _sheet(path: Path, rows: list[dict[str, str]]) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(UPLOAD_COLUMNS))
    for row in rows:
        sheet.append([row.get(column, "") for column in UPLOAD_COLUMNS])
    workbook.save(path)


def test_upload_sheet_in_scored_then_out_in_the_same_columns(
        isolated: Settings, start_worker: Callable[[], WorkerProcess], tmp_path: Path) -> None:
    settings = isolated
    secret = settings.student_key_secret.get_secret_value().encode()
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        conn.execute("INSERT INTO archive.schools VALUES ('S900', '测试学校', 'C9', '测试县', 'urban', 'nine_year',"
                     " false, 400, 1)")
        for row in ROWS:
            conn.execute("INSERT INTO roster.students (student_key, school_id, national_number, name, sex, birth_date,"
                         " grade, class_name) VALUES (%s, 'S900', %s, %s, %s, %s, %s, %s)",
                         (student_key(secret, row["学籍号"]), row["学籍号"], row["姓名"],
                          "male" if row["性别"] == "1" else "female", row["出生日期"],
                          {"22": 8, "13": 3}[row["年级编号"]], row["班级名称"]))
    sheet = tmp_path / "upload.xlsx"
    _sheet(sheet, ROWS)
    worker = start_worker()
    summary = import_upload_sheet(settings, sheet, school_id="S900", measured_on=date(2025, 10, 9),
                                  screener="pe-1", now=datetime(2025, 10, 10, tzinfo=UTC))
    assert summary.accepted == 3 and [(r.row_number, r.field) for r in summary.rejected] == [(4, "1000米跑")]
    assert "run_1000m is not tested in grade 8 (female)" in summary.rejected[0].reason
    assert summary.report_path is not None and summary.report_path.exists()
    # The same sheet again: the same event ids, stored once.
    import_upload_sheet(settings, sheet, school_id="S900", measured_on=date(2025, 10, 9), screener="pe-1",
                        now=datetime(2025, 10, 11, tzinfo=UTC))
    wait_for(lambda: count(settings, "SELECT count(*) FROM archive.fitness_results") == 3, timeout=90,
             what="3 fitness results", workers=[worker])
    assert count(settings, "SELECT count(*) FROM ops.import_rejections WHERE kind = 'fitness'") == 2
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        bands: dict[str, str] = dict(conn.execute(
            "SELECT grade || sex, coalesce(band, status) FROM archive.fitness_results").fetchall())
        names = conn.execute(
            "SELECT count(*) FROM archive.fitness_results WHERE item_scores::text LIKE '%学生%'").fetchone()
    assert bands == {"8male": "good", "8female": "incomplete", "3female": "good"} and names == (0,)

    out = tmp_path / "export.csv"
    assert export_school_year(settings, school_id="S900", year=2025, path=out) == 3
    with out.open(encoding="utf-8-sig", newline="") as handle:
        exported = {row["学籍号"]: row for row in csv.DictReader(handle)}
    assert list(next(iter(exported.values()))) == list(UPLOAD_COLUMNS)
    for row in ROWS[:3]:
        back = exported[row["学籍号"]]
        for column, value in row.items():
            assert back[column] == value, (column, back[column], value)
    # Export → import is the identity on events: the exported sheet yields the stored event ids.
    again = import_upload_sheet(settings, out, school_id="S900", measured_on=date(2025, 10, 9), screener="pe-1",
                                dry_run=True, now=datetime(2025, 10, 12, tzinfo=UTC))
    assert again.accepted == 3 and not again.rejected
    with out.open(encoding="utf-8-sig", newline="") as handle:
        ids = {row_to_fitness_event(row, secret=secret, school_id="S900", measured_on=date(2025, 10, 9),
                                    screener="pe-1", submitted_by="x", now=datetime(2025, 10, 12, tzinfo=UTC)).event_id
               for row in csv.DictReader(handle)}
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM archive.fitness_results")}
    assert ids == stored
    assert worker.alive()
