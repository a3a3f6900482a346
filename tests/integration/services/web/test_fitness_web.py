"""Physical-fitness results through the web pages, over HTTP, on the real stack: the class sheet's
fitness form and the national upload sheet's page, each through Kafka and a worker into the archive.

What is tried: a result typed for an item the student's grade and sex is not tested on, an
implausible time, a missing item (stored as missing, never 0), a whole exemption with its reason,
a student of another school, a doctor uploading for a school they do not serve, another doctor
publishing someone else's preview, a counsellor, and files over the web upload limits.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition

from models.fitness import score_test
from models.identity import student_key
from models.topics import FITNESS_TESTS
from services.access.users import add_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from services.web.pages import csrf_token
from tests.e2e.conftest import add_school_and_student
from tests.hostile_files import xlsx_bomb
from tests.integration.conftest import count, wait_for
from tests.integration.web_client import web_session_cookie

pytestmark = pytest.mark.integration

GIRL, GIRL_MISSING, GIRL_WRONG, BOY, BOY_EXEMPT, OTHER = (
    "G520102201203070011", "G520102201203070022", "G520102201203070033", "G520102201203070044",
    "G520102201203070055", "G520102201203070066")


# The web session each API token signed in to (the pages take no API token in their cookie).
_SESSIONS: dict[str, str] = {}


def _client(url: str, token: str, language: str) -> httpx.Client:
    _SESSIONS[token] = web_session_cookie(url, token)
    return httpx.Client(base_url=url, cookies={"shk_session": _SESSIONS[token], "shk_lang": language}, timeout=60)


def _csrf(token: str) -> str:
    """The CSRF token of the page forms for the web session `token` signed in to last."""
    return csrf_token(_SESSIONS[token])


def _today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


def _class(settings: Settings) -> dict[str, str]:
    """Grade-8 class 2 of school SA01 (five pupils) and one pupil of SB01; their keys by number."""
    secret = settings.student_key_secret.get_secret_value().encode()
    keys: dict[str, str] = {}
    for number, name, sex, school in ((GIRL, "李小红", "female", "SA01"), (GIRL_MISSING, "王芳", "female", "SA01"),
                                      (GIRL_WRONG, "赵敏", "female", "SA01"), (BOY, "张伟", "male", "SA01"),
                                      (BOY_EXEMPT, "陈刚", "male", "SA01"), (OTHER, "周杰", "male", "SB01")):
        keys[number] = student_key(secret, number)
        add_school_and_student(settings, school_id=school, name=name, student_key=keys[number], student_number=number,
                               sex=sex, birth_date="2012-03-07", grade=8, class_name="2")
    return keys


GIRL_CELLS = {"height_cm": "158.5", "weight_kg": "47.2", "vital_capacity_ml": "2600", "run_50m_s": "8.9",
              "sit_and_reach_cm": "15.2", "sit_ups_count": "44", "standing_long_jump_cm": "178", "run_800m_s": "3'41"}
BOY_CELLS = {"height_cm": "165", "weight_kg": "52", "vital_capacity_ml": "3400", "run_50m_s": "7.8",
             "sit_and_reach_cm": "9", "standing_long_jump_cm": "215", "pull_ups_count": "9", "run_1000m_s": "3'55"}


def test_class_sheet_fitness_rows_are_scored_and_archived_through_kafka(isolated: Settings, start_worker: Any) -> None:
    settings = isolated
    keys = _class(settings)
    token = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    worker = start_worker()
    day = _today()
    sheet = "/web/doctor/class-sheet?school=SA01&grade=8&class_name=2&sheet=fitness"

    def save(web: httpx.Client, number: str, cells: dict[str, str], attempt: str = "first") -> httpx.Response:
        return web.post("/web/doctor/class-sheet/save", headers={"x-csrf-token": _csrf(token)},
                        json={"student_key": keys[number], "measured_on": day, "cells": cells, "sheet": "fitness",
                              "attempt": attempt})

    with serve_in_thread(create_api(settings)) as url, _client(url, token, "zh-CN") as web:
        page = web.get(sheet)
        assert page.status_code == 200, page.text[:500]
        assert "班级体质测试表" in page.text and "800米跑" in page.text and "1000米跑" in page.text
        # Grade 8: no rope skipping, no shuttle run; boys' items only in the boys' rows and the other way round.
        assert 'name="rope_skipping_count"' not in page.text and 'name="shuttle_run_50m_x8_s"' not in page.text
        assert page.text.count('name="pull_ups_count"') == 2 and page.text.count('name="run_800m_s"') == 3
        assert "grade=8&amp;class_name=2&amp;sheet=fitness\">体质测试</a>" in web.get("/web/doctor/class-sheet").text

        complete = save(web, GIRL, GIRL_CELLS).json()
        assert complete["ok"] and complete["saved"]["fitness"].startswith("总分 "), complete
        missing = save(web, GIRL_MISSING, {**GIRL_CELLS, "run_800m_s": ""}).json()
        assert missing["ok"] and missing["saved"]["fitness"] == "测试不完整，不计总分：缺 800米跑", missing
        exempt = save(web, BOY_EXEMPT, {"height_cm": "160", "weight_kg": "50", "exemption_reason": "残疾",
                                        **dict.fromkeys(("vital_capacity_ml", "run_50m_s", "sit_and_reach_cm",
                                                         "standing_long_jump_cm", "pull_ups_count", "run_1000m_s"),
                                                        "免测")}).json()
        assert exempt["ok"] and exempt["saved"]["fitness"] == "免测", exempt

        wrong = save(web, GIRL_WRONG, {**GIRL_CELLS, "pull_ups_count": "3"})
        assert wrong.json() == {"ok": False, "saved": {}, "findings": [], "errors": [{
            "kind": "fitness", "field": "pull_ups_count",
            "reason": "8年级女生不测引体向上；该年级女生的测试项目为："
                      "肺活量、50米跑、坐位体前屈、一分钟仰卧起坐、立定跳远、800米跑"}]}
        too_fast = save(web, BOY, {**BOY_CELLS, "run_50m_s": "3"}).json()
        assert too_fast["errors"] == [{"kind": "fitness", "field": "run_50m_s", "reason": "3.0 超出范围（5.5 至 30）"}]
        bad_time = save(web, BOY, {**BOY_CELLS, "run_1000m_s": "3'75"}).json()
        assert bad_time["errors"][0]["field"] == "run_1000m_s" and "秒数为 75" in bad_time["errors"][0]["reason"]
        reason_alone = save(web, BOY, {**BOY_CELLS, "exemption_reason": "疾病"}).json()
        assert reason_alone["errors"][0]["reason"] == "填写了免测原因，但没有项目填“免测”"
        # A pupil of a school the doctor does not serve is not on their roster at all.
        assert save(web, OTHER, BOY_CELLS).status_code == 404

    with serve_in_thread(create_api(settings)) as url, _client(url, token, "en") as web:
        english = save(web, GIRL_WRONG, {**GIRL_CELLS, "pull_ups_count": "3"}).json()
        assert english["errors"][0]["reason"] == (
            "pull_ups is not tested in grade 8 (female); that grade's items are vital_capacity, run_50m, "
            "sit_and_reach, sit_ups_1min, standing_long_jump, run_800m")
        failed = save(web, BOY, {**BOY_CELLS, "pull_ups_count": "1"}).json()
        assert failed["ok"] and "item failed: pull-ups" in failed["saved"]["fitness"], failed
        assert failed["findings"] == ["fitness_item_fail"]

    wait_for(lambda: count(settings, "SELECT count(*) FROM archive.fitness_results") == 4, timeout=120,
             what="4 fitness tests from the class sheet", workers=[worker])
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        stored = {row[0]: row[1:] for row in conn.execute(
            "SELECT student_key, status, total, band, run_800m_s, missing_items, exempt, exemption_reason, grade,"
            " attempt, sit_ups_count, submitted_by FROM archive.fitness_results")}
        assert count(settings, "SELECT count(*) FROM ops.dead_letters") == 0
    expected = score_test(sex="female", grade=8, height_cm=158.5, weight_kg=47.2,
                          results={"vital_capacity": 2600, "run_50m": 8.9, "sit_and_reach": 15.2, "sit_ups_1min": 44,
                                   "standing_long_jump": 178, "run_800m": 221})
    assert stored[keys[GIRL]][:4] == ("complete", expected.total, expected.band, Decimal("221.0"))
    assert stored[keys[GIRL]][7:] == (8, "first", 44, "d-a")
    # Missing stays missing: NULL and listed, no total; never a zero.
    assert stored[keys[GIRL_MISSING]][:5] == ("incomplete", None, None, None, ["run_800m"])
    assert stored[keys[BOY_EXEMPT]][0] == "exempt" and stored[keys[BOY_EXEMPT]][5:7] == (True, "disability")
    assert keys[GIRL_WRONG] not in stored and keys[OTHER] not in stored

    with serve_in_thread(create_api(settings)) as url, _client(url, token, "zh-CN") as web:
        again = web.get(sheet).text
    assert 'value="3&#39;41"' in again and again.count('value="免测"') == 6  # what was entered is shown


def _sheet(rows: list[list[str]]) -> bytes:
    header = ("年级编号,班级编号,班级名称,学籍号,民族代码,姓名,性别,出生日期,家庭住址,身高,体重,"
              "肺活量,50米跑,坐位体前屈,一分钟仰卧起坐,立定跳远,引体向上,1000米跑,800米跑")
    body = "\n".join(",".join(row) for row in rows)
    return (header + "\n" + body + "\n").encode("gb18030")


def test_fitness_upload_page_previews_then_publishes_for_the_doctors_own_school(
        isolated: Settings, start_worker: Any, tmp_path: Path) -> None:
    settings = isolated
    _class(settings)
    doctor = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    other_doctor = add_user(settings, "d-b", "school_doctor", schools=["SB01"])
    counsellor = add_user(settings, "c-a", "counsellor", schools=["SA01"])
    worker = start_worker()
    day = _today()
    girl = ["158.5", "47.2", "2600", "8.9", "15.2", "44", "178", "", "", "3'41"]
    boy = ["165", "52", "3400", "7.8", "9", "", "215", "9", "3'55", ""]
    content = _sheet([
        ["22", "2", "2", GIRL, "", "李小红", "2", "2012-03-07", "", *girl],
        ["22", "2", "2", BOY, "", "张伟", "1", "2012-03-07", "", *boy],
        ["22", "2", "2", GIRL_WRONG, "", "赵敏", "2", "2012-03-07", "", *girl[:7], "3", *girl[8:]],
        ["22", "2", "2", OTHER, "", "周杰", "1", "2012-03-07", "", *boy],
        ["41", "2", "2", GIRL_MISSING, "", "王芳", "2", "2012-03-07", "", *girl],
    ])
    topic = settings.topic(FITNESS_TESTS)

    def published_messages() -> int:
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
        try:
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            return sum(consumer.end_offsets(partitions).values())
        finally:
            consumer.close()

    with serve_in_thread(create_api(settings)) as url, _client(url, doctor, "zh-CN") as web:
        form = {"school_id": "SA01", "measured_on": day, "attempt": "first", "csrf": _csrf(doctor)}
        assert "上传国家学生体质健康数据上报表" in web.get("/web/doctor/fitness-upload").text
        template = web.get("/web/doctor/fitness-upload/template.csv")
        assert template.content.decode("utf-8-sig").startswith("年级编号,班级编号,班级名称,学籍号,民族代码,姓名,性别")
        preview = web.post("/web/doctor/fitness-upload", data=form,
                           files={"file": ("体质测试.csv", content, "text/csv")})
        assert preview.status_code == 200, preview.text[:800]
        page = preview.text
        assert 'id="accepted-count">2<' in page and 'id="rejected-count">3<' in page
        assert "李小红" in page and "张伟" in page and "赵敏" not in page and "周杰" not in page
        assert "8年级女生不测引体向上" in page  # the grade/sex check, in Chinese, naming the column
        assert "41 是大学年级" in page and "该学生不在您负责的学校在籍" in page
        assert published_messages() == 0  # a preview publishes nothing
        upload_id = page.split('action="/web/doctor/fitness-upload/')[1].split("/publish")[0]

        # Not a school this doctor serves: refused before the file is read.
        refused = web.post("/web/doctor/fitness-upload", data=form | {"school_id": "SB01"},
                           files={"file": ("x.csv", content, "text/csv")})
        assert refused.status_code == 403 and "不是您负责的学校" in refused.text
        # Over the web upload limits: the whole file is refused with one sentence.
        many = _sheet([["22", "", "", f"G5201{n:014d}", "", "", "1", "", "", "165", "52"] for n in range(20_001)])
        too_many = web.post("/web/doctor/fitness-upload", data=form, files={"file": ("big.csv", many, "text/csv")})
        assert too_many.status_code == 413 and "文件超过 20,000 行数据，整个文件未导入" in too_many.text
        bomb = xlsx_bomb(tmp_path / "bomb.xlsx", ["年级编号", "学籍号", "性别"], filler_strings=500_000)
        exploded = web.post("/web/doctor/fitness-upload", data=form,
                            files={"file": ("bomb.xlsx", bomb.read_bytes(), "application/octet-stream")})
        assert exploded.status_code == 413 and "Traceback" not in exploded.text

        with _client(url, counsellor, "zh-CN") as other:
            assert other.get("/web/doctor/fitness-upload").status_code == 403
        with _client(url, other_doctor, "zh-CN") as other:  # another doctor cannot publish this preview
            stolen = other.post(f"/web/doctor/fitness-upload/{upload_id}/publish",
                                data={"csrf": _csrf(other_doctor)})
            assert stolen.status_code == 410 and published_messages() == 0
        done = web.post(f"/web/doctor/fitness-upload/{upload_id}/publish", data={"csrf": _csrf(doctor)})
        assert done.status_code == 200 and 'data-accepted="2" data-rejected="3"' in done.text, done.text[:500]
        assert web.post(f"/web/doctor/fitness-upload/{upload_id}/publish",
                        data={"csrf": _csrf(doctor)}).status_code == 410  # published once

    wait_for(lambda: count(settings, "SELECT count(*) FROM archive.fitness_results") == 2, timeout=120,
             what="2 fitness tests from the upload page", workers=[worker])
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        stored = conn.execute("SELECT school_id, grade, sex, status, measured_on::text, submitted_by"
                              " FROM archive.fitness_results ORDER BY sex").fetchall()
        rejections = conn.execute("SELECT kind, field FROM ops.import_rejections ORDER BY row_number").fetchall()
        names = conn.execute("SELECT count(*) FROM archive.fitness_results f WHERE row_to_json(f)::text"
                             " LIKE ANY (ARRAY['%%李小红%%', '%%张伟%%', %s])", (f"%{GIRL}%",)).fetchone()
    assert stored == [("SA01", 8, "female", "complete", day, "d-a"), ("SA01", 8, "male", "complete", day, "d-a")]
    assert rejections == [("fitness", "引体向上"), ("fitness", "student_number"), ("fitness", "年级编号")]
    assert names == (0,)  # no name or student number in the archive
