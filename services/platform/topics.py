"""The Kafka init step: the topics, created explicitly (the broker has auto-creation off), and with
SASL the services' SCRAM users and ACLs (`services.platform.kafka_security.grants`)."""

from __future__ import annotations

import time

from models.topics import TOPICS
from services.platform.kafka import AclGrant, KafkaAdmin, NewTopicSpec, can_sign_in
from services.platform.kafka_limits import MESSAGE_MAX_BYTES
from services.platform.kafka_security import KafkaSecurityError, grants
from services.platform.settings import KAFKA_PRINCIPALS, Settings


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


def apply_users_and_acls(settings: Settings) -> int:
    """Create or update every service's SCRAM user and grant its ACLs, signed in as the admin.

    Returns how many ACL bindings were requested (creating an existing binding changes nothing).
    """
    credentials = [settings.kafka_credentials(principal) for principal in KAFKA_PRINCIPALS if principal != "admin"]
    acls = [AclGrant(user=settings.kafka_credentials(principal)[0], resource_type=kind, resource=name,
                     operation=operation)
            for principal, allowed in grants(settings).items() for kind, name, operation in allowed]
    with KafkaAdmin(settings) as admin:
        admin.upsert_scram_users(credentials, settings.kafka_sasl_mechanism)
        admin.create_acls(acls)
    _wait_until_each_service_signs_in(settings)
    return len(acls)


def _wait_until_each_service_signs_in(settings: Settings, timeout: float = 60.0) -> None:
    """The broker applies new SCRAM credentials from its metadata a moment after the controller
    accepted them: the init step is done only when every service's user can sign in."""
    deadline = time.monotonic() + timeout
    for principal in KAFKA_PRINCIPALS:
        while (reason := can_sign_in(settings, principal)) is not None:
            if time.monotonic() > deadline:
                user, _ = settings.kafka_credentials(principal)
                raise KafkaSecurityError(f"Kafka user {user} still cannot sign in ({reason})")
            time.sleep(0.5)
