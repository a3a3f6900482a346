"""A counsellor in the browser: an urgent alert arrives live, is acknowledged, noted and resolved;
a counsellor of another school cannot open it by its URL.

Real service (uvicorn), Kafka, PostgreSQL and alert-service process (fast lane); headless Chromium.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from kafka import KafkaProducer

from models.codecs import encode_event
from models.school_year import age_years, current_grade
from models.topics import PSYCH_SURVEYS
from services.access.users import add_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests import factories
from tests.e2e.conftest import add_school_and_student, login, until
from tests.integration.services.alerts.test_alerts_flow import AlertService

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_counsellor_sees_urgent_alert_live_and_acts_other_school_cannot(
    isolated: Settings, browser: Any, shoot: Callable[[str], Path], tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    settings = isolated
    at_risk = factories.survey(1, school="SA01", answers=[0, 0, 0, 0, 0, 0, 0, 0, 1])
    add_school_and_student(settings, school_id="SA01", name="Wang Fang", student_key=at_risk.student_key,
                           student_number="G110101201103070011", sex="male", birth_date="2011-03-07", grade=5,
                           enrolled_on="2022-09-01", class_name="2", school_name="Chengguan No. 2 Middle School")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    grade_now = current_grade(5, date(2022, 9, 1), today)
    counsellor_a = add_user(settings, "c-a", "counsellor", schools=["SA01"])
    counsellor_b = add_user(settings, "c-b", "counsellor", schools=["SB01"])
    alerts = AlertService(settings, tmp_path / "alerts.log")
    try:
        app = create_api(settings)
        with serve_in_thread(app) as url:
            login(browser, url, counsellor_a)
            assert browser.current_url == f"{url}/web/alerts"
            until(browser, lambda d: d.find_element(By.ID, "live-status").get_attribute("data-live") == "connected",
                  what="the live feed to connect")
            assert browser.find_element(By.ID, "queue-empty").is_displayed()
            browser.execute_script("window.__marker = 'not reloaded'")

            producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
            producer.send(settings.topic(PSYCH_SURVEYS), key=b"SA01", value=encode_event(at_risk))
            producer.flush()
            producer.close()

            row = until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#queue tbody tr[data-priority=urgent]"),
                        what="the urgent alert in the open page", timeout=90)[0]
            assert browser.execute_script("return window.__marker") == "not reloaded"
            assert "Wang Fang" in row.text and "Self-harm risk" in row.text
            # The school's name, not its code; the grade of this school year, not the one at registration.
            assert "Chengguan No. 2 Middle School" in row.text and "SA01" not in row.text
            assert (f"Grade {grade_now}, class 2" if grade_now else "–") in row.text
            banner = browser.find_element(By.ID, "urgent-banner")
            assert banner.is_displayed() and "New urgent alert" in banner.text
            body = browser.find_element(By.TAG_NAME, "body")
            assert int(body.get_attribute("data-beeps") or 0) >= 1, body.get_attribute("data-audio-error")
            assert body.get_attribute("data-audio-state") == "running"
            shoot("counsellor-queue-urgent")
            alert_url = row.find_element(By.CSS_SELECTOR, "td:nth-child(2) a").get_attribute("href")
            alert_id = alert_url.rsplit("/", 1)[1]

            # The alert page: evidence in words, the student's age and class, times in Beijing time.
            browser.get(alert_url)
            assert browser.find_element(By.ID, "alert-evidence").text == (
                "answered 'several days' to item 9 of PHQ-A; total 1, minimal")
            assert browser.find_element(By.ID, "alert-school").text == "Chengguan No. 2 Middle School"
            age = age_years(date(2011, 3, 7), today)
            assert browser.find_element(By.ID, "alert-age").text.startswith(f"{age} years")
            with psycopg.connect(settings.pg_dsn("admin")) as conn:
                opened = conn.execute("SELECT opened_at FROM alerts.alerts").fetchone()[0]  # type: ignore[index]
            facts = browser.find_element(By.ID, "alert-facts").text
            assert opened.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M") in facts
            assert "UTC" not in facts
            shoot("counsellor-alert-en")
            browser.get(f"{url}/web/language/zh-CN?next=/web/alerts/{alert_url.rsplit('/', 1)[1]}")
            until(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN",
                  what="the Chinese alert page")
            assert browser.find_element(By.ID, "alert-evidence").text == "PHQ-A 第 9 题回答“有几天”；总分 1，无或极轻"
            assert (f"{grade_now}年级2班" if grade_now else "–") == browser.find_element(By.ID, "alert-grade").text
            shoot("counsellor-alert-zh")
            browser.get(f"{url}/web/language/en?next=/web/alerts/{alert_url.rsplit('/', 1)[1]}")

            # Acknowledge with the keyboard only.
            browser.get(alert_url)
            browser.find_element(By.ID, "acknowledge").send_keys(Keys.ENTER)
            until(browser, lambda d: d.find_element(By.ID, "alert-state").get_attribute("data-state") == "acknowledged",
                  what="the acknowledged state")
            browser.find_element(By.ID, "note-text").send_keys("Spoke with the student; parents called.")
            browser.find_element(By.ID, "add-note").click()
            until(browser, lambda d: d.find_elements(By.ID, "done"), what="the note saved")
            shoot("counsellor-alert")

            # Another school's counsellor gets the same answer as for an id that does not exist.
            login(browser, url, counsellor_b)
            browser.get(alert_url)
            error = until(browser, lambda d: d.find_elements(By.ID, "error-message"), what="the refusal")[0]
            assert error.get_attribute("data-status") == "404"
            assert "Wang Fang" not in browser.page_source and "Spoke with" not in browser.page_source
            shoot("counsellor-other-school-refused")
            browser.get(f"{url}/web/alerts/{alert_id}/letter")
            assert browser.find_element(By.ID, "error-message").get_attribute("data-status") == "404"
            browser.get(f"{url}/web/alerts")
            assert browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr") == []

            # Back as counsellor A: a form without a CSRF token is refused; then resolve with an outcome.
            login(browser, url, counsellor_a)
            browser.get(alert_url)
            browser.execute_script("document.getElementById('add-note').form.csrf.value = 'forged'")
            browser.find_element(By.ID, "note-text").send_keys("forged note")
            browser.find_element(By.ID, "add-note").click()
            until(browser, lambda d: "CSRF" in d.page_source, what="the CSRF refusal")
            browser.get(alert_url)
            Select(browser.find_element(By.ID, "outcome")).select_by_value("support_in_school")
            browser.find_element(By.ID, "resolve-note").send_keys("Plan agreed with the family.")
            browser.find_element(By.ID, "resolve").click()
            until(browser, lambda d: d.find_element(By.ID, "alert-state").get_attribute("data-state") == "resolved",
                  what="the resolved state")
            actions = [r.get_attribute("data-action") for r in browser.find_elements(By.CSS_SELECTOR,
                                                                                     "#transitions tbody tr")]
            assert actions == ["open", "acknowledge", "note", "resolve"]
            shoot("counsellor-alert-resolved")
            browser.get(f"{url}/web/language/zh-CN?next=/web/alerts")
            until(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text == "预警队列", what="the Chinese queue")
            assert browser.find_element(By.ID, "queue-empty").is_displayed()
            shoot("counsellor-queue-zh")
            # Hang up the live feed before the service stops, as a closing tab does, so the
            # server finishes the stream (and closes its LISTEN connection) itself.
            browser.get("about:blank")
            deadline = time.monotonic() + 30
            while app.state.feed_hub.subscribers and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not app.state.feed_hub.subscribers, "the server still streams the closed page's feed"
    finally:
        alerts.stop()

    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        rows = conn.execute("SELECT actor, action, note FROM alerts.transitions ORDER BY id").fetchall()
        audited = {r[0] for r in conn.execute("SELECT DISTINCT user_id FROM audit.psych_reads").fetchall()}
    assert [(actor, action) for actor, action, _ in rows] == [
        ("rule:phq-item9-self-harm@1", "open"), ("c-a", "acknowledge"), ("c-a", "note"), ("c-a", "resolve")]
    assert audited == {"c-a"}
    assert all(note != "forged note" for _, _, note in rows)
