"""A school doctor screens a class of 50 on the class sheet with the keyboard only.

Real service, Kafka, a worker and PostgreSQL; headless Chromium. Every row is checked, classified
and saved as the cursor leaves it; a height typed in millimetres is refused with a hint and fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from models.identity import student_key
from models.school_year import current_grade
from services.access.users import add_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.e2e.conftest import add_school_and_student, login, until
from tests.integration.conftest import WorkerProcess, count, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CLASS_SIZE = 50


def _values(n: int) -> list[str]:
    """Height, weight, acuity R/L, SE R/L of pupil n: every fifth myopic, every seventh obese."""
    height = f"{130 + n % 20}.{n % 10}"
    weight = "55.0" if n % 7 == 0 else f"{27 + n % 9}.5"
    myopic = n % 5 == 0
    return [height, weight, "4.7" if myopic else "5.0", "4.8" if myopic else "5.1",
            "-1.25" if myopic else "0.25", "-1.00" if myopic else "0.50"]


def test_fifty_students_by_keyboard(
    isolated: Settings, start_worker: Callable[[], WorkerProcess], browser: Any, shoot: Callable[[str], Path],
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    settings = isolated
    secret = settings.student_key_secret.get_secret_value().encode()
    for n in range(1, CLASS_SIZE + 1):
        number = f"G1101012015{n:08d}"
        add_school_and_student(settings, school_id="SA01", school_name="城关第一小学", name=f"学生{n:02d}",
                               student_key=student_key(secret, number), student_number=number,
                               sex="female" if n % 2 else "male", birth_date=f"2015-{1 + n % 12:02d}-15", grade=1,
                               enrolled_on="2022-09-01", class_name="2")
    # A pupil of another class is not on this sheet.
    other = "G110101201699999999"
    add_school_and_student(settings, school_id="SA01", name="别班学生", student_key=student_key(secret, other),
                           student_number=other, sex="male", birth_date="2015-05-05", grade=1,
                           enrolled_on="2022-09-01", class_name="3")
    today = datetime.now(UTC).date()
    grade = current_grade(1, datetime(2022, 9, 1).date(), today)
    token = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    worker = start_worker()

    with serve_in_thread(create_api(settings)) as url:
        login(browser, url, token)
        assert browser.current_url.endswith("/web/doctor/class-sheet")
        browser.get(f"{url}/web/language/zh-CN?next=/web/doctor/class-sheet")
        # The class list; the sheet opened from it (the link followed with the keyboard).
        link = browser.find_element(By.CSS_SELECTOR, f"#classes tr[data-grade='{grade}'][data-class='2'] a")
        assert browser.find_element(By.CSS_SELECTOR, f"#classes tr[data-grade='{grade}'][data-class='2']").text \
            .endswith(str(CLASS_SIZE))
        link.send_keys(Keys.ENTER)
        until(browser, lambda d: d.find_elements(By.ID, "class-sheet"), what="the class sheet")
        rows = browser.find_elements(By.CSS_SELECTOR, "#class-sheet tbody tr")
        assert len(rows) == CLASS_SIZE and "别班学生" not in browser.page_source
        assert ("学生01" in rows[0].text and "10" in rows[0].text) or "11" in rows[0].text
        progress = browser.find_element(By.ID, "sheet-progress")
        assert progress.get_attribute("data-saved") == "0"

        # The cursor starts in the first cell; values and Enter all the way down.
        for n in range(1, CLASS_SIZE + 1):
            values = _values(n)
            if n == CLASS_SIZE:
                values[0] = "1750"  # millimetres by mistake
            for value in values:
                browser.switch_to.active_element.send_keys(value, Keys.ENTER)
            browser.switch_to.active_element.send_keys(Keys.ENTER)  # past the glasses box
        last = rows[-1]
        until(browser, lambda d: last.get_attribute("data-state") == "error", what="the last row refused")
        assert "毫米" in last.find_element(By.CLASS_NAME, "row-status").text  # the page is Chinese by default
        until(browser, lambda d: progress.get_attribute("data-saved") == str(CLASS_SIZE - 1), what="49 rows saved",
              timeout=60)
        shoot("class-sheet-error-zh")

        # Back to the height cell of the last row with Shift+Tab, fix it, and Enter through the row.
        for _ in range(6):
            browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
        height = browser.switch_to.active_element
        assert height.get_attribute("name") == "height_cm"
        height.send_keys(Keys.CONTROL, "a")
        height.send_keys("175.0")
        for _ in range(6):
            browser.switch_to.active_element.send_keys(Keys.ENTER)
        browser.switch_to.active_element.send_keys(Keys.ENTER)  # Enter in the last cell saves the last row
        until(browser, lambda d: last.get_attribute("data-state") == "saved", what="the fixed row saved")
        until(browser, lambda d: progress.get_attribute("data-saved") == str(CLASS_SIZE), what="all rows saved")
        assert "筛查性近视" in rows[4].find_element(By.CLASS_NAME, "row-status").text  # pupil 5
        assert "肥胖" in rows[6].find_element(By.CLASS_NAME, "row-status").text  # pupil 7
        shoot("class-sheet-done-zh")

        wait_for(lambda: count(settings, "SELECT count(*) FROM archive.growth_current") == CLASS_SIZE
                 and count(settings, "SELECT count(*) FROM archive.vision_current") == CLASS_SIZE,
                 timeout=90, what="every row archived", workers=[worker])
        assert count(settings, "SELECT count(DISTINCT submitted_by) FROM archive.growth_screenings") == 1

        # Opened again (in English), the sheet shows what was entered today and counts it as saved.
        browser.get(f"{url}/web/language/en?next=/web/doctor/class-sheet")
        browser.find_element(By.CSS_SELECTOR, f"#classes tr[data-grade='{grade}'][data-class='2'] a") \
            .send_keys(Keys.ENTER)
        until(browser, lambda d: d.find_element(By.ID, "sheet-progress").get_attribute("data-saved")
              == str(CLASS_SIZE), what="the saved rows counted")
        assert browser.find_element(By.CSS_SELECTOR, "#class-sheet tbody tr:last-child input[name=height_cm]") \
            .get_attribute("value") == "175.0"
        assert f"{CLASS_SIZE} of {CLASS_SIZE} students saved" in browser.find_element(By.ID, "sheet-progress").text
        shoot("class-sheet-reopened-en")
