"""`schoolhealth fitness import|export` run for real: exit codes, the report, the exported sheet."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg
import pytest

from models.codecs import encode_batch
from models.fitness_upload import UPLOAD_COLUMNS
from models.topics import FITNESS_TESTS
from services.devtools.seed import ArchivePublisher
from services.platform.settings import Settings
from tests import factories
from tests.integration.services.cli.test_cli_commands import schoolhealth

pytestmark = pytest.mark.integration


def _sheet(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = UPLOAD_COLUMNS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_fitness_import_exit_codes_and_report(isolated: Settings, tmp_path: Path) -> None:
    good = {"年级编号": "16", "学籍号": "G000000000000000201", "性别": "1", "身高": "150", "体重": "40",
            "肺活量": "2200", "50米跑": "8.9", "坐位体前屈": "9.5", "一分钟跳绳": "140", "一分钟仰卧起坐": "35",
            "50米×8往返跑": "1'45"}
    bad = good | {"学籍号": "G000000000000000202", "引体向上": "5"}  # pull-ups are not a grade-6 item
    args = ("--school", "S001", "--measured-on", "2025-10-09", "--screener", "pe-1", "--dry-run")
    ok = schoolhealth(isolated, "fitness", "import", str(_sheet(tmp_path / "ok.csv", [good])), *args)
    assert ok.returncode == 0, ok.stderr
    assert "1 rows: 1 validated, 0 rejected" in ok.stderr
    mixed = schoolhealth(isolated, "fitness", "import", str(_sheet(tmp_path / "mixed.csv", [good, bad])), *args)
    assert mixed.returncode == 1
    report = (tmp_path / "mixed.rejected.csv").read_text(encoding="utf-8")
    assert "引体向上" in report and "pull_ups is not tested in grade 6 (male)" in report
    assert "G000000000000000202" not in report  # reasons never repeat the student number
    header = schoolhealth(isolated, "fitness", "import", str(_sheet(tmp_path / "h.csv", [good], ("学籍号", "性别"))),
                          *args)
    assert header.returncode == 2 and "missing 年级编号" in header.stderr


def test_fitness_export_writes_the_upload_columns(isolated: Settings, tmp_path: Path) -> None:
    secret = isolated.student_key_secret.get_secret_value().encode()
    from models.identity import student_key

    number = "G000000000000000301"
    key = student_key(secret, number)
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        conn.execute("INSERT INTO roster.students (student_key, school_id, national_number, name, sex, birth_date,"
                     " grade, class_name) VALUES (%s, 'S001', %s, '学生', 'male', '2012-01-01', 8, '2')", (key, number))
    publisher = ArchivePublisher(isolated)
    publisher.publish(FITNESS_TESTS, b"S001", encode_batch([factories.fitness(1, student_key=key)]))
    publisher.close()
    out = tmp_path / "export.xlsx"
    done = schoolhealth(isolated, "fitness", "export", "--school", "S001", "--year", "2025", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "1 students written" in done.stderr
    from openpyxl import load_workbook

    sheet = load_workbook(out).worksheets[0]
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert tuple(rows[0]) == UPLOAD_COLUMNS
    exported = dict(zip(rows[0], rows[1], strict=True))
    assert (exported["年级编号"], exported["学籍号"], exported["性别"], exported["引体向上"], exported["1000米跑"]) == (
        "22", number, "1", "12", "3'46")
