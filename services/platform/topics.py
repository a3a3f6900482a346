"""Creating the Kafka topics explicitly (the broker has auto-creation off)."""

from __future__ import annotations

from models.topics import TOPICS
from services.platform.kafka import KafkaAdmin, NewTopicSpec
from services.platform.kafka_limits import MESSAGE_MAX_BYTES
from services.platform.kafka_security import apply_users_and_acls
from services.platform.settings import Settings


def create_topics(settings: Settings) -> dict[str, int]:
    """Create every topic that does not exist yet; return {name: partitions} of all of them.

    Signs in as the Kafka admin; with SASL it also creates the services' SCRAM users and ACLs
    (`services.platform.kafka_security`), so it is the deployment's Kafka init step.
    """
    with KafkaAdmin(settings) as admin:
        existing = admin.topics()
        wanted = [
            NewTopicSpec(
                name=settings.topic(spec.name),
                partitions=spec.partitions or settings.topic_partitions,
                configs={
                    "retention.ms": str(spec.retention_days * 86_400_000),
                    "max.message.bytes": str(MESSAGE_MAX_BYTES),
                },
            )
            for spec in TOPICS
        ]
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            # Another process may create them in between: that is fine.
            admin.create_topics(missing)
        counts = admin.partition_counts([topic.name for topic in wanted])
        if settings.kafka_sasl:
            apply_users_and_acls(settings)
        return counts


def consumer_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Messages on `topics` not yet committed by consumer `group` (the whole backlog if it has none)."""
    with KafkaAdmin(settings) as admin:
        committed = admin.committed_offsets(group)
        ends = admin.end_offsets(topics)
    return sum(max(0, end - committed.get(partition, 0)) for partition, end in ends.items())
