"""A PE teacher's results typed on the class sheet's fitness form with the keyboard only.

Real service, Kafka, a worker and PostgreSQL; headless Chromium. Each row offers the items of the
grade for that pupil's sex only; a run typed too fast is refused in Chinese naming the value, a
pupil exempted on every item is saved as 免测 with the reason, the rest are scored as they are saved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from models.identity import student_key
from services.access.users import add_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.e2e.conftest import add_school_and_student, login, until
from tests.integration.conftest import WorkerProcess, count, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# Per row, in the order of the row's inputs: height, weight, vital capacity, 50 m, sit-and-reach,
# then girls: sit-ups, long jump, 800 m; boys: long jump, pull-ups, 1000 m; and the exemption reason.
PUPILS = (
    ("female", ["158.5", "47.2", "2600", "8.9", "15.2", "44", "178", "3'41", ""]),
    ("male", ["165", "52", "3400", "7.8", "9", "215", "9", "3'55", ""]),
    ("female", ["156", "45", "2400", "3", "12", "40", "170", "3'50", ""]),  # a 50 m in 3 s: refused
    ("male", ["160", "50", *["免测"] * 6, "残疾"]),  # exempt on every item, with the reason
    ("female", ["150", "41", "2300", "9.4", "8.5", "35", "160", "", ""]),  # 800 m not run: missing
)


def test_a_class_of_grade_8_by_keyboard_on_the_fitness_sheet(
    isolated: Settings, start_worker: Callable[[], WorkerProcess], browser: Any, shoot: Callable[[str], Path],
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    settings = isolated
    secret = settings.student_key_secret.get_secret_value().encode()
    for n, (sex, _) in enumerate(PUPILS, start=1):
        number = f"G5201022012{n:08d}"
        add_school_and_student(settings, school_id="SA01", school_name="城关第一中学", name=f"学生{n:02d}",
                               student_key=student_key(secret, number), student_number=number, sex=sex,
                               birth_date="2012-05-15", grade=8, class_name="1")
    token = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    worker = start_worker()

    with serve_in_thread(create_api(settings)) as url:
        login(browser, url, token)
        browser.get(f"{url}/web/language/zh-CN?next=/web/doctor/class-sheet")
        browser.find_element(By.CSS_SELECTOR, "#classes tr[data-grade='8'][data-class='1'] a.fitness-sheet") \
            .send_keys(Keys.ENTER)
        until(browser, lambda d: d.find_elements(By.ID, "class-sheet"), what="the fitness sheet")
        assert "班级体质测试表" in browser.page_source and "免测" in browser.find_element(By.ID, "fitness-help").text
        rows = browser.find_elements(By.CSS_SELECTOR, "#class-sheet tbody tr")
        assert len(rows) == len(PUPILS)
        # A girl's row has no pull-up or 1000 m cell, a boy's no sit-up or 800 m cell.
        assert not rows[0].find_elements(By.CSS_SELECTOR, "input[name=pull_ups_count]")
        assert not rows[1].find_elements(By.CSS_SELECTOR, "input[name=run_800m_s]")

        for _, values in PUPILS:
            for value in values:
                element = browser.switch_to.active_element
                if value:
                    element.send_keys(value)
                element.send_keys(Keys.ENTER)
        progress = browser.find_element(By.ID, "sheet-progress")
        until(browser, lambda d: rows[2].get_attribute("data-state") == "error", what="the 3 s run refused")
        until(browser, lambda d: progress.get_attribute("data-saved") == str(len(PUPILS) - 1),
              what="the other rows saved", timeout=60)
        assert "3.0 超出范围（5.5 至 30）" in rows[2].find_element(By.CLASS_NAME, "row-status").text
        assert rows[2].find_element(By.CSS_SELECTOR, "input[name=run_50m_s]").get_attribute("aria-invalid") == "true"
        assert "总分" in rows[0].find_element(By.CLASS_NAME, "row-status").text
        assert "免测" in rows[3].find_element(By.CLASS_NAME, "row-status").text
        assert "缺 800米跑" in rows[4].find_element(By.CLASS_NAME, "row-status").text
        shoot("fitness-sheet-zh")

    wait_for(lambda: count(settings, "SELECT count(*) FROM archive.fitness_results") == len(PUPILS) - 1,
             timeout=90, what="four fitness tests archived", workers=[worker])
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        statuses = sorted(row[0] for row in conn.execute("SELECT status FROM archive.fitness_results"))
        missing = conn.execute("SELECT run_800m_s, missing_items FROM archive.fitness_results"
                               " WHERE status = 'incomplete'").fetchone()
    assert statuses == ["complete", "complete", "exempt", "incomplete"]
    assert missing == (None, ["run_800m"])
