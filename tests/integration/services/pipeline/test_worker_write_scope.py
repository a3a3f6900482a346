"""The worker re-checks write scope (migration 0044): messages published straight to Kafka, past the
API's check, are stored only when their `submitted_by` may write them; the others are dead-lettered
as `submitter_not_allowed` with the reason, stored nowhere, and raise no alert (neither the worker's
nor the alert service's fast lane)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer

from models.codecs import encode_batch, encode_event
from models.contracts import Event
from models.rules import decode_alert_messages
from models.topics import HEALTH_RECORDS, INTERVENTION_ALERTS, PSYCH_SURVEYS
from services.access.users import add_user
from services.platform.kafka_security import client_options
from services.platform.settings import Settings
from tests import factories
from tests.e2e.conftest import add_school_and_student
from tests.faults.harness import alert_service
from tests.integration.conftest import WorkerProcess, count, wait_for

pytestmark = pytest.mark.integration

SELF_HARM = [1, 1, 1, 1, 1, 1, 1, 1, 2]
OWN, OTHER = 1, 2  # factories.key(n): enrolled at SA01 and SB01


def _produce(settings: Settings, topic: str, messages: list[bytes]) -> None:
    producer = KafkaProducer(**client_options(settings, "importer"), acks="all")
    try:
        for value in messages:
            producer.send(settings.topic(topic), key=b"SA01", value=value)
        producer.flush()
    finally:
        producer.close()


def _alert_sources(settings: Settings) -> set[UUID]:
    consumer = KafkaConsumer(settings.topic(INTERVENTION_ALERTS), **client_options(settings, "admin"),
                             auto_offset_reset="earliest", consumer_timeout_ms=5000, enable_auto_commit=False)
    try:
        return {alert.source_event_id for record in consumer for alert in decode_alert_messages(record.value)[0]}
    finally:
        consumer.close()


def test_the_worker_dead_letters_what_the_submitter_may_not_write(
        isolated: Settings, start_worker: Callable[[], WorkerProcess], tmp_path: Path) -> None:
    settings = isolated
    add_school_and_student(settings, school_id="SA01", name="Pupil A", student_key=factories.key(OWN),
                           student_number="G110101201403070011", sex="male", birth_date="2014-03-07")
    add_school_and_student(settings, school_id="SB01", name="Pupil B", student_key=factories.key(OTHER),
                           student_number="G110101201403070022", sex="male", birth_date="2014-03-07")
    add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    add_user(settings, "c-a", "counsellor", schools=["SA01"])
    add_user(settings, "adm", "admin")

    def survey(salt: str, school: str, student: int, by: str) -> Event:
        return factories.survey(student, school, answers=SELF_HARM, submitted_by=by,
                                event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"scope/{salt}")))

    allowed = [survey("own", "SA01", OWN, "d-a"),            # a doctor, for their own school's pupil
               survey("operator", "SB01", OTHER, "importer")]  # the operator's import: every school
    refused = {
        "enrolled_elsewhere": survey("claimed", "SA01", OTHER, "d-a"),  # B's pupil claimed for school A
        "not_your_school": survey("foreign", "SB01", OTHER, "d-a"),
        "role_may_not_submit": survey("counsellor", "SA01", OWN, "c-a"),
        "unknown_submitter": survey("ghost", "SA01", OWN, "ghost-7"),
    }
    # A doctor of A moving B's pupil to A by an update (the finding), and the admin's
    # explicit transfer, which is allowed.
    moved = factories.record(OTHER, "SA01", action="update", submitted_by="d-a", left_behind=True, disability=True)
    transfer = factories.record(OTHER, "SA01", action="transfer", submitted_by="adm", to_school_id="SB02")
    _produce(settings, PSYCH_SURVEYS, [encode_event(allowed[0]), encode_batch([allowed[1], *refused.values()]),
                                       encode_event(allowed[0])])  # and a redelivery of a stored event
    _produce(settings, HEALTH_RECORDS, [encode_event(moved)])

    worker = start_worker()
    alerts = alert_service(settings, tmp_path / "alerts.log")
    total = len(allowed) + len(refused) + 1
    wait_for(lambda: count(settings, "SELECT count(*) FROM archive.survey_results")
             + count(settings, "SELECT count(*) FROM ops.dead_letters") >= total, timeout=180,
             what="every event stored or dead-lettered", workers=[worker])
    _produce(settings, HEALTH_RECORDS, [encode_event(transfer)])  # after the refused move: B's pupil still at B
    wait_for(lambda: count(settings, "SELECT count(*) FROM archive.student_history") == 1, timeout=120,
             what="the admin's transfer stored", workers=[worker])

    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM archive.survey_results")}
        letters = conn.execute("SELECT code, reason, payload FROM ops.dead_letters ORDER BY id").fetchall()
        history = conn.execute("SELECT event_id FROM archive.student_history").fetchall()
    assert stored == {event.event_id for event in allowed}
    assert history == [(transfer.event_id,)]
    assert len(letters) == len(refused) + 1
    assert {code for code, _, _ in letters} == {"submitter_not_allowed"}
    by_event = {UUID(json.loads(bytes(payload))["event_id"]): reason for _, reason, payload in letters}
    for code, event in refused.items():
        assert code in by_event[event.event_id] and "未入库" in by_event[event.event_id]
    assert "enrolled_elsewhere" in by_event[moved.event_id]
    # The refused self-harm answers raised no alert; the stored ones did.
    wait_for(lambda: _alert_sources(settings) >= {event.event_id for event in allowed}, timeout=60,
             what="the stored surveys' alerts", workers=[worker])
    assert not _alert_sources(settings) & {event.event_id for event in refused.values()}
    # Nor did the alert service's fast lane, which reads the surveys themselves: one alert per
    # stored survey, at its own school, opened once.
    wait_for(lambda: count(settings, "SELECT count(*) FROM alerts.alerts") >= 2, timeout=60,
             what="the alert service's alerts", workers=[worker])
    assert alerts.stop() == 0, alerts.tail()
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        opened = set(conn.execute("SELECT school_id, occurrences, first_event_id, last_event_id FROM alerts.alerts"))
    assert opened == {(event.school_id, 1, event.event_id, event.event_id) for event in allowed}, alerts.tail()
