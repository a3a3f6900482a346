"""Acting on an alert is audited as reading it is: the trail answers who touched a student's
psychological data, and when."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from services.access.users import add_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.integration.services.alerts.test_alerts_escalation import apply, candidates

pytestmark = pytest.mark.integration


@pytest.fixture
def api(isolated: Settings) -> Iterator[tuple[str, Settings]]:
    with serve_in_thread(create_api(isolated)) as url:
        yield url, isolated


def test_alert_actions_write_audit_rows(api: tuple[str, Settings]) -> None:
    url, settings = api
    me = {"Authorization": f"Bearer {add_user(settings, 'c-a', 'counsellor', schools=['SA01'])}"}
    apply(settings, candidates(1, [0] * 8 + [2]), datetime.now(UTC))
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        [(alert_id, student)] = conn.execute("SELECT alert_id, student_key FROM alerts.alerts").fetchall()
    base = f"{url}/alerts/{alert_id}"
    assert httpx.post(f"{base}/acknowledge", headers=me).status_code == 200
    assert httpx.post(f"{base}/notes", headers=me, json={"note": "spoke with the student"}).status_code == 200
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        trail = conn.execute("SELECT user_id, what FROM audit.psych_reads WHERE student_key = %s AND alert_id = %s"
                             " ORDER BY id", (student, alert_id)).fetchall()
    assert trail == [("c-a", "act:acknowledge"), ("c-a", "act:note")]
