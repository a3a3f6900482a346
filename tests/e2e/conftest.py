"""Browser fixtures: headless Chromium (Debian's `chromium` + `chromium-driver`) driven by Selenium,
against the real service on a fresh database (the integration suite's `isolated` fixture), on one
backend (`one_backend`: TimescaleDB where the cluster has it)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.platform.settings import Settings
from tests.integration.conftest import (  # noqa: F401  (fixtures used by these tests)
    isolated,
    start_worker,
    timescaledb_missing,
)
from tests.one_backend import one_backend  # noqa: F401

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver packages (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required",
                     "--lang=en-US", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def shoot(browser: Any) -> Callable[[str], Path]:
    """Save a full-page screenshot as artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, max(1000, min(int(height) + 40, 4000)))
        browser.save_screenshot(str(path))
        browser.set_window_size(1280, 1000)
        return path

    return save


def login(browser: Any, url: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{url}/web/login")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "login-submit").click()
    until(browser, lambda d: d.find_elements(By.ID, "user-id"), what="the signed-in page")


def until(browser: Any, condition: Callable[[Any], Any], *, what: str, timeout: float = 20.0) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A page that is being replaced (after a click) leaves stale elements: look again.
    wait = WebDriverWait(browser, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    return wait.until(condition, message=f"waiting for {what}")


def reload_until(browser: Any, condition: Callable[[Any], Any], *, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition(browser)
        if found:
            return found
        time.sleep(1.0)
        browser.refresh()
    raise AssertionError(f"timed out waiting for {what}")


def add_school_and_student(settings: Settings, *, school_id: str, name: str, student_key: str,
                           student_number: str, sex: str, birth_date: str, grade: int = 4,
                           enrolled_on: str | None = None, class_name: str | None = None,
                           guardian_name: str | None = None, school_name: str | None = None) -> None:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        conn.execute(
            "INSERT INTO archive.schools (school_id, name, county_id, county_name, urban_rural, stage, boarding,"
            " enrollment, school_doctors) VALUES (%s, %s, 'C01', 'Test county', 'urban', 'primary', false, 500, 1)"
            " ON CONFLICT DO NOTHING", (school_id, school_name or f"Test school {school_id}"))
        conn.execute(
            "INSERT INTO roster.students (student_key, school_id, national_number, name, sex, birth_date, grade,"
            " enrolled_on, class_name, guardian_name) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (student_key, school_id, student_number, name, sex, birth_date, grade, enrolled_on, class_name,
             guardian_name))


def archive_rows(settings: Settings, kind: str, rows: list[dict[str, str]], *,
                 submitted_by: str = "importer") -> None:
    """Rows of an import file, validated, classified and archived as the worker does (without Kafka)."""
    from datetime import UTC, datetime

    from models.importing import row_to_event
    from models.pipeline import ProcessedMessages, classify_event
    from services.pipeline.archive_writer import write_once

    secret = settings.student_key_secret.get_secret_value().encode()
    batch = ProcessedMessages()
    for row in rows:
        classify_event(row_to_event(kind, row, secret=secret, submitted_by=submitted_by,  # type: ignore[arg-type]
                                    now=datetime.now(UTC)), batch)

    write_once(settings.pg_dsn("app"), batch)
