"""A self-harm answer through Kafka, the worker and the alert service into the right counsellor's queue.

Real broker, real database, real worker and alert-service processes, the API served by uvicorn.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer
from psycopg import sql

from models.codecs import encode_event
from models.rules import decode_alert_messages
from models.topics import BMI_SCREENINGS, INTERVENTION_ALERTS, PSYCH_SURVEYS
from services.access.session import api_role
from services.access.users import add_user, hash_token
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests import factories
from tests.integration.conftest import WorkerProcess, count, wait_for
from tests.processes import ChildProcess

pytestmark = pytest.mark.integration


class AlertService(ChildProcess):
    """A real `schoolhealth alerts serve` process."""

    def __init__(self, settings: Settings, log: Path, *, sweep_interval: float = 3600.0,
                 fast_lane: bool = True) -> None:
        super().__init__(settings, log, ["alerts", "serve", "--sweep-interval", str(sweep_interval),
                                         "--fast-lane" if fast_lane else "--no-fast-lane"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        return super().stop(sig, timeout)


@pytest.fixture
def alert_service(isolated: Settings, tmp_path: Path) -> Iterator[AlertService]:
    service = AlertService(isolated, tmp_path / "alerts.log")
    yield service
    service.stop()


def rows_as(settings: Settings, token: str, query: str) -> list[tuple[Any, ...]]:
    """Query the database directly under the API's per-request role, as the token's user."""
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(api_role(settings))))
        conn.execute("SELECT set_config('schoolhealth.token_sha256', %s, false)", (hash_token(token),))
        return conn.execute(query.encode()).fetchall()


class FeedReader(threading.Thread):
    """Reads the SSE feed of one user into a list of (arrival time, alert JSON)."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.connected = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.stream("GET", f"{self.url}/alerts/feed", headers=headers,
                          timeout=httpx.Timeout(10.0, read=None)) as response:
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                if line.startswith("data: "):
                    self.events.append((time.monotonic(), json.loads(line[6:])))
                if self.stop.is_set():
                    return


def test_self_harm_survey_reaches_the_right_counsellor_only(
        isolated: Settings, start_worker: Callable[[], WorkerProcess], alert_service: AlertService) -> None:
    settings = isolated
    counsellor_a = add_user(settings, "c-a", "counsellor", schools=["SA01"])
    counsellor_b = add_user(settings, "c-b", "counsellor", schools=["SB01"])
    doctor_a = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    office = add_user(settings, "ho-1", "health_office")
    worker = start_worker()
    with serve_in_thread(create_api(settings)) as url:
        feed = FeedReader(url, counsellor_a)
        feed.start()
        assert feed.connected.wait(20), "the live feed did not connect"

        at_risk = factories.survey(1, school="SA01", answers=[0, 0, 0, 0, 0, 0, 0, 0, 1])
        calm = factories.survey(2, school="SB01", answers=[1, 0, 0, 0, 0, 0, 0, 0, 0])
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        for event in (at_risk, calm):
            producer.send(settings.topic(PSYCH_SURVEYS), key=event.school_id.encode(), value=encode_event(event))
        producer.flush()
        producer.close()

        as_a = {"Authorization": f"Bearer {counsellor_a}"}

        def in_queue() -> bool:
            response = httpx.get(f"{url}/alerts", headers=as_a, timeout=10)
            return response.status_code == 200 and len(response.json()) == 1

        wait_for(in_queue, timeout=90, what="the alert in counsellor A's queue", workers=[worker])
        [alert] = httpx.get(f"{url}/alerts", headers=as_a).json()
        assert (alert["student_key"], alert["school_id"], alert["concern"], alert["priority"], alert["team"],
                alert["state"]) == (at_risk.student_key, "SA01", "self_harm", "urgent", "counselling", "open")

        wait_for(lambda: any(e["alert_id"] == alert["alert_id"] for _, e in feed.events), timeout=10,
                 what="the alert on the live feed")
        feed.stop.set()

        # The fast lane may show the alert before the worker has archived the survey itself.
        wait_for(lambda: count(settings, "SELECT count(*) FROM archive.survey_results") == 2, timeout=60,
                 what="both surveys archived", workers=[worker])
        detail = httpx.get(f"{url}/alerts/{alert['alert_id']}", headers=as_a).json()
        assert detail["evidence"]["item"] == 9 and detail["evidence"]["answer"] == 1
        assert [s["instrument"] for s in detail["history"]["surveys"]] == ["phq-a"]

        # Another school's counsellor, and the school doctor of the same school, get nothing.
        for token in (counsellor_b, doctor_a):
            other = {"Authorization": f"Bearer {token}"}
            assert httpx.get(f"{url}/alerts", headers=other).json() == []
            assert httpx.get(f"{url}/alerts/{alert['alert_id']}", headers=other).status_code == 404
        # The health office sees no individual record, only counts.
        as_office = {"Authorization": f"Bearer {office}"}
        assert httpx.get(f"{url}/alerts", headers=as_office).status_code == 403
        summary = httpx.get(f"{url}/summary", headers=as_office).json()
        # One alert: a count from 1 to 9, withheld from the office (migration 0042).
        assert [(row["school_id"], row["urgent"], row["open_total"]) for row in summary] == [("SA01", None, None)]
        assert "student_key" not in summary[0]

        # Unauthenticated or with a wrong token: 401.
        assert httpx.get(f"{url}/alerts").status_code == 401
        assert httpx.get(f"{url}/alerts", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(f"{url}/alerts/feed").status_code == 401

    # The worker produced the same alert to intervention-alerts (no name in it); the service's fast
    # lane and the worker's message are one alert, applied once.
    consumer = KafkaConsumer(settings.topic(INTERVENTION_ALERTS), bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    produced = [alert for m in consumer for alert in decode_alert_messages(m.value)[0]]
    consumer.close()
    assert [(a.student_key, a.concern, a.rule_id) for a in produced] == [
        (at_risk.student_key, "self_harm", "phq-item9-self-harm")]
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert conn.execute("SELECT count(*) FROM alerts.applied_events").fetchone() == (1,)
        assert conn.execute("SELECT alert_id FROM alerts.applied_events").fetchone() == (produced[0].alert_event_id,)

    # The same holds in the database itself, under the per-request role: the scoped view answers,
    # and the measurement table itself (a hypertable where TimescaleDB exists) is not readable at all.
    everything = ("SELECT (SELECT count(*) FROM alerts.alerts), (SELECT count(*) FROM archive.survey_current),"
                  " (SELECT count(*) FROM alerts.transitions)")
    assert rows_as(settings, counsellor_a, everything) == [(1, 1, 1)]
    assert rows_as(settings, counsellor_b, everything) == [(0, 1, 0)]
    assert rows_as(settings, doctor_a, everything) == [(0, 0, 0)]
    assert rows_as(settings, office, everything) == [(0, 0, 0)]
    assert rows_as(settings, "not-a-token", everything) == [(0, 0, 0)]
    for token in (counsellor_a, office):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rows_as(settings, token, "SELECT count(*) FROM archive.survey_results")

    # Counsellor A's reads of psychological data are audited, and the audit cannot be changed.
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        audited = conn.execute("SELECT user_id, what FROM audit.psych_reads ORDER BY id").fetchall()
    assert {what for user, what in audited if user == "c-a"} >= {"queue", "feed", "alert_detail"}
    assert {user for user, _ in audited} == {"c-a"}
    for statement in ("UPDATE audit.psych_reads SET user_id = 'x'", "DELETE FROM audit.psych_reads"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rows_as(settings, counsellor_a, statement)
    with psycopg.connect(settings.pg_dsn("admin")) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM audit.psych_reads")


def test_worker_path_alone_delivers_alerts(
        isolated: Settings, start_worker: Callable[[], WorkerProcess], tmp_path: Path) -> None:
    """Without the fast lane the alert comes through the worker and intervention-alerts only."""
    settings = isolated
    service = AlertService(settings, tmp_path / "alerts-worker-path.log", fast_lane=False)
    try:
        worker = start_worker()
        event = factories.bmi(5, school="SA01", height_cm=140.0, weight_kg=60.0, age_months=130.0)
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        producer.send(settings.topic(BMI_SCREENINGS), key=b"SA01", value=encode_event(event))
        producer.flush()
        producer.close()
        query = "SELECT count(*) FROM alerts.alerts WHERE concern = 'obesity' AND team = 'school_doctor'"
        wait_for(lambda: count(settings, query) == 1, timeout=90, what="the obesity alert", workers=[worker])
    finally:
        service.stop()
