"""The API's state changes, errors and single-screening submission, on the real database and broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from kafka import KafkaConsumer

from models.identity import student_key
from models.topics import PSYCH_SURVEYS
from services.access.users import add_user, disable_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.e2e.conftest import add_school_and_student
from tests.integration.services.alerts.test_alerts_escalation import apply, candidates

pytestmark = pytest.mark.integration


@pytest.fixture
def api(isolated: Settings) -> Iterator[tuple[str, Settings]]:
    with serve_in_thread(create_api(isolated)) as url:
        yield url, isolated


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_state_changes_conflicts_and_errors(api: tuple[str, Settings]) -> None:
    url, settings = api
    me = _auth(add_user(settings, "c-a", "counsellor", schools=["SA01"]))
    add_user(settings, "c-a2", "counsellor", schools=["SA01"])
    add_user(settings, "c-b", "counsellor", schools=["SB01"])
    apply(settings, candidates(1, [0] * 8 + [2]), datetime.now(UTC))
    [alert] = httpx.get(f"{url}/alerts", headers=me).json()
    base = f"{url}/alerts/{alert['alert_id']}"

    def post(action: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{base}/{action}", headers=me, json=body)

    refused = post("resolve", {"outcome": "concern_confirmed"})
    assert refused.status_code == 409 and refused.json()["detail"]["code"] == "not_acknowledged"
    assert post("acknowledge").json()["state"] == "acknowledged"
    again = post("acknowledge")
    assert again.status_code == 409 and "already acknowledged" in again.json()["detail"]["reason"]
    assert post("notes", {"note": "spoke with the student"}).status_code == 200
    assert post("notes", {"note": ""}).status_code == 422
    assert post("notes", {"note": "x", "extra": 1}).status_code == 422
    wrong = post("reassign", {"assignee": "c-b"})
    assert wrong.status_code == 422 and wrong.json()["detail"]["code"] == "assignee_not_serving"
    assert post("reassign", {"assignee": "c-a2"}).json()["assigned_to"] == "c-a2"
    bad_outcome = post("resolve", {"outcome": "fine"})
    assert bad_outcome.status_code == 422 and "outcome" in bad_outcome.json()["detail"]["reason"]
    done = post("resolve", {"outcome": "support_in_school", "note": "plan agreed"})
    assert (done.json()["state"], done.json()["outcome"]) == ("resolved", "support_in_school")
    twice = post("resolve", {"outcome": "support_in_school"})
    assert twice.status_code == 409
    assert twice.json()["detail"] == {
        "code": "already_closed", "reason": "cannot resolve: the alert is already resolved (outcome support_in_school)"}
    assert httpx.get(f"{url}/alerts", headers=me).json() == []
    assert len(httpx.get(f"{url}/alerts", headers=me, params={"state": "resolved"}).json()) == 1
    assert httpx.get(f"{url}/alerts", headers=me, params={"state": "bogus"}).status_code == 422
    assert httpx.get(f"{url}/alerts/not-a-uuid", headers=me).status_code == 422
    detail = httpx.get(base, headers=me).json()
    assert [(t["action"], t["actor"]) for t in detail["transitions"]] == [
        ("open", "rule:phq-item9-self-harm@1"), ("acknowledge", "c-a"), ("note", "c-a"), ("reassign", "c-a"),
        ("resolve", "c-a")]

    disable_user(settings, "c-a")
    assert httpx.get(f"{url}/alerts", headers=me).status_code == 401


def test_single_survey_is_validated_published_and_classified(api: tuple[str, Settings]) -> None:
    url, settings = api
    doctor = _auth(add_user(settings, "d-a", "school_doctor", schools=["SA01"]))
    counsellor = _auth(add_user(settings, "c-a", "counsellor", schools=["SA01"]))
    secret = settings.student_key_secret.get_secret_value().encode()
    add_school_and_student(settings, school_id="SA01", name="Test pupil", student_number="G110101201003070011",
                           student_key=student_key(secret, "G110101201003070011"), sex="female",
                           birth_date="2011-03-07")
    row: dict[str, Any] = {"school_id": "SA01", "student_number": "G110101201003070011", "sex": "female",
           "birth_date": "2011-03-07", "answered_on": datetime.now(UTC).date().isoformat(), "instrument": "phq-a",
           "instrument_version": "1", "answers": [1, 1, 1, 1, 0, 0, 0, 0, 1]}
    response = httpx.post(f"{url}/screenings", headers=doctor, json={"kind": "survey", "row": row})
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["classification"]["total"], body["classification"]["band"]) == (5, "mild")
    assert body["alerts"] == [{"concern": "self_harm", "priority": "urgent", "team": "counselling",
                               "rule_id": "phq-item9-self-harm", "rule_version": 1}]

    consumer = KafkaConsumer(settings.topic(PSYCH_SURVEYS), bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000)
    messages = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert [m["event_id"] for m in messages] == [body["event_id"]]
    expected_key = student_key(settings.student_key_secret.get_secret_value().encode(), row["student_number"])
    assert messages[0]["student_key"] == expected_key and messages[0]["submitted_by"] == "d-a"
    assert row["student_number"] not in json.dumps(messages[0])

    bad = httpx.post(f"{url}/screenings", headers=doctor, json={"kind": "survey", "row": row | {"answers": [9] * 9}})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "answers"
    missing = {k: v for k, v in row.items() if k != "sex"}
    assert httpx.post(f"{url}/screenings", headers=doctor, json={"kind": "survey", "row": missing}).json()[
        "detail"]["code"] == "wrong_columns"
    assert httpx.post(f"{url}/screenings", headers=doctor, json={"kind": "x", "row": row}).status_code == 422
    other = httpx.post(f"{url}/screenings", headers=doctor, json={"kind": "survey", "row": row | {"school_id": "SB01"}})
    assert other.status_code == 403
    assert httpx.post(f"{url}/screenings", headers=counsellor, json={"kind": "survey", "row": row}).status_code == 403
    assert httpx.post(f"{url}/screenings", json={"kind": "survey", "row": row}).status_code == 401


def test_health_endpoint_and_openapi_need_no_token(api: tuple[str, Settings]) -> None:
    url, settings = api
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert {"/alerts", "/alerts/feed", "/alerts/{alert_id}/resolve", "/screenings"} <= set(paths)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert conn.execute("SELECT count(*) FROM audit.psych_reads").fetchone() == (0,)
