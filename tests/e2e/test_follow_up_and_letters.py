"""A school doctor works the follow-up list (keyboard) and prints parent letters, in Chinese and English.

Screenings are classified and archived by the worker's own code (no Kafka needed for this page);
the real service, PostgreSQL with row-level security, and headless Chromium.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from models.identity import student_key
from models.school_year import current_grade
from services.access.users import add_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.e2e.conftest import add_school_and_student, archive_rows, login, until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

MYOPIC, NORMAL, OTHER_SCHOOL = "G110101201503070011", "G110101201504080022", "G110101201505090033"


def _screen(settings: Settings, today: str) -> None:
    common = {"school_id": "SA01", "sex": "female", "birth_date": "2015-03-07", "measured_on": today,
              "screener": "d-a"}
    archive_rows(settings, "vision", [
        common | {"student_number": MYOPIC, "ucva_right": "4.7", "ucva_left": "4.8", "se_right": "-1.25",
                  "se_left": "-1.00", "wears_glasses": "否"},
        common | {"student_number": NORMAL, "birth_date": "2015-04-08", "ucva_right": "5.0", "ucva_left": "5.1",
                  "se_right": "0.25", "se_left": "0.50", "wears_glasses": "否"},
        common | {"school_id": "SB01", "student_number": OTHER_SCHOOL, "ucva_right": "4.5", "ucva_left": "4.5",
                  "se_right": "-2.00", "se_left": "-2.00", "wears_glasses": "是"}])
    archive_rows(settings, "bmi", [common | {"student_number": MYOPIC, "height_cm": "140.0", "weight_kg": "60.0"}])


def test_follow_up_states_and_parent_letters(
    isolated: Settings, browser: Any, shoot: Callable[[str], Path],
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    settings = isolated
    secret = settings.student_key_secret.get_secret_value().encode()
    today = datetime.now(UTC).date()
    for number, name, guardian, birth in ((MYOPIC, "张小花", "张建国", "2015-03-07"),
                                           (NORMAL, "李明", None, "2015-04-08")):
        add_school_and_student(settings, school_id="SA01", school_name="城关第一小学", name=name,
                               student_key=student_key(secret, number), student_number=number, sex="female",
                               birth_date=birth, grade=1, enrolled_on="2022-09-01", class_name="3",
                               guardian_name=guardian)
    add_school_and_student(settings, school_id="SB01", name="王五", student_key=student_key(secret, OTHER_SCHOOL),
                           student_number=OTHER_SCHOOL, sex="female", birth_date="2015-03-07")
    _screen(settings, today.isoformat())
    grade = current_grade(1, date(2022, 9, 1), today)
    assert grade is not None
    token = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    myopic_key = student_key(secret, MYOPIC)

    with serve_in_thread(create_api(settings)) as url:
        login(browser, url, token)
        browser.get(f"{url}/web/language/zh-CN?next=/web/doctor/follow-up")
        until(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text == "随访名单", what="the Chinese list")
        rows = browser.find_elements(By.CSS_SELECTOR, "#follow-up tbody tr")
        shown = {(r.get_attribute("data-kind"), r.get_attribute("data-findings")) for r in rows}
        # Only the student whose results need action, of this doctor's school; both kinds of result.
        assert shown == {("vision", "screening_myopia visual_impairment"), ("growth", "obesity")}
        assert all("张小花" in r.text and f"{grade}年级3班" in r.text and "待告知" in r.text for r in rows)
        assert "王五" not in browser.page_source
        shoot("doctor-follow-up-zh")

        # Record "parents notified" and a re-check date with the keyboard only.
        vision_row = browser.find_element(By.CSS_SELECTOR, "#follow-up tr[data-kind=vision]")
        case_id = vision_row.get_attribute("id")
        state = vision_row.find_element(By.CLASS_NAME, "step-state")
        state.send_keys(Keys.DOWN)  # 待告知 → 已告知家长
        state.send_keys(Keys.TAB)
        date_field = browser.switch_to.active_element
        assert "step-next" in date_field.get_attribute("class")
        date_field.send_keys("03012027")  # the date control in the browser's en-US order, mm/dd/yyyy
        date_field.send_keys(Keys.ENTER)
        until(browser, lambda d: "saved=" in d.current_url, what="the step saved")
        saved = browser.find_element(By.ID, case_id)
        assert saved.get_attribute("data-state") == "parents_notified"
        assert "已告知家长" in saved.find_element(By.CLASS_NAME, "state").text
        assert saved.find_element(By.CLASS_NAME, "next-check").text.startswith("2027-03-01")
        shoot("doctor-follow-up-notified-zh")

        # Filter by state, then refer and close the growth case.
        browser.get(f"{url}/web/doctor/follow-up?state=to_notify")
        assert [r.get_attribute("data-kind") for r in browser.find_elements(By.CSS_SELECTOR, "#follow-up tbody tr")] \
            == ["growth"]
        for step in ("referred", "closed"):
            row = browser.find_element(By.CSS_SELECTOR, "#follow-up tr[data-kind=growth]")
            select = row.find_element(By.CLASS_NAME, "step-state")
            browser.execute_script("arguments[0].value = arguments[1]", select, step)
            row.find_element(By.CLASS_NAME, "step-save").click()
            until(browser, lambda d: "saved=" in d.current_url, what=f"the {step} step")
            browser.get(f"{url}/web/doctor/follow-up")
        states = {r.get_attribute("data-kind"): r.get_attribute("data-state")
                  for r in browser.find_elements(By.CSS_SELECTOR, "#follow-up tbody tr")}
        assert states == {"vision": "parents_notified", "growth": "closed"}

        # The student's vision letter, addressed to the guardian from the roster.
        browser.get(f"{url}/web/doctor/letters/vision/{myopic_key}")
        letter = until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "article.parent-letter"),
                       what="the letter")[0]
        assert letter.find_element(By.TAG_NAME, "h1").text == "视力筛查结果告家长书"
        assert letter.find_element(By.CLASS_NAME, "greeting").text == "尊敬的张建国家长："
        assert "张小花" in letter.text and "城关第一小学" in letter.text and f"{grade}年级3班" in letter.text
        assert "筛查性近视" in letter.text and "2027-03-01" in letter.text  # the re-check date the doctor set
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        assert not browser.find_element(By.CSS_SELECTOR, "header.bar").is_displayed()
        assert not browser.find_element(By.ID, "print").is_displayed()
        shoot("parent-letter-vision-zh-print")
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

        # The class's letters: one per student with a vision screening, the normal one says so.
        browser.get(f"{url}/web/doctor/letters/vision?grade={grade}&class_name=3")
        letters = browser.find_elements(By.CSS_SELECTOR, "article.parent-letter")
        assert len(letters) == 2
        normal = browser.find_element(By.CSS_SELECTOR, f"article[data-student='{student_key(secret, NORMAL)}']")
        assert normal.find_element(By.CLASS_NAME, "greeting").text == "尊敬的李明同学家长："
        assert "结果在正常范围内" in normal.text
        shoot("parent-letters-class-zh")

        # The same letter in English; another school's student is not found.
        browser.get(f"{url}/web/language/en?next=/web/doctor/letters/growth/{myopic_key}")
        letter = until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "article.parent-letter"),
                       what="the English letter")[0]
        assert letter.find_element(By.CLASS_NAME, "greeting").text == "Dear 张建国,"
        assert "obesity range" in letter.text and "60 minutes" in letter.text
        shoot("parent-letter-growth-en")
        browser.get(f"{url}/web/doctor/letters/vision/{student_key(secret, OTHER_SCHOOL)}")
        assert browser.find_element(By.ID, "error-message").get_attribute("data-status") == "404"
        browser.get(f"{url}/web/doctor/follow-up")
        assert "Parents notified" in browser.find_element(By.CSS_SELECTOR, "#follow-up tr[data-kind=vision]").text
        shoot("doctor-follow-up-en")

    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        steps = conn.execute("SELECT state, actor FROM followup.steps ORDER BY id").fetchall()
    assert steps == [("parents_notified", "d-a"), ("referred", "d-a"), ("closed", "d-a")]
