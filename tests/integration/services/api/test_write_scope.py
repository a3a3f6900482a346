"""Writes scoped like reads, decided by the database: a user submits for a student only at the
school where the student is enrolled and only if they serve it; a move is an explicit transfer,
audited. Every submission kind and every role, through the API and the upload page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from kafka import KafkaConsumer

from models.identity import student_key
from models.topics import TOPIC_FOR_FAMILY
from services.access.users import add_user
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.e2e.conftest import add_school_and_student
from tests.integration.web_client import signed_in

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date().isoformat()
OWN = "G110101201403070011"      # enrolled at SA01
OTHER = "G110101201403070022"    # enrolled at SB01
UNKNOWN = "G110101201403070033"  # enrolled nowhere
FAMILY = {"records": "health-record", "vision": "vision-screening", "bmi": "bmi-screening", "survey": "psych-survey"}


def row(kind: str, school: str, number: str, **extra: Any) -> dict[str, Any]:
    common: dict[str, Any] = {"school_id": school, "student_number": number, "sex": "male", "birth_date": "2014-03-07"}
    by_kind: dict[str, dict[str, Any]] = {
        "records": {"county_id": "C01", "grade": 5, "action": "update", "effective_on": TODAY, "to_school_id": "",
                    "boarding": False, "left_behind": True, "disability": True},
        "vision": {"measured_on": TODAY, "ucva_right": 4.9, "ucva_left": 4.8, "se_right": -1.0, "se_left": -1.25,
                   "wears_glasses": False, "screener": "d-a"},
        "bmi": {"measured_on": TODAY, "height_cm": 140.0, "weight_kg": 35.0, "screener": "d-a"},
        "survey": {"answered_on": TODAY, "instrument": "phq-a", "instrument_version": "1",
                   "answers": [3, 3, 3, 3, 3, 3, 3, 3, 3]},
    }
    return {**common, **by_kind[kind], **extra}


@pytest.fixture
def api(isolated: Settings) -> Iterator[tuple[str, Settings]]:
    secret = isolated.student_key_secret.get_secret_value().encode()
    for school, number in (("SA01", OWN), ("SB01", OTHER)):
        add_school_and_student(isolated, school_id=school, name=f"Pupil {school}",
                               student_key=student_key(secret, number), student_number=number, sex="male",
                               birth_date="2014-03-07")
    with serve_in_thread(create_api(isolated)) as url:
        yield url, isolated


def _published(settings: Settings, kind: str) -> int:
    consumer = KafkaConsumer(settings.topic(TOPIC_FOR_FAMILY[FAMILY[kind]]), bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000, enable_auto_commit=False)
    try:
        return sum(1 for _ in consumer)
    finally:
        consumer.close()


@pytest.mark.parametrize("kind", ["records", "vision", "bmi", "survey"])
def test_each_kind_and_role_writes_only_for_its_own_enrolled_students(api: tuple[str, Settings], kind: str) -> None:
    url, settings = api
    tokens = {"school_doctor": add_user(settings, "d-a", "school_doctor", schools=["SA01"]),
              "device": add_user(settings, "dev-a", "device", schools=["SA01"]),
              "admin": add_user(settings, "adm", "admin"),
              "counsellor": add_user(settings, "c-a", "counsellor", schools=["SA01"])}

    def submit(role: str, school: str, number: str, **extra: Any) -> httpx.Response:
        return httpx.post(f"{url}/screenings", headers={"Authorization": f"Bearer {tokens[role]}"},
                          json={"kind": kind, "row": row(kind, school, number, **extra)}, timeout=30)

    def refused(response: httpx.Response) -> str:
        assert response.status_code == 403, response.text
        detail = response.json()["detail"]
        return str(detail["code"] if isinstance(detail, dict) else detail)

    accepted = 0
    for role in ("school_doctor", "device"):
        response = submit(role, "SA01", OWN)
        assert response.status_code == 202, response.text
        accepted += 1
        assert refused(submit(role, "SA01", OTHER)) == "enrolled_elsewhere"  # B's pupil claimed for A
        assert "you do not serve" in refused(submit(role, "SB01", OTHER))
        assert refused(submit(role, "SA01", UNKNOWN)) == "not_enrolled"
    assert "counsellor role may not" in refused(submit("counsellor", "SA01", OWN))
    assert refused(submit("admin", "SA01", OTHER)) == "enrolled_elsewhere"
    assert submit("admin", "SB01", OTHER).status_code == 202
    accepted += 1
    assert _published(settings, kind) == accepted


def test_registration_and_transfers(api: tuple[str, Settings]) -> None:
    url, settings = api
    doctor_a = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    doctor_b = add_user(settings, "d-b", "school_doctor", schools=["SB01"])
    admin = add_user(settings, "adm", "admin")

    def submit(token: str, school: str, number: str, **extra: Any) -> httpx.Response:
        return httpx.post(f"{url}/screenings", headers={"Authorization": f"Bearer {token}"},
                          json={"kind": "records", "row": row("records", school, number, **extra)}, timeout=30)

    # A new pupil, enrolled nowhere, can be registered at one's own school.
    assert submit(doctor_a, "SA01", UNKNOWN, action="register").status_code == 202
    # School A cannot move B's pupil to itself, neither as an update nor as a transfer.
    assert submit(doctor_a, "SA01", OTHER, action="transfer", to_school_id="SA02").status_code == 403
    assert submit(doctor_a, "SB01", OTHER, action="transfer", to_school_id="SA01").status_code == 403
    # B's own doctor, and the administrator, can record the move explicitly; both are audited.
    assert submit(doctor_b, "SB01", OTHER, action="transfer", to_school_id="SA01").status_code == 202
    assert submit(admin, "SA01", OTHER, action="transfer", to_school_id="SA02").status_code == 202
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        audited = conn.execute("SELECT user_id, enrolled_school_id, school_id, to_school_id FROM audit.transfers"
                               " ORDER BY id").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM audit.transfers")
    assert audited == [("d-b", "SB01", "SB01", "SA01"), ("adm", "SB01", "SA01", "SA02")]


def test_the_upload_page_rejects_rows_of_other_schools_pupils(api: tuple[str, Settings], tmp_path: Path) -> None:
    url, settings = api
    token = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    header = "school_id,student_number,sex,birth_date,measured_on,height_cm,weight_kg,screener"
    lines = [header] + [f"SA01,{number},male,2014-03-07,{TODAY},140.0,35.0,d-a" for number in (OWN, OTHER, UNKNOWN)]
    with signed_in(url, token) as client:
        csrf = client.csrf("/web/doctor/import")
        preview = client.post("/web/doctor/import", data={"kind": "bmi", "csrf": csrf},
                              files={"file": ("day.csv", ("\n".join(lines) + "\n").encode(), "text/csv")})
        assert preview.status_code == 200, preview.text[:2000]
        assert re.search(r'id="accepted-count">1<', preview.text)
        assert preview.text.count("该学生不在您负责的学校在籍") == 2
        upload_id = re.search(r"/web/doctor/import/([^/]+)/publish", preview.text)
        assert upload_id
        done = client.post(f"/web/doctor/import/{upload_id.group(1)}/publish",
                           data={"csrf": client.csrf("/web/doctor/import")})
        assert 'data-accepted="1" data-rejected="2"' in done.text
    assert _published(settings, "bmi") == 1
