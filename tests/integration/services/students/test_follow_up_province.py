"""On a demo-like province (synthetic files through the real importer, Kafka and a worker), the
school doctor's follow-up list holds exactly the students whose latest screening needs action."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from models.follow_up import growth_findings, vision_findings
from models.synthetic import ProvinceSpec
from models.topics import INPUT_TOPICS
from services.access.users import add_user
from services.devtools.synthetic_files import write_province
from services.intake.importer import import_file
from services.platform.settings import Settings
from services.platform.topics import consumer_lag
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.integration.conftest import WorkerProcess, wait_for
from tests.integration.web_client import web_session_cookie

pytestmark = pytest.mark.integration


def _expected(settings: Settings, school: str) -> int:
    """Count from the archive, independently of the page's query: each active student's latest results."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        vision = conn.execute(
            "SELECT DISTINCT ON (v.student_key) v.screening_myopia, v.impairment_student FROM archive.vision_current v"
            " JOIN archive.students s USING (student_key) WHERE v.school_id = %s AND s.status = 'active'"
            " ORDER BY v.student_key, v.measured_on DESC, v.ingested_at DESC", (school,)).fetchall()
        growth = conn.execute(
            "SELECT DISTINCT ON (g.student_key) g.wst586, g.wst456_wasting, g.wst456_stunting"
            " FROM archive.growth_current g JOIN archive.students s USING (student_key)"
            " WHERE g.school_id = %s AND s.status = 'active'"
            " ORDER BY g.student_key, g.measured_on DESC, g.ingested_at DESC", (school,)).fetchall()
    return (sum(1 for row in vision if vision_findings(*row))
            + sum(1 for row in growth if growth_findings(*row)))


def test_the_follow_up_list_matches_the_archive_on_a_synthetic_province(
    isolated: Settings, start_worker: Callable[[], WorkerProcess], tmp_path: Path,
) -> None:
    settings = isolated
    province = tmp_path / "province"
    write_province(ProvinceSpec(students=700, seed=7, counties=1), province)
    worker = start_worker()
    for kind in ("schools", "roster", "records", "vision", "bmi"):
        import_file(settings, kind, province / f"{kind}.csv", report_path=tmp_path / f"{kind}.rejected.csv")
    topics = [settings.topic(t) for t in INPUT_TOPICS]
    wait_for(lambda: consumer_lag(settings, settings.consumer_group, topics) == 0, timeout=300,
             what="the worker to catch up", workers=[worker])

    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        schools = [row[0] for row in conn.execute(
            "SELECT school_id FROM archive.vision_screenings GROUP BY school_id ORDER BY count(*) DESC")]
    school = schools[0]
    expected = _expected(settings, school)
    assert expected > 20  # a school of a synthetic province has many students with myopia or overweight

    token = add_user(settings, "d-prov", "school_doctor", schools=[school])
    with serve_in_thread(create_api(settings)) as url:
        page = httpx.get(f"{url}/web/doctor/follow-up", cookies={"shk_session": web_session_cookie(url, token)},
                         timeout=60)
    assert page.status_code == 200
    total = re.search(r'id="follow-up-count" data-total="(\d+)"', page.text)
    assert total is not None and int(total.group(1)) == expected
    assert "follow-up-empty" not in page.text
