"""Creating the Kafka topics explicitly (the broker has auto-creation off)."""

from __future__ import annotations

import contextlib

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from models.topics import TOPICS
from services.platform.kafka_limits import MESSAGE_MAX_BYTES
from services.platform.kafka_security import apply_users_and_acls, client_options
from services.platform.settings import Settings


def create_topics(settings: Settings) -> dict[str, int]:
    """Create every topic that does not exist yet; return {name: partitions} of all of them.

    Signs in as the Kafka admin; with SASL it also creates the services' SCRAM users and ACLs
    (`services.platform.kafka_security`), so it is the deployment's Kafka init step.
    """
    admin = KafkaAdminClient(request_timeout_ms=30000, **client_options(settings, "admin"))
    try:
        existing = set(admin.list_topics())
        wanted = {
            settings.topic(spec.name): NewTopic(
                settings.topic(spec.name),
                spec.partitions or settings.topic_partitions,
                1,
                topic_configs={
                    "retention.ms": str(spec.retention_days * 86_400_000),
                    "max.message.bytes": str(MESSAGE_MAX_BYTES),
                },
            )
            for spec in TOPICS
        }
        missing = [topic for name, topic in wanted.items() if name not in existing]
        if missing:
            # Another process may create them in between: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        described = admin.describe_topics(list(wanted))
        if settings.kafka_sasl:
            apply_users_and_acls(settings)
        return {topic["name"]: len(topic["partitions"]) for topic in described}
    finally:
        admin.close()


def consumer_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Messages on `topics` not yet committed by consumer `group` (the whole backlog if it has none)."""
    from kafka import KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(**client_options(settings, "admin"))
    consumer = KafkaConsumer(**client_options(settings, "admin"))
    try:
        committed = admin.list_group_offsets(group)
        # kafka-python 3 answers {group: {partition: offset}}; older versions the inner mapping.
        if group in committed:
            committed = committed[group]
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
        lag = 0
        for tp in partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, ends[tp] - done)
        return lag
    finally:
        consumer.close()
        admin.close()
