"""A school doctor in the browser: one screening classified and archived, a screening day uploaded
with its bad rows explained, the follow-up list and a printable referral letter.

Real service (uvicorn), Kafka, PostgreSQL, worker and alert-service processes; headless Chromium.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from models.identity import student_key
from services.access.users import add_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.e2e.conftest import add_school_and_student, login, reload_until, until
from tests.integration.conftest import WorkerProcess, count, wait_for
from tests.integration.services.alerts.test_alerts_flow import AlertService

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

NUMBER = "G110101201403070011"


def _fill(browser: Any, field: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    element = browser.find_element(By.ID, f"f-{field}")
    element.clear()
    element.send_keys(value)


def test_doctor_screening_upload_follow_up_and_letter(
    isolated: Settings, start_worker: Callable[[], WorkerProcess], browser: Any, shoot: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    settings = isolated
    secret = settings.student_key_secret.get_secret_value().encode()
    add_school_and_student(settings, school_id="SA01", name="Li Xiaoming", student_key=student_key(secret, NUMBER),
                           student_number=NUMBER, sex="male", birth_date="2014-03-07", guardian_name="李建国")
    # A second pupil of SA01, for the upload (a doctor writes only for pupils enrolled at their schools).
    add_school_and_student(settings, school_id="SA01", name="Wang Fang",
                           student_key=student_key(secret, "G110101201405050022"),
                           student_number="G110101201405050022", sex="female", birth_date="2014-05-05")
    token = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    worker = start_worker()
    alerts = AlertService(settings, tmp_path / "alerts.log")
    today = datetime.now(UTC).date().isoformat()
    try:
        with serve_in_thread(create_api(settings)) as url:
            browser.get(f"{url}/web/alerts")
            until(browser, lambda d: d.find_elements(By.ID, "token"), what="the login page")
            shoot("login")
            login(browser, url, token)
            cookie = browser.get_cookie("shk_session")
            assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"

            # (1) One height/weight screening: an impossible weight is refused as it is typed.
            browser.get(f"{url}/web/doctor/screening?kind=bmi")
            # The student is looked up on the roster: sex and date of birth are filled in.
            _fill(browser, "student_number", NUMBER)
            until(browser, lambda d: "Li Xiaoming" in d.find_element(By.ID, "roster-found").text,
                  what="the roster lookup")
            assert Select(browser.find_element(By.ID, "f-sex")).first_selected_option.get_attribute("value") == "male"
            assert browser.find_element(By.ID, "f-birth_date").get_attribute("value") == "2014-03-07"
            _fill(browser, "height_cm", "140")
            _fill(browser, "weight_kg", "900")
            message = until(browser, lambda d: d.find_element(By.ID, "m-weight_kg").text, what="weight message")
            assert message and browser.find_element(By.ID, "f-weight_kg").get_attribute("aria-invalid") == "true"
            shoot("doctor-screening-validation")
            _fill(browser, "weight_kg", "60")
            until(browser, lambda d: d.find_element(By.ID, "screening-form").get_attribute("data-checked") == "ok",
                  what="the row to validate")
            assert browser.find_element(By.ID, "m-weight_kg").text == ""
            browser.find_element(By.ID, "save").click()
            until(browser, lambda d: d.find_elements(By.ID, "classification"), what="the classification")
            shown = {e.get_attribute("data-name"): e.text
                     for e in browser.find_elements(By.CSS_SELECTOR, "#classification dd")}
            assert shown["wst586"] == "Obesity" and float(shown["bmi"]) == pytest.approx(30.6, abs=0.05)
            assert "Obesity" in browser.find_element(By.ID, "raised").text
            until(browser, lambda d: d.find_element(By.ID, "archive-status").get_attribute("data-archived") == "true",
                  what="the archived mark", timeout=90)
            shoot("doctor-screening-saved")
            with psycopg.connect(settings.pg_dsn("admin")) as conn:
                archived = conn.execute("SELECT school_id, submitted_by, wst586, measured_on::text"
                                        " FROM archive.growth_screenings").fetchall()
            assert archived == [("SA01", "d-a", "obesity", today)]

            # (2) A screening day with bad rows: each rejected row with its column and reason.
            day = tmp_path / "screening-day.csv"
            day.write_text(
                "school_id,student_number,sex,birth_date,measured_on,height_cm,weight_kg,screener\n"
                f"SA01,G110101201405050022,female,2014-05-05,{today},138.5,31.2,d-a\n"
                f"SA01,G110101201406060033,female,2014-06-06,{today},abc,30.0,d-a\n"
                f"SB01,G110101201407070044,male,2014-07-07,{today},140.0,33.0,d-a\n"
                f"SA01,G110101201408080055,x,2014-08-08,{today},141.0,34.0,d-a\n"
                f"SA01,G110101201409090066,male,2014-09-09,1999-01-01,139.0,32.0,d-a\n", encoding="utf-8")
            browser.get(f"{url}/web/doctor/import")
            shoot("doctor-import")
            browser.find_element(By.ID, "import-kind-bmi").click()
            browser.find_element(By.ID, "file").send_keys(str(day))
            browser.find_element(By.ID, "preview").click()
            until(browser, lambda d: d.find_elements(By.ID, "accepted-count"), what="the preview")
            assert browser.find_element(By.ID, "accepted-count").text == "1"
            rejected = {int(r.get_attribute("data-row")): (r.get_attribute("data-field"),
                                                           r.find_element(By.CLASS_NAME, "reason").text)
                        for r in browser.find_elements(By.CSS_SELECTOR, "#rejected tbody tr")}
            assert set(rejected) == {2, 3, 4, 5}
            assert rejected[2][0] == "height_cm" and "not a number" in rejected[2][1]
            assert rejected[3] == ("school_id", "not a school you serve")
            assert rejected[4][0] == "sex" and "male/female" in rejected[4][1]
            assert rejected[5][0] == "measured_on" and "before birth" in rejected[5][1]
            shoot("doctor-import-preview")
            assert count(settings, "SELECT count(*) FROM archive.growth_screenings") == 1  # nothing published yet
            browser.find_element(By.ID, "publish").click()
            done = until(browser, lambda d: d.find_elements(By.ID, "published"), what="the publish result")[0]
            assert (done.get_attribute("data-accepted"), done.get_attribute("data-rejected")) == ("1", "4")
            wait_for(lambda: count(settings, "SELECT count(*) FROM archive.growth_screenings") == 2, timeout=60,
                     what="the uploaded row archived", workers=[worker])
            assert count(settings, "SELECT count(*) FROM ops.import_rejections") == 4

            # The same for an XLSX file of vision screenings.
            from openpyxl import Workbook

            workbook = Workbook()
            sheet = workbook.active
            assert sheet is not None
            sheet.append(["school_id", "student_number", "sex", "birth_date", "measured_on", "ucva_right",
                          "ucva_left", "se_right", "se_left", "wears_glasses", "screener"])
            sheet.append(["SA01", NUMBER, "男", "2014-03-07", today, 4.0, 4.1, -6.5, -6.0, "是", "d-a"])
            sheet.append(["SA01", "G110101201405050022", "女", "2014-05-05", today, 1.0, 0.8, None, None, "否", "d-a"])
            xlsx = tmp_path / "vision-day.xlsx"
            workbook.save(xlsx)
            browser.get(f"{url}/web/doctor/import")
            browser.find_element(By.ID, "import-kind-vision").click()
            browser.find_element(By.ID, "file").send_keys(str(xlsx))
            browser.find_element(By.ID, "preview").click()
            until(browser, lambda d: d.find_elements(By.ID, "accepted-count"), what="the XLSX preview")
            assert browser.find_element(By.ID, "accepted-count").text == "1"
            [bad] = browser.find_elements(By.CSS_SELECTOR, "#rejected tbody tr")
            assert bad.get_attribute("data-field") == "ucva_right" and "decimal acuity" in bad.text
            assert "High myopia" in browser.find_element(By.ID, "accepted").text
            browser.find_element(By.ID, "publish").click()
            until(browser, lambda d: d.find_elements(By.ID, "published"), what="the XLSX publish result")
            wait_for(lambda: count(settings, "SELECT count(*) FROM archive.vision_screenings") == 1, timeout=60,
                     what="the vision row archived", workers=[worker])

            # (3) The follow-up list in Chinese, the student's history and the referral letter.
            browser.get(f"{url}/web/doctor/follow-up")
            browser.find_element(By.ID, "lang-zh-CN").click()
            until(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN",
                  what="the Chinese page")
            reload_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#follow-up-alerts tbody tr")) == 2,
                         what="the obesity and high myopia alerts in the follow-up list", timeout=90)
            # The screening results needing action are listed from the archive as well.
            assert {r.get_attribute("data-findings") for r in
                    browser.find_elements(By.CSS_SELECTOR, "#follow-up tbody tr")} >= {"obesity"}
            row = browser.find_element(By.CSS_SELECTOR, "tr[data-concern=obesity]")
            assert "Li Xiaoming" in browser.find_element(By.CSS_SELECTOR, "tr[data-concern=high_myopia]").text
            assert "Li Xiaoming" in row.text and "肥胖" in row.text
            assert browser.find_element(By.TAG_NAME, "h1").text == "随访名单"
            shoot("doctor-follow-up")
            row.find_element(By.CSS_SELECTOR, "td:nth-child(2) a").click()
            until(browser, lambda d: d.find_elements(By.ID, "history-growth"), what="the student's history")
            assert len(browser.find_elements(By.CSS_SELECTOR, "#history-growth tbody tr")) == 1
            shoot("doctor-alert")
            browser.find_element(By.ID, "letter-link").click()
            until(browser, lambda d: d.find_elements(By.ID, "letter"), what="the referral letter")
            assert browser.find_element(By.ID, "letter-student").text == "Li Xiaoming"
            # Addressed to the guardian from the roster, not to the student.
            assert browser.find_element(By.ID, "letter-greeting").text == "尊敬的李建国家长："
            assert "Test school SA01" in browser.find_element(By.ID, "letter").text
            browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
            assert not browser.find_element(By.CSS_SELECTOR, "header.bar").is_displayed()
            assert not browser.find_element(By.ID, "print").is_displayed()
            shoot("doctor-referral-letter-print")
            browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

            # Acknowledge, then refer the student to a service.
            browser.find_element(By.CSS_SELECTOR, "a[href^='/web/alerts/']").click()
            browser.find_element(By.ID, "acknowledge").click()
            until(browser, lambda d: d.find_element(By.ID, "alert-state").get_attribute("data-state") == "acknowledged",
                  what="the acknowledged state")
            browser.find_element(By.ID, "referred-to").send_keys("county-hospital-paediatrics")
            browser.find_element(By.ID, "refer").click()
            until(browser, lambda d: d.find_element(By.ID, "alert-state").get_attribute("data-state") == "referred",
                  what="the referred state")
            assert "county-hospital-paediatrics" in browser.find_element(By.ID, "alert-state").text

            # Every form control has a label.
            browser.get(f"{url}/web/doctor/screening?kind=vision")
            unlabelled = browser.execute_script(
                "return [...document.querySelectorAll('input:not([type=hidden]),select,textarea')]"
                ".filter(e => !e.labels || e.labels.length === 0).map(e => e.id || e.name)")
            assert unlabelled == []
            shoot("doctor-screening-vision-zh")
    finally:
        alerts.stop()
