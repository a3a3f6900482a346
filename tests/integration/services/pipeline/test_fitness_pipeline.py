"""Fitness tests through the real Kafka broker, a real worker process and PostgreSQL."""

from __future__ import annotations

import json
from base64 import b64decode
from collections.abc import Callable
from decimal import Decimal

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer

from models.codecs import encode_batch, encode_event
from models.topics import DEAD_LETTERS, FITNESS_TESTS
from services.platform.settings import Settings
from tests import factories
from tests.integration.conftest import WorkerProcess, count, wait_for

pytestmark = pytest.mark.integration


def test_fitness_tests_are_scored_into_the_archive_and_rejects_dead_lettered(
        isolated: Settings, start_worker: Callable[[], WorkerProcess]) -> None:
    settings = isolated
    worker = start_worker()
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    topic = settings.topic(FITNESS_TESTS)
    batch = [factories.fitness(n, sex="male" if n % 2 else "female") for n in range(10)]
    producer.send(topic, key=b"S001", value=encode_batch(batch))
    # A girl with the boys' 1000 m, a 50 m run in 3 s, and one test missing its 800 m.
    foreign = json.loads(encode_event(factories.fitness(20, sex="female")))
    foreign["run_1000m_s"] = 230.0
    producer.send(topic, key=b"S001", value=json.dumps(foreign).encode())
    too_fast = json.loads(encode_event(factories.fitness(21))) | {"run_50m_s": 3.0}
    producer.send(topic, key=b"S001", value=json.dumps(too_fast).encode())
    missing = json.loads(encode_event(factories.fitness(22, sex="female")))
    del missing["run_800m_s"]
    producer.send(topic, key=b"S001", value=json.dumps(missing).encode())
    # The same batch again (a producer retry): stored once.
    producer.send(topic, key=b"S001", value=encode_batch(batch))
    producer.flush()

    results, letters = "SELECT count(*) FROM archive.fitness_results", "SELECT count(*) FROM ops.dead_letters"
    wait_for(lambda: count(settings, results) == 11 and count(settings, letters) == 2,
             timeout=90, what="11 fitness results and 2 dead letters", workers=[worker])

    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        boy = conn.execute(
            "SELECT item_scores, bmi, bmi_score, standard_score, bonus, total, band, status, table_version,"
            " document_only_tables FROM archive.fitness_results WHERE student_key = %s", (factories.key(1),)).fetchone()
        incomplete = conn.execute(
            "SELECT status, run_800m_s, missing_items, total, band FROM archive.fitness_results"
            " WHERE student_key = %s", (factories.key(22),)).fetchone()
    assert boy is not None and incomplete is not None
    assert boy[0] == {"vital_capacity": 76, "run_50m": 78, "sit_and_reach": 76, "standing_long_jump": 80,
                      "pull_ups": 90, "run_1000m": 100}
    assert (boy[1], boy[2], boy[3], boy[4], boy[5], boy[6], boy[7]) == (
        Decimal("19.5"), 100, Decimal("86.60"), 1, Decimal("87.60"), "good", "complete")
    assert boy[8].startswith("nspfs-2014+") and boy[9] == ["standing_long_jump"]
    # Missing is missing: NULL, never 0, and no total.
    assert incomplete == ("incomplete", None, ["run_800m"], None, None)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        letters_stored = conn.execute(
            "SELECT code, item_index, reason FROM ops.dead_letters ORDER BY reason").fetchall()
    assert [(code, index) for code, index, _ in letters_stored] == [("invalid_field", -1)] * 2
    assert [reason for _, _, reason in letters_stored] == [
        "fitness-test.run_1000m_s: run_1000m is not tested in grade 8 (female); that grade's items are "
        "vital_capacity, run_50m, sit_and_reach, sit_ups_1min, standing_long_jump, run_800m",
        "fitness-test.run_50m_s: 3.0 outside 5.5..30",
    ]

    consumer = KafkaConsumer(settings.topic(DEAD_LETTERS), bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    published = [json.loads(record.value) for record in consumer]
    consumer.close()
    assert sorted(letter["code"] for letter in published) == ["invalid_field", "invalid_field"]
    assert all(letter["topic"] == topic for letter in published)
    assert json.loads(b64decode(published[0]["payload_base64"]))["schema"]["family"] == "fitness-test"


def test_fitness_results_are_a_hypertable_where_timescaledb_exists(isolated: Settings, backend: str) -> None:
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        timescale = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None
        found = conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables"
                             " WHERE hypertable_schema = 'archive' AND hypertable_name = 'fitness_results'"
                             ).fetchone() if timescale else None
        security = conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'archive.fitness_results'::regclass"
                                ).fetchone()
    assert timescale == (backend == "timescaledb")
    assert found == (("fitness_results",) if timescale else None)
    # Scoped by the security-barrier views instead (migration 0063), as TimescaleDB's columnstore requires.
    assert security == (False,)
