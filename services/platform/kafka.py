"""Thin typed Kafka adapters for everything outside the faust wiring (`streams/` wires its own).

Producers:

- `KafkaPublisher` (kafka-python, synchronous): bulk publishing from the importer, the fitness
  sheets and the upload pages; idempotent, acks=all, errors surface on `flush`.
- `EventProducer` (aiokafka, asynchronous): single events from the API and the web pages; it is
  started once per process (a start that fails is closed and retried at the next request),
  waits for the broker's acknowledgement and retries transient errors.

Consumers and administration:

- `GroupConsumer` (aiokafka, asynchronous): a member of a consumer group whose offsets only the
  caller commits (the alert service: apply the batch, then commit).
- `read_topic` (kafka-python, synchronous): every record of a topic from a time to its end right
  now, outside any group (the delivery audit).
- `KafkaAdmin` (kafka-python): topics (create, delete), partition counts, a group's state and
  committed offsets, the topics' end offsets (topic creation, consumer lag, the benchmarks' setup
  and teardown), and with SASL the services' SCRAM users and ACLs (`AclGrant`).
- `can_sign_in`: whether a principal's credentials open a connection (the Kafka init step waits
  for each new SCRAM user).

The clients' errors the callers act on are translated: `BrokerUnavailable` (unreachable or timed
out: retry later) and `CommitLost` (the group rebalanced before the commit: another member gets
the records again). Records are the clients' own, read through the `Record` protocol.

All send or read raw bytes, signed in as their service's principal
(`services.platform.kafka_security`); the codecs are `models.codecs`, the limits
`services.platform.kafka_limits`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from services.platform.kafka_limits import MESSAGE_MAX_BYTES, PRODUCER_BATCH_BYTES
from services.platform.kafka_security import KafkaSecurityError, client_options
from services.platform.settings import KafkaPrincipal, Settings


class KafkaPublisher:
    """kafka-python producer: synchronous, idempotent, acks=all. Errors surface on flush."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaProducer

        self._settings = settings
        self._producer = KafkaProducer(
            **client_options(settings, "importer"), acks="all", linger_ms=20,
            max_request_size=MESSAGE_MAX_BYTES, batch_size=PRODUCER_BATCH_BYTES,
        )
        self._futures: list[Any] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self._futures.append(self._producer.send(self._settings.topic(topic), key=key, value=value))
        if len(self._futures) >= 200:
            self.flush()

    def flush(self) -> None:
        self._producer.flush()
        for future in self._futures:
            future.get(timeout=60)  # raises if the broker refused the message
        self._futures.clear()

    def close(self) -> None:
        self.flush()
        self._producer.close()


class EventProducer:
    """aiokafka producer for one event at a time: idempotent, acks=all, no linger.

    `start` is idempotent and safe to call from concurrent requests; `stop` closes it. A repeat
    after a lost acknowledgement is harmless: the worker stores one event per id, and an exact
    repeat changes nothing.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = asyncio.Lock()
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**client_options(self._settings, "api", library="aiokafka"),
                                            acks="all", enable_idempotence=True, linger_ms=0)
                try:
                    await producer.start()
                except BaseException:
                    # A producer that failed to start still holds its client: close it, and let the
                    # next request try again with a new one.
                    await producer.stop()
                    raise
                self._producer = producer

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce one message to `topic` (already prefixed) and wait for the broker's acknowledgement,
        retrying transient broker errors with backoff (the caller bounds the whole wait)."""
        from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

        await self.start()
        delay = 0.2
        while True:
            try:
                await self._producer.send_and_wait(topic, key=key, value=value)
                return
            except KafkaError as error:
                if not (isinstance(error, (KafkaConnectionError, KafkaTimeoutError))
                        or getattr(error, "retriable", False)):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def stop(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None


# --- consumers and administration ----------------------------------------------------------------


class Record(Protocol):
    """What the callers read of a consumed record (aiokafka's and kafka-python's records have it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class BrokerUnavailable(Exception):
    """The broker is unreachable or did not answer in time: try again later."""


class CommitLost(Exception):
    """The group rebalanced before the commit: the records will be delivered again, to some member."""


def _is_transient(error: BaseException) -> bool:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    return isinstance(error, (KafkaConnectionError, KafkaTimeoutError)) or bool(getattr(error, "retriable", False))


class GroupConsumer:
    """aiokafka consumer in group `group`: offsets are committed by `commit` only, never automatically.

    `topics` are full names (already prefixed). A group new to a partition starts at its earliest
    retained record.
    """

    def __init__(self, settings: Settings, principal: KafkaPrincipal, topics: Sequence[str], *, group: str,
                 partition_fetch_bytes: int, fetch_max_wait_ms: int = 50) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(
            *topics, **client_options(settings, principal, library="aiokafka"),
            group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms, max_partition_fetch_bytes=partition_fetch_bytes,
        )

    async def start(self) -> None:
        """Connect and join the group; `BrokerUnavailable` if the broker cannot be reached (start again)."""
        from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

        try:
            await self._consumer.start()
        except (KafkaConnectionError, KafkaTimeoutError) as error:
            raise BrokerUnavailable(type(error).__name__) from error

    async def poll(self, *, timeout_ms: int, max_records: int) -> list[Record]:
        """The next records (at most `max_records`, possibly none), in order within each partition."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return [record for records in batches.values() for record in records]

    async def commit(self) -> None:
        """Commit the offsets of every record polled so far.

        `CommitLost` if the group rebalanced meanwhile; `BrokerUnavailable` for a transient broker
        error (commit again); any other Kafka error is raised as it is.
        """
        from aiokafka.errors import CommitFailedError, KafkaError

        try:
            await self._consumer.commit()
        except CommitFailedError as error:
            raise CommitLost(str(error)) from error
        except KafkaError as error:
            if _is_transient(error):
                raise BrokerUnavailable(type(error).__name__) from error
            raise

    async def stop(self) -> None:
        await self._consumer.stop()


def read_topic(settings: Settings, topic: str, since: datetime | None = None, *,
               principal: KafkaPrincipal = "admin") -> Iterator[Record]:
    """Every record of `topic` (full name) from `since` (or the earliest retained) to its end right
    now, partition by partition in offset order within each; outside any consumer group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client_options(settings, principal), enable_auto_commit=False,
                             group_id=None, max_partition_fetch_bytes=MESSAGE_MAX_BYTES,
                             fetch_max_bytes=64 * 1024 * 1024, consumer_timeout_ms=10_000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        if since is not None:
            found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
            starts = {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in partitions}
        remaining = {tp for tp in partitions if starts[tp] < ends[tp]}
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        while remaining:
            polled = consumer.poll(timeout_ms=2000, max_records=2000)
            if not polled and all(consumer.position(tp) >= ends[tp] for tp in remaining):
                break
            for tp, records in polled.items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTopicSpec:
    """A topic to create: full name, partitions, and its topic-level configuration."""

    name: str
    partitions: int
    configs: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class AclGrant:
    """One ACL binding: `user` may do `operation` on the topic or group `resource` (from any host)."""

    user: str
    resource_type: Literal["TOPIC", "GROUP"]
    resource: str
    operation: Literal["READ", "WRITE"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupState:
    """A consumer group as the broker describes it: its state ("Stable", "Empty", ...) and member count."""

    state: str
    members: int


class KafkaAdmin:
    """kafka-python admin client (and, for end offsets, a group-less consumer); close it after use."""

    def __init__(self, settings: Settings, *, principal: KafkaPrincipal = "admin",
                 request_timeout_ms: int = 30000) -> None:
        self._settings = settings
        self._principal = principal
        self._admin = _admin_client(request_timeout_ms=request_timeout_ms, **client_options(settings, principal))
        self._consumer: Any = None

    def __enter__(self) -> KafkaAdmin:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def topics(self) -> set[str]:
        return set(self._admin.list_topics())

    def create_topics(self, topics: Sequence[NewTopicSpec]) -> None:
        """Create `topics` (replication factor 1); one created meanwhile by another process is fine."""
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        with contextlib.suppress(TopicAlreadyExistsError):
            self._admin.create_topics([NewTopic(t.name, t.partitions, 1, topic_configs=t.configs) for t in topics])

    def delete_topics(self, names: Sequence[str]) -> None:
        """Delete the topics `names` (full names); one already gone is fine."""
        from kafka.errors import UnknownTopicOrPartitionError

        if names:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                self._admin.delete_topics(list(names))

    def partition_counts(self, topics: Sequence[str]) -> dict[str, int]:
        return {topic["name"]: len(topic["partitions"]) for topic in self._admin.describe_topics(list(topics))}

    def group_state(self, group: str) -> GroupState:
        """The group's state and member count ("Dead" and 0 for a group the broker does not know)."""
        described = self._admin.describe_groups([group])
        # kafka-python 3 answers {group: {...}}; older versions a list of GroupInformation.
        info = described.get(group, {}) if isinstance(described, dict) else described[0]._asdict()
        return GroupState(state=str(info.get("group_state") or info.get("state") or "Dead"),
                          members=len(info.get("members") or ()))

    def committed_offsets(self, group: str) -> dict[tuple[str, int], int]:
        """{(topic, partition): next offset} committed by `group` (empty if it never committed)."""
        committed = self._admin.list_group_offsets(group)
        # kafka-python 3 answers {group: {partition: offset}}; older versions the inner mapping.
        if group in committed:
            committed = committed[group]
        return {(tp.topic, tp.partition): meta.offset for tp, meta in committed.items()
                if meta is not None and meta.offset >= 0}

    def end_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        """{(topic, partition): offset after the last record}, for every partition of `topics`."""
        from kafka import KafkaConsumer, TopicPartition

        if self._consumer is None:
            self._consumer = KafkaConsumer(**client_options(self._settings, self._principal))
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in sorted(self._consumer.partitions_for_topic(topic) or ())]
        return {(tp.topic, tp.partition): offset for tp, offset in self._consumer.end_offsets(partitions).items()}

    def upsert_scram_users(self, credentials: Sequence[tuple[str, str]], mechanism: str) -> None:
        """Create each (user, password) SCRAM credential for `mechanism`, or change its password.

        Raises `KafkaSecurityError` naming each user the broker refused.
        """
        from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

        kind = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}[mechanism]
        response = self._admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, kind, password) for user, password in credentials])
        # kafka-python answers {user: error message or None}.
        failures = {user: message for user, message in response.items() if message}
        if failures:
            raise KafkaSecurityError(f"creating SCRAM users failed: {failures}")

    def create_acls(self, grants: Sequence[AclGrant]) -> None:
        """Grant each ACL (an existing binding is left as it is); raises `KafkaSecurityError` saying how
        many the broker refused and why (e.g. SecurityDisabledError: the broker has no authorizer)."""
        from kafka.admin import ACL, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType

        acls = [ACL(principal=f"User:{grant.user}", host="*", operation=ACLOperation[grant.operation],
                    permission_type=ACLPermissionType.ALLOW,
                    resource_pattern=ResourcePattern(ResourceType[grant.resource_type], grant.resource))
                for grant in grants]
        # kafka-python answers {"succeeded": [acl, ...], "failed": [error class, ...]}.
        failed = self._admin.create_acls(acls).get("failed") or []
        if failed:
            reasons = ", ".join(sorted({getattr(error, "__name__", str(error)) for error in failed}))
            raise KafkaSecurityError(f"creating {len(failed)} of {len(acls)} ACLs failed: {reasons}")

    def close(self) -> None:
        try:
            if self._consumer is not None:
                self._consumer.close()
        finally:
            self._admin.close()


def _admin_client(**options: Any) -> Any:
    """A kafka-python admin client, bootstrapped. If the bootstrap fails, kafka-python 3.0 leaves
    the half-made client's sockets open and its I/O thread running: they are closed before the
    error goes on, so retrying callers (the init step, the stack's probe) leak nothing."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(**options)
    except BaseException:
        client, network = getattr(admin, "_client", None), getattr(admin, "_net", None)
        try:
            if client is not None:
                client.close()
        finally:
            if network is not None:
                network.stop()
        raise
    return admin


def can_sign_in(settings: Settings, principal: KafkaPrincipal, *, timeout_ms: int = 3000) -> str | None:
    """None if `principal` opens a connection to the broker, else the client's reason. kafka-python
    reports refused credentials as a bootstrap that timed out, so the two are not told apart."""
    from kafka.errors import KafkaError

    try:
        _admin_client(bootstrap_timeout_ms=timeout_ms, request_timeout_ms=10000,
                      **client_options(settings, principal)).close()
    except KafkaError as error:
        return f"{type(error).__name__}: {error}"
    return None
