"""One event id, one stored event: repeats with other content, date or family are dead letters."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from models.codecs import encode_batch, encode_event
from models.topics import BMI_SCREENINGS, VISION_SCREENINGS
from services.pipeline.audit import audit_delivery
from services.platform.settings import Settings
from tests import factories
from tests.faults.harness import scalar, wait_for_lag_zero, worker

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_conflicting_duplicates_are_dead_lettered_and_exact_repeats_are_no_ops(
        isolated: Settings, tmp_path: Path) -> None:
    settings = isolated
    first = factories.bmi(1)
    same_id = str(first.event_id)
    other_date = factories.bmi(1, measured_on=str(first.measured_on - timedelta(days=3)))
    other_content = factories.bmi(1, weight_kg=36.5)
    other_family = factories.vision(7, event_id=same_id)
    twin_a, twin_b = factories.bmi(2), factories.bmi(2, height_cm=141.0)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")

    def send(topic: str, value: bytes) -> None:
        producer.send(settings.topic(topic), key=b"S001", value=value)

    send(BMI_SCREENINGS, encode_event(first))
    producer.flush()
    process = worker(settings, tmp_path / "worker.log")
    try:
        wait_for_lag_zero(settings, [process])
        send(BMI_SCREENINGS, encode_event(first))  # exact repeat: nothing happens
        send(BMI_SCREENINGS, encode_event(other_date))
        send(BMI_SCREENINGS, encode_batch([factories.bmi(3), other_content]))
        send(VISION_SCREENINGS, encode_event(other_family))
        send(BMI_SCREENINGS, encode_batch([twin_a, twin_b]))  # two contents under one id in one batch
        producer.flush()
        wait_for_lag_zero(settings, [process])
    finally:
        producer.close()
        assert process.stop() == 0

    assert scalar(settings, f"SELECT count(*) FROM archive.growth_screenings WHERE event_id = '{same_id}'") == 1
    assert scalar(settings, f"SELECT count(*) FROM archive.vision_screenings WHERE event_id = '{same_id}'") == 0
    assert scalar(settings, "SELECT count(*) FROM archive.growth_screenings WHERE weight_kg = 36.5") == 0
    assert scalar(settings, f"SELECT count(*) FROM archive.growth_screenings WHERE event_id = '{twin_a.event_id}'"
                            " AND height_cm = 140.0") == 1
    assert scalar(settings, "SELECT count(*) FROM archive.growth_screenings") == 3  # 1, 2 and 3
    import psycopg

    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        letters = conn.execute("SELECT topic, kafka_offset, item_index, reason FROM ops.dead_letters"
                               " WHERE code = 'conflicting_duplicate' ORDER BY topic, kafka_offset").fetchall()
    assert len(letters) == 4, letters
    # The id reused in another family: its own topic's dead letter (whether the first event was
    # already stored, or came earlier in the same batch).
    assert [letter[3] for letter in letters if letter[0].endswith(VISION_SCREENINGS)] != []
    by_topic = {a.topic.removeprefix(settings.topic_prefix): a for a in audit_delivery(settings)}
    assert (by_topic[BMI_SCREENINGS].conflicting, by_topic[BMI_SCREENINGS].missing) == (3, 0)
    assert (by_topic[VISION_SCREENINGS].conflicting, by_topic[VISION_SCREENINGS].missing) == (1, 0)
    assert by_topic[BMI_SCREENINGS].archived == 4  # the first event twice (its exact repeat), 3 and twin a
