"""The typed Kafka consumer and admin adapters (`services.platform.kafka`) on the real broker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from models.topics import PSYCH_SURVEYS
from services.platform.kafka import (
    BrokerUnavailable,
    GroupConsumer,
    KafkaAdmin,
    KafkaPublisher,
    Record,
    read_topic,
)
from services.platform.kafka_limits import PARTITION_FETCH_BYTES
from services.platform.network import free_port
from services.platform.settings import Settings
from services.platform.topics import consumer_lag

pytestmark = pytest.mark.integration


def _publish(settings: Settings, values: list[bytes]) -> None:
    publisher = KafkaPublisher(settings)
    try:
        for n, value in enumerate(values):
            publisher.publish(PSYCH_SURVEYS, f"S{n % 3}".encode(), value)
    finally:
        publisher.close()


async def _poll_until(consumer: GroupConsumer, count: int) -> list[Record]:
    records: list[Record] = []
    async with asyncio.timeout(60):
        while len(records) < count:
            records += await consumer.poll(timeout_ms=200, max_records=100)
    return records


def test_a_group_consumer_commits_only_when_asked_and_a_new_member_resumes_there(isolated: Settings) -> None:
    settings = isolated
    topic = settings.topic(PSYCH_SURVEYS)
    group = f"{settings.topic_prefix}adapter-test"
    _publish(settings, [f"first-{n}".encode() for n in range(10)])

    async def first_member() -> list[bytes | None]:
        consumer = GroupConsumer(settings, "alerts", [topic], group=group, partition_fetch_bytes=PARTITION_FETCH_BYTES)
        await consumer.start()
        try:
            records = await _poll_until(consumer, 10)
            # Read but not committed: the group still owes all of them.
            assert consumer_lag(settings, group, [topic]) == 10
            await consumer.commit()
            assert consumer_lag(settings, group, [topic]) == 0
            return [record.value for record in records]
        finally:
            await consumer.stop()

    assert sorted(v or b"" for v in asyncio.run(first_member())) == sorted(f"first-{n}".encode() for n in range(10))
    _publish(settings, [f"second-{n}".encode() for n in range(3)])
    assert consumer_lag(settings, group, [topic]) == 3

    async def next_member() -> list[bytes | None]:
        consumer = GroupConsumer(settings, "alerts", [topic], group=group, partition_fetch_bytes=PARTITION_FETCH_BYTES)
        await consumer.start()
        try:
            records = await _poll_until(consumer, 3)
            # Nothing more arrives: the committed records are not delivered again.
            records += await consumer.poll(timeout_ms=1000, max_records=100)
            return [record.value for record in records]
        finally:
            await consumer.stop()

    assert sorted(v or b"" for v in asyncio.run(next_member())) == [b"second-0", b"second-1", b"second-2"]


def test_a_group_consumer_without_a_broker_says_so_at_start(isolated: Settings) -> None:
    no_kafka = isolated.model_copy(update={"kafka_port": free_port()})

    async def start() -> None:
        consumer = GroupConsumer(no_kafka, "alerts", [no_kafka.topic(PSYCH_SURVEYS)], group="nobody",
                                 partition_fetch_bytes=PARTITION_FETCH_BYTES)
        try:
            await consumer.start()
        finally:
            await consumer.stop()

    with pytest.raises(BrokerUnavailable):
        asyncio.run(start())


def test_read_topic_reads_from_a_time_to_the_end_and_the_admin_sees_offsets(isolated: Settings) -> None:
    settings = isolated
    topic = settings.topic(PSYCH_SURVEYS)
    _publish(settings, [f"old-{n}".encode() for n in range(4)])
    since = datetime.now(UTC)
    # Record timestamps have millisecond resolution: let the clock move past `since` first.
    while datetime.now(UTC) < since + timedelta(milliseconds=5):
        time.sleep(0.001)
    _publish(settings, [f"new-{n}".encode() for n in range(5)])

    assert sorted(r.value or b"" for r in read_topic(settings, topic)) == sorted(
        [f"old-{n}".encode() for n in range(4)] + [f"new-{n}".encode() for n in range(5)])
    assert sorted(r.value or b"" for r in read_topic(settings, topic, since)) == [
        f"new-{n}".encode() for n in range(5)]
    with KafkaAdmin(settings) as admin:
        assert topic in admin.topics()
        ends = admin.end_offsets([topic])
        assert sum(ends.values()) == 9
        assert len(ends) == admin.partition_counts([topic])[topic]
        assert admin.committed_offsets(f"{settings.topic_prefix}never-consumed") == {}
