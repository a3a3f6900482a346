"""The worker's batch handler: raw Kafka messages in, archive rows and dead letters out.

Order per batch (at-least-once): dead letters are produced and acknowledged by the broker, the
archive transaction commits, and only then does the agent let faust ack the batch's offsets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from base64 import b64encode
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from models.pipeline import ProcessedMessages, process_message
from models.rules import AlertCandidate, encode_alert_batch, evaluate_batch
from models.topics import INPUT_TOPICS
from services.archive import ArchiveWriter, DeadLetter
from services.settings import Settings

log = logging.getLogger(__name__)

# Dead letters keep the original bytes up to this size, plus the whole original's size and hash.
DEAD_LETTER_PAYLOAD_MAX = 1024 * 1024

SendDeadLetter = Callable[[bytes | None, bytes], Awaitable[None]]
# Produces (key, value) alert messages and returns once the broker has acknowledged all of them.
SendAlerts = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    value: bytes | None


def dead_letter_message(letter: DeadLetter) -> bytes:
    """The JSON published on the dead-letters topic: origin, reason and the original bytes."""
    return json.dumps({
        "topic": letter.topic, "partition": letter.partition, "offset": letter.offset,
        "item_index": letter.item_index, "code": letter.code, "reason": letter.reason,
        "school_id": letter.school_id, "payload_base64": b64encode(letter.payload).decode(),
        "payload_size": letter.payload_size, "payload_sha256": letter.payload_sha256,
        "payload_truncated": len(letter.payload) < letter.payload_size,
    }, separators=(",", ":")).encode()


class Ingestor:
    """Turns one micro-batch of raw messages into one archive write."""

    def __init__(self, settings: Settings, writer: ArchiveWriter,
                 send_dead_letter: SendDeadLetter | None = None) -> None:
        self._prefix = settings.topic_prefix
        self._writer = writer
        self.send_dead_letter = send_dead_letter
        self.send_alerts: SendAlerts | None = None
        self.accepted = 0
        self.alerts = 0
        self.rejected = 0

    def _family_of(self, topic: str) -> str | None:
        return INPUT_TOPICS.get(topic.removeprefix(self._prefix))

    async def handle(self, messages: Sequence[RawMessage]) -> ProcessedMessages:
        started = time.perf_counter()
        batch = ProcessedMessages()
        dead_letters: list[DeadLetter] = []
        for message in messages:
            before = len(batch.rejected)
            process_message(message.value or b"", expected_family=self._family_of(message.topic), out=batch)
            dead_letters.extend(
                DeadLetter(topic=message.topic, partition=message.partition, offset=message.offset,
                           item_index=r.item_index, code=r.code, reason=r.reason, school_id=r.school_id,
                           screener=r.screener, payload=r.payload[:DEAD_LETTER_PAYLOAD_MAX],
                           payload_size=len(r.payload), payload_sha256=hashlib.sha256(r.payload).hexdigest())
                for r in batch.rejected[before:]
            )
        if dead_letters:
            if self.send_dead_letter is None:
                raise RuntimeError("no dead-letter producer configured")
            for letter in dead_letters:
                key = letter.school_id.encode() if letter.school_id else None
                await self.send_dead_letter(key, dead_letter_message(letter))
            # Codes and counts only: a reason may quote a submitted value.
            log.info("dead-lettered %d event(s): %s", len(dead_letters),
                     sorted({letter.code for letter in dead_letters}))
        classified = time.perf_counter()
        await self._writer.write(batch, dead_letters)
        log.debug("batch of %d message(s): %d accepted, %d rejected; classify %.3fs, write %.3fs",
                  len(messages), batch.accepted, len(dead_letters), classified - started,
                  time.perf_counter() - classified)
        # Alerts go out after the archive commit and before the offsets are acked: a crash in
        # between redelivers the batch, and the alert service drops the repeated alert ids.
        if self.send_alerts is not None:
            alerts = evaluate_batch(batch)
            if alerts:
                by_school: dict[str, list[AlertCandidate]] = {}
                for alert in alerts:
                    by_school.setdefault(alert.school_id, []).append(alert)
                await self.send_alerts([(school.encode(), encode_alert_batch(group))
                                        for school, group in by_school.items()])
                self.alerts += len(alerts)
        self.accepted += batch.accepted
        self.rejected += len(dead_letters)
        return batch
