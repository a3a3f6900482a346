"""A single screening submitted while Kafka does not answer: 503, the client may retry as is,
nothing is stored, and the API (its producer adapter) stays usable."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from models.identity import student_key
from services.access.users import add_user
from services.platform.network import free_port
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.e2e.conftest import add_school_and_student

pytestmark = pytest.mark.integration

NUMBER = "G110101201403070011"


def test_a_submission_kafka_does_not_take_is_refused_with_503_and_stores_nothing(isolated: Settings) -> None:
    secret = isolated.student_key_secret.get_secret_value().encode()
    add_school_and_student(isolated, school_id="SA01", name="Pupil", student_key=student_key(secret, NUMBER),
                           student_number=NUMBER, sex="male", birth_date="2014-03-07")
    token = add_user(isolated, "doc-1", "school_doctor", schools=["SA01"])
    no_kafka = isolated.model_copy(update={"kafka_port": free_port()})
    body = {"kind": "bmi", "row": {"school_id": "SA01", "student_number": NUMBER, "sex": "male",
                                   "birth_date": "2014-03-07", "measured_on": datetime.now(UTC).date().isoformat(),
                                   "height_cm": 140.0, "weight_kg": 35.0, "screener": "d-a"}}
    with serve_in_thread(create_api(no_kafka)) as url:
        refused = httpx.post(f"{url}/screenings", json=body, headers={"Authorization": f"Bearer {token}"},
                             timeout=90)
        assert refused.status_code == 503, refused.text
        assert "retry later" in refused.json()["detail"]
        assert "Traceback" not in refused.text
        # The API still answers what needs no Kafka.
        assert httpx.get(f"{url}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        assert conn.execute("SELECT count(*) FROM archive.growth_screenings").fetchone() == (0,)
