"""The local stack: a real Apache Kafka broker and a real PostgreSQL, no mocks."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from services.devtools.stack import Stack
from services.platform.settings import Settings

pytestmark = pytest.mark.integration


def _create_topic(settings: Settings, name: str, partitions: int = 2) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


def test_status_reports_both_components_running(stack: Settings) -> None:
    statuses = {component.name: component for component in Stack(stack).status()}
    assert statuses["kafka"].running, statuses["kafka"].detail
    assert "Apache Kafka 4." in statuses["kafka"].detail
    assert statuses["postgresql"].running, statuses["postgresql"].detail
    assert "TimescaleDB" in statuses["postgresql"].detail


def test_second_up_is_idempotent(stack: Settings) -> None:
    Stack(stack).up()
    assert all(component.running for component in Stack(stack).status())


def test_round_trip_with_kafka_python(stack: Settings, unique: str) -> None:
    topic = f"test-roundtrip-sync-{unique}"
    _create_topic(stack, topic)
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    sent = [{"n": n, "school_id": f"S{n % 3}"} for n in range(20)]
    for message in sent:
        producer.send(topic, key=str(message["school_id"]).encode(), value=json.dumps(message).encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=stack.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000,
                             group_id=f"g-{unique}")
    received = [json.loads(record.value) for record in consumer]
    consumer.close()
    assert sorted(received, key=lambda m: m["n"]) == sent


def test_round_trip_with_aiokafka(stack: Settings, unique: str) -> None:
    topic = f"test-roundtrip-async-{unique}"
    _create_topic(stack, topic)

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for n in range(10):
                await producer.send_and_wait(topic, f"event-{n}".encode(), key=b"school-1")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=stack.kafka_bootstrap,
                                    auto_offset_reset="earliest", group_id=f"g-{unique}")
        await consumer.start()
        values: list[bytes] = []
        try:
            while len(values) < 10:
                batch = await consumer.getmany(timeout_ms=10000)
                if not batch:
                    break
                for records in batch.values():
                    values.extend(record.value for record in records if record.value is not None)
        finally:
            await consumer.stop()
        return values

    values = asyncio.run(run())
    # One key, so one partition: order is kept.
    assert values == [f"event-{n}".encode() for n in range(10)]


def test_write_and_read_through_psycopg(stack: Settings, unique: str) -> None:
    table = f"roundtrip_{unique}"
    with psycopg.connect(stack.pg_dsn("admin")) as conn:
        conn.execute(f"CREATE TEMP TABLE {table} (id int PRIMARY KEY, note text)")
        with conn.cursor().copy(f"COPY {table} (id, note) FROM STDIN") as copy:
            for n in range(100):
                copy.write_row((n, f"row {n}"))
        row = conn.execute(f"SELECT count(*), sum(id), max(note) FROM {table}").fetchone()
    assert row == (100, sum(range(100)), "row 99")


def test_app_role_cannot_create_objects(stack: Settings) -> None:
    with psycopg.connect(stack.pg_dsn("app")) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE public.should_not_exist (id int)")
