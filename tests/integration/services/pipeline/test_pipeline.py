"""Events through the real broker into the real archive, with real worker processes."""

from __future__ import annotations

import json
import re
import signal
from base64 import b64decode
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from models.codecs import encode_batch, encode_event
from models.topics import BMI_SCREENINGS, DEAD_LETTERS, HEALTH_RECORDS, PSYCH_SURVEYS, VISION_SCREENINGS
from services.platform.settings import Settings
from services.platform.topics import consumer_lag
from tests import factories
from tests.integration.conftest import WorkerProcess, count, wait_for

pytestmark = pytest.mark.integration

MEASUREMENTS = ("SELECT (SELECT count(*) FROM archive.growth_screenings)"
                " + (SELECT count(*) FROM archive.vision_screenings)"
                " + (SELECT count(*) FROM archive.survey_results)")


def _producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
                         max_request_size=10 * 1024 * 1024)


def test_events_are_classified_into_the_archive_and_poison_is_dead_lettered(
        isolated: Settings, start_worker: Callable[[], WorkerProcess]) -> None:
    settings = isolated
    worker = start_worker()
    producer = _producer(settings)

    def send(topic: str, value: bytes, school: bytes = b"S001") -> None:
        producer.send(settings.topic(topic), key=school, value=value)

    send(BMI_SCREENINGS, encode_event(factories.bmi(1, height_cm=150.0, weight_kg=60.0, age_months=130.0)))
    send(VISION_SCREENINGS, encode_event(factories.vision(2)))
    send(PSYCH_SURVEYS, encode_event(factories.survey(3, answers=[0, 0, 0, 0, 0, 0, 0, 0, 2])))
    send(HEALTH_RECORDS, encode_event(factories.record(4)))
    send(BMI_SCREENINGS, encode_batch([factories.bmi(n) for n in range(10, 20)]))
    # Poison: not JSON, valid JSON of the wrong schema, oversize, wrong family for the topic,
    # and a batch with one impossible member.
    send(BMI_SCREENINGS, b"\x00\xffnot json at all")
    send(BMI_SCREENINGS, json.dumps({"schema": {"family": "bmi-screening", "version": 1}, "hello": 1}).encode())
    send(VISION_SCREENINGS, b'{"x": "' + b"a" * 9_000_000 + b'"}')
    send(BMI_SCREENINGS, encode_event(factories.vision(5)))
    bad_member = json.loads(encode_batch([factories.bmi(30), factories.bmi(31)]))
    bad_member["events"][1]["height_cm"] = 512.0
    send(BMI_SCREENINGS, json.dumps(bad_member).encode())
    # After the poison, good events on the same partition still get through.
    send(BMI_SCREENINGS, encode_event(factories.bmi(40)))
    producer.flush()

    letters = "SELECT count(*) FROM ops.dead_letters"
    wait_for(lambda: count(settings, MEASUREMENTS) == 15 and count(settings, letters) == 5,
             timeout=90, what="15 measurements and 5 dead letters", workers=[worker])
    assert count(settings, "SELECT count(*) FROM archive.students") == 1

    import psycopg

    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        growth = conn.execute(
            "SELECT bmi, bmi_for_age_z, wst586, who_category FROM archive.growth_screenings"
            " WHERE student_key = %s", (factories.key(1),)).fetchone()
        survey = conn.execute("SELECT total, band, safety_flags, item_answers FROM archive.survey_results").fetchone()
        reasons: dict[str, str] = dict(conn.execute("SELECT code, reason FROM ops.dead_letters").fetchall())
    assert growth is not None and survey is not None
    assert growth[0] == pytest.approx(60 / 1.5**2, rel=1e-5)
    assert growth[2] == "obesity"  # BMI 26.7 at 10.8 years is over the WS/T 586 obesity cut-off
    assert survey[0] == 2 and "self_harm_item9" in survey[2] and survey[3] == [0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert set(reasons) == {"not_json", "invalid_field", "too_large", "wrong_topic"}
    assert "height_cm" in " ".join(reasons.values())

    consumer = KafkaConsumer(settings.topic(DEAD_LETTERS), bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    published = [json.loads(record.value) for record in consumer]
    consumer.close()
    assert len(published) == 5
    not_json = next(letter for letter in published if letter["code"] == "not_json")
    assert b64decode(not_json["payload_base64"]) == b"\x00\xffnot json at all"
    assert not_json["topic"] == settings.topic(BMI_SCREENINGS) and not_json["offset"] >= 0


def test_sigkill_mid_stream_then_restart_stores_every_event_exactly_once(
        isolated: Settings, start_worker: Callable[[], WorkerProcess]) -> None:
    settings = isolated
    total = 30_000
    worker = start_worker()
    producer = _producer(settings)
    schools = [f"S{n:03d}".encode() for n in range(8)]
    for start in range(0, total, 500):
        events = [factories.bmi(n, school=schools[n % 8].decode()) for n in range(start, start + 500)]
        producer.send(settings.topic(BMI_SCREENINGS), key=schools[(start // 500) % 8], value=encode_batch(events))
    producer.flush()
    rows = "SELECT count(*) FROM archive.growth_screenings"
    wait_for(lambda: count(settings, rows) > 2_000, timeout=90, what="the first rows", workers=[worker])
    worker.kill(signal.SIGKILL)
    killed_at = count(settings, rows)
    assert killed_at < total, "the worker finished before it could be killed; raise the event count"
    restarted = start_worker()
    wait_for(lambda: count(settings, rows) >= total, timeout=180, what=f"{total} rows", workers=[restarted])
    # Once the group has committed every offset nothing can be delivered again: the count is final.
    topic = [settings.topic(BMI_SCREENINGS)]
    wait_for(lambda: consumer_lag(settings, settings.consumer_group, topic) == 0, timeout=90,
             what="every offset committed", workers=[restarted])
    assert count(settings, rows) == total
    assert count(settings, "SELECT count(DISTINCT event_id) FROM archive.growth_screenings") == total


def test_a_micro_batch_is_bounded_in_bytes_whatever_the_envelope_size(isolated: Settings, tmp_path: Path) -> None:
    """Large envelopes waiting in the topic: each batch the worker takes ends at its byte budget
    (at most the budget plus one message), not at its message count, and every event is stored once."""
    budget = 1024 * 1024
    settings = isolated.model_copy(update={"worker_batch_bytes": budget, "worker_batch_size": 40})
    producer = _producer(settings)
    envelopes = [encode_batch([factories.bmi(n, school="S001") for n in range(start, start + 1_500)])
                 for start in range(0, 12_000, 1_500)]
    largest = max(map(len, envelopes))
    assert largest > budget // 2, "envelopes too small to test the byte budget"
    for envelope in envelopes:
        producer.send(settings.topic(BMI_SCREENINGS), key=b"S001", value=envelope)
    producer.flush()
    # Started after the backlog is there: one message-count take would hold all 8 envelopes at once.
    worker = WorkerProcess(settings, tmp_path / "worker.log", environment={"SCHOOLHEALTH_DEBUG": "1"})
    try:
        rows = "SELECT count(*) FROM archive.growth_screenings"
        wait_for(lambda: count(settings, rows) == 12_000, timeout=120, what="12,000 rows", workers=[worker])
    finally:
        worker.stop()
    batches = [(int(messages), int(size)) for messages, size in
               re.findall(r"batch of (\d+) message\(s\), (\d+) bytes", worker.log.read_text(errors="replace"))]
    assert sum(messages for messages, _ in batches) == len(envelopes), batches
    assert len(batches) >= 4, batches
    assert all(size < budget + largest for _, size in batches), batches
    assert count(settings, "SELECT count(DISTINCT event_id) FROM archive.growth_screenings") == 12_000


# The PostgreSQL outage is in tests/faults/test_faults.py, on a throwaway cluster of its own:
# stopping the session's cluster would stop every other test using it.


def test_single_event_messages_share_a_micro_batch_up_to_the_message_cap(isolated: Settings, tmp_path: Path) -> None:
    """The single-event path (API, web, devices): a backlog of one-event messages is taken in
    batches of up to `worker_batch_size` messages (one transaction and one commit each), not 40
    at a time, and every event is stored once."""
    settings = isolated
    producer = _producer(settings)
    total = 600
    for n in range(total):
        producer.send(settings.topic(BMI_SCREENINGS), key=f"S{n % 3:03d}".encode(),
                      value=encode_event(factories.bmi(n, school=f"S{n % 3:03d}")))
    producer.flush()
    worker = WorkerProcess(settings, tmp_path / "worker.log", environment={"SCHOOLHEALTH_DEBUG": "1"})
    try:
        rows = "SELECT count(*) FROM archive.growth_screenings"
        wait_for(lambda: count(settings, rows) == total, timeout=120, what=f"{total} rows", workers=[worker])
    finally:
        worker.stop()
    sizes = [int(messages) for messages in
             re.findall(r"batch of (\d+) message\(s\)", worker.log.read_text(errors="replace"))]
    assert sum(sizes) == total, sizes
    assert max(sizes) > 40, sizes  # the former cap: 15 transactions at least for this backlog
    assert max(sizes) <= settings.worker_batch_size, sizes
    assert count(settings, "SELECT count(DISTINCT event_id) FROM archive.growth_screenings") == total
