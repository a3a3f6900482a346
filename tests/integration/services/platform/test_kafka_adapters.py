"""The typed Kafka consumer and admin adapters (`services.platform.kafka`) on the real broker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from models.topics import PSYCH_SURVEYS
from services.platform.kafka import (
    AclGrant,
    BrokerUnavailable,
    GroupConsumer,
    GroupState,
    KafkaAdmin,
    KafkaPublisher,
    NewTopicSpec,
    Record,
    can_sign_in,
    read_topic,
)
from services.platform.kafka_limits import PARTITION_FETCH_BYTES
from services.platform.kafka_security import KafkaSecurityError
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


def test_the_admin_creates_and_deletes_topics_and_describes_a_group(isolated: Settings) -> None:
    settings = isolated
    scratch = [settings.topic(f"scratch-{n}") for n in range(2)]
    with KafkaAdmin(settings) as admin:
        admin.create_topics([NewTopicSpec(name=name, partitions=2, configs={"retention.ms": "60000"})
                             for name in scratch])
        admin.create_topics([NewTopicSpec(name=scratch[0], partitions=2, configs={})])  # exists: fine
        deadline = time.monotonic() + 60
        while admin.partition_counts(scratch) != {name: 2 for name in scratch}:  # metadata catches up
            assert time.monotonic() < deadline, f"created topics not described: {admin.partition_counts(scratch)}"
            time.sleep(0.2)
        admin.delete_topics(scratch)
        while set(scratch) & admin.topics():  # the broker deletes in the background
            assert time.monotonic() < deadline, "the deleted topics are still listed after 60 s"
            time.sleep(0.2)
        admin.delete_topics(scratch)  # already gone: fine
        admin.delete_topics([])

    topic = settings.topic(PSYCH_SURVEYS)
    group = f"{settings.topic_prefix}state-test"
    _publish(settings, [b"one"])

    async def member() -> GroupState:
        consumer = GroupConsumer(settings, "alerts", [topic], group=group, partition_fetch_bytes=PARTITION_FETCH_BYTES)
        await consumer.start()
        try:
            await _poll_until(consumer, 1)
            with KafkaAdmin(settings) as admin:
                return admin.group_state(group)
        finally:
            await consumer.stop()

    assert asyncio.run(member()) == GroupState(state="Stable", members=1)
    with KafkaAdmin(settings) as admin:
        assert admin.group_state(group).members == 0  # the member left
        assert admin.group_state(f"{settings.topic_prefix}never-joined") == GroupState(state="Dead", members=0)


def test_sign_in_and_acl_refusals_come_back_as_reasons(isolated: Settings) -> None:
    """The shared broker is PLAINTEXT without an authorizer: every client signs in, no ACL can be made.
    The SASL broker of tests/integration/services/platform/test_kafka_security.py grants them and
    refuses a wrong password. (No closed port here: kafka-python 3.0 leaves a refused connection's
    socket to the garbage collector, which pytest reports as an unraisable ResourceWarning.)"""
    assert can_sign_in(isolated, "worker") is None
    grant = AclGrant(user="nobody", resource_type="TOPIC", resource=isolated.topic(PSYCH_SURVEYS), operation="READ")
    with KafkaAdmin(isolated) as admin, pytest.raises(KafkaSecurityError,
                                                      match="creating 1 of 1 ACLs failed: SecurityDisabledError"):
        admin.create_acls([grant])
