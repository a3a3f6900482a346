"""The upload page as a school's file meets it: Chinese headings, units, unreadable files, templates.

Real service and PostgreSQL (row-level security decides the names shown); the preview publishes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from models.identity import student_key
from services.access.users import add_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from services.web.pages import csrf_token
from tests.e2e.conftest import add_school_and_student
from tests.integration.web_client import web_session_cookie

pytestmark = pytest.mark.integration

NUMBER = "G110101201503070011"


def _client(url: str, token: str, language: str) -> httpx.Client:
    return httpx.Client(base_url=url, cookies={"shk_session": token, "shk_lang": language}, timeout=60)


def test_upload_in_chinese_with_units_names_and_an_unreadable_file(isolated: Settings) -> None:
    secret = isolated.student_key_secret.get_secret_value().encode()
    add_school_and_student(isolated, school_id="SA01", name="张小花", student_key=student_key(secret, NUMBER),
                           student_number=NUMBER, sex="female", birth_date="2015-03-07")
    token = add_user(isolated, "d-a", "school_doctor", schools=["SA01"])
    today = datetime.now(UTC).date().isoformat()
    csv_text = ("学校代码,学籍号,性别,出生日期,检查日期,身高(cm),体重(kg),检查人员\n"
                f"SA01,{NUMBER},女,2015-03-07,{today},141.5,35.2,d-a\n"
                f"SA01,G110101201504080022,女,2015-04-08,{today},1750,35.2,d-a\n")
    with serve_in_thread(create_api(isolated)) as url:
        session = web_session_cookie(url, token)  # signed in: the pages take no API token in the cookie
        web = _client(url, session, "zh-CN")
        form = {"kind": "bmi", "csrf": csrf_token(session)}
        preview = web.post("/web/doctor/import", data=form,
                           files={"file": ("体检.csv", csv_text.encode("gb18030"), "text/csv")})
        assert preview.status_code == 200, preview.text[:500]
        page = preview.text
        assert 'id="accepted-count">1<' in page and "张小花" in page and NUMBER in page
        assert "像是以毫米为单位" in page and "G110101201504080022" in page
        assert "looks like" not in page

        for name, content in (("screening.xlsx", b"school_id,student_number\nSA01,1\n"), ("empty.xlsx", b"")):
            refused = web.post("/web/doctor/import", data=form,
                               files={"file": (name, content, "application/octet-stream")})
            assert refused.status_code == 422
            assert f"{name} 不是可读取的 Excel 工作簿" in refused.text
            assert "BadZipFile" not in refused.text and "Traceback" not in refused.text

        wrong = web.post("/web/doctor/import", data=form,
                         files={"file": ("x.csv", "学校代码,姓名\nSA01,x\n".encode(), "text/csv")})
        assert wrong.status_code == 422 and "缺少的列" in wrong.text and "学籍号 (student_number)" in wrong.text

        template = web.get("/web/doctor/import/template/bmi.csv")
        assert template.content.startswith("\ufeff学校代码,学籍号,性别,出生日期".encode())
        assert "学籍号" in web.get("/web/doctor/import").text  # the expected columns on the page

        web.close()
    with _client(url, session, "en") as web, serve_in_thread(create_api(isolated)) as url2:
        web.base_url = httpx.URL(url2)
        template = web.get("/web/doctor/import/template/vision.csv")
        assert template.content.decode("utf-8-sig").startswith("school_id,student_number,sex,birth_date")
