"""A failed fitness test puts the student on the school's follow-up list (not the alert queue)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import psycopg
import pytest

from models.codecs import encode_batch
from models.topics import FITNESS_TESTS
from services.access.users import add_user
from services.devtools.seed import ArchivePublisher
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests import factories
from tests.integration.web_client import web_session_cookie

pytestmark = pytest.mark.integration


def test_failed_tests_reach_the_follow_up_list_of_their_school_only(isolated: Settings) -> None:
    settings = isolated
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        for school in ("S001", "S002"):
            conn.execute("INSERT INTO archive.schools VALUES (%s, %s, 'C1', '县', 'urban', 'junior', false, 300, 1)",
                         (school, f"学校{school}"))
    lowest: dict[str, Any] = {"vital_capacity_ml": 500, "run_50m_s": 14.0, "sit_and_reach_cm": -15.0,
                              "standing_long_jump_cm": 100, "pull_ups_count": 0, "run_1000m_s": 420.0}
    publisher = ArchivePublisher(settings)
    publisher.publish(FITNESS_TESTS, b"S001", encode_batch([
        factories.fitness(1, **lowest),                 # total fail
        factories.fitness(2, pull_ups_count=0),         # passes overall, fails pull-ups
        factories.fitness(3),                           # good, nothing failed
        factories.fitness(4, school="S002", **lowest),  # another school's failure
    ]))
    publisher.close()
    assert publisher.rejected == 0

    token = add_user(settings, "pe-doc", "school_doctor", schools=["S001"])
    with serve_in_thread(create_api(settings)) as url:
        page = httpx.get(f"{url}/web/doctor/follow-up", cookies={"shk_session": web_session_cookie(url, token)},
                         timeout=60)
    assert page.status_code == 200
    total = re.search(r'id="follow-up-count" data-total="(\d+)"', page.text)
    assert total is not None and int(total.group(1)) == 2
    findings = re.findall(r'data-kind="fitness" data-state="to_notify" data-findings="([^"]*)"', page.text)
    assert sorted(findings) == ["fitness_fail fitness_item_fail", "fitness_item_fail"]
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        alerts = conn.execute("SELECT count(*) FROM alerts.alerts").fetchone()
    assert alerts == (0,)  # not an urgent alert
