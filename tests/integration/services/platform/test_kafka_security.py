"""Kafka with SASL/SCRAM and ACLs, on a broker of this test alone (the shared one stays PLAINTEXT).

The broker is the local stack's SASL option (`SCHOOLHEALTH_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`):
anonymous clients and wrong passwords are refused, the API's and the importer's principals may
publish a survey but not read `psych-surveys`, and the pipeline (a worker and the alert service,
each signed in as itself) takes a survey from the API to the archive and the alert queue.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError
from pydantic import SecretStr

from models.identity import student_key
from models.topics import PSYCH_SURVEYS
from services.access.users import add_user
from services.devtools.stack import Kafka
from services.platform.kafka import can_sign_in
from services.platform.kafka_security import client_options
from services.platform.settings import KAFKA_PRINCIPALS, KafkaPrincipal, Settings
from services.platform.topics import create_topics
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.e2e.conftest import add_school_and_student
from tests.faults.harness import alert_service
from tests.integration.conftest import WorkerProcess, count, wait_for

pytestmark = pytest.mark.integration

PUPIL = "G110101201403070011"
SELF_HARM = [1, 1, 1, 1, 1, 1, 1, 1, 2]  # PHQ-A item 9 answered: the fast lane's alert


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def secure(isolated: Settings) -> Iterator[Settings]:
    """A private SASL/SCRAM broker with ACLs, topics, users created as `schoolhealth topics create` does."""
    home = Path(tempfile.mkdtemp(prefix="schoolhealth-sasl-"))
    (home / "kafka-libs").symlink_to(isolated.state_dir / "kafka-libs")  # the jars already resolved
    passwords = {f"kafka_{principal}_password": secrets.token_urlsafe(24) for principal in KAFKA_PRINCIPALS}
    settings = isolated.model_copy(update={
        "state_dir": home, "kafka_port": _free_port(), "kafka_controller_port": _free_port(), "kafka_heap_mb": 384,
        "kafka_security_protocol": "SASL_PLAINTEXT", **{name: SecretStr(value) for name, value in passwords.items()}})
    broker = Kafka(settings)
    broker.up(timeout=120)
    try:
        create_topics(settings)
        yield settings
    finally:
        broker.down()
        shutil.rmtree(home, ignore_errors=True)


def _read(settings: Settings, principal: KafkaPrincipal | None, topic: str, **overrides: object) -> int:
    """Records of `topic` a client signed in as `principal` (None: anonymous) can read from the start."""
    options: dict[str, object] = ({"bootstrap_servers": settings.kafka_bootstrap} if principal is None
                                  else client_options(settings, principal))
    consumer = KafkaConsumer(**(options | overrides), group_id=None, enable_auto_commit=False,
                             request_timeout_ms=10000, bootstrap_timeout_ms=8000)
    try:
        partitions = [TopicPartition(settings.topic(topic), p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen += sum(len(records) for records in consumer.poll(timeout_ms=500).values())
        return seen
    finally:
        consumer.close()


def test_only_the_pipeline_reads_psych_surveys_and_it_works_end_to_end_with_sasl(
        secure: Settings, tmp_path: Path) -> None:
    settings = secure
    secret = settings.student_key_secret.get_secret_value().encode()
    add_school_and_student(settings, school_id="SA01", name="Pupil A", student_key=student_key(secret, PUPIL),
                           student_number=PUPIL, sex="male", birth_date="2014-03-07")
    token = add_user(settings, "d-a", "school_doctor", schools=["SA01"])
    survey = {"school_id": "SA01", "student_number": PUPIL, "sex": "male", "birth_date": "2014-03-07",
              "answered_on": datetime.now(UTC).date().isoformat(), "instrument": "phq-a",
              "instrument_version": "1", "answers": SELF_HARM}

    # The API publishes as its own principal.
    with serve_in_thread(create_api(settings)) as url:
        response = httpx.post(f"{url}/screenings", headers={"Authorization": f"Bearer {token}"},
                              json={"kind": "survey", "row": survey}, timeout=60)
    assert response.status_code == 202, response.text

    # Nobody outside the pipeline reads it back.
    # Anonymous, and a wrong password: the SASL listener drops the connection, nothing is read.
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        _read(settings, None, PSYCH_SURVEYS)
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        _read(settings, "worker", PSYCH_SURVEYS, sasl_plain_password="not-the-password")
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in Kafka(settings).log.read_text()
    # The adapter's sign-in check (the init step waits on it) says the same.
    assert can_sign_in(settings, "worker") is None
    refused = can_sign_in(settings.model_copy(update={"kafka_worker_password": SecretStr("not-the-password")}),
                          "worker")
    assert refused is not None and "Unable to bootstrap" in refused
    for outsider in ("api", "importer"):
        with pytest.raises(TopicAuthorizationFailedError):
            _read(settings, outsider, PSYCH_SURVEYS)
    # The pipeline's principals do read it.
    assert _read(settings, "worker", PSYCH_SURVEYS) == 1
    assert _read(settings, "alerts", PSYCH_SURVEYS) == 1
    # Writing is granted topic by topic: the worker cannot publish surveys, no service creates topics.
    producer = KafkaProducer(**client_options(settings, "worker"), acks="all", max_block_ms=10000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(settings.topic(PSYCH_SURVEYS), value=b"{}").get(timeout=20)
    finally:
        producer.close()
    admin = KafkaAdminClient(**client_options(settings, "api"), request_timeout_ms=10000)
    try:
        with pytest.raises(KafkaError, match="Authorization"):
            admin.create_topics([NewTopic(settings.topic("smuggled"), 1, 1)])
    finally:
        admin.close()

    # The pipeline end to end: the worker archives it, the alert service opens the self-harm alert.
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    alerts = alert_service(settings, tmp_path / "alerts.log")
    try:
        wait_for(lambda: count(settings, "SELECT count(*) FROM archive.survey_results") == 1, timeout=180,
                 what="the survey archived by a worker signed in with SCRAM", workers=[worker])
        wait_for(lambda: count(settings, "SELECT count(*) FROM alerts.alerts") >= 1, timeout=120,
                 what="the self-harm alert opened by the alert service signed in with SCRAM", workers=[worker])
        assert count(settings, "SELECT count(*) FROM ops.dead_letters") == 0
    finally:
        worker.kill(15)
        assert alerts.stop() == 0, alerts.tail()
    assert worker.process.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]
