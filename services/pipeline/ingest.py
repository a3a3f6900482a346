"""The worker's batch handler: raw Kafka messages in, archive rows, dead letters and alerts out.

`Checkpoint` owns the order in which one micro-batch becomes durable, as Quix Streams'
checkpoint does, and nothing else commits offsets:

1. the dead letters are produced and acknowledged by the broker,
2. the archive transaction (rows and the dead letters' table) commits,
3. the alerts the rules raised are produced and acknowledged by the broker,
4. only then are the batch's offsets committed (`commit_offsets`, the caller's adapter).

A crash anywhere before step 4 leaves the offsets where they were: the batch is delivered again,
and every step is idempotent (dead letters keyed by origin, archive rows by event id, alerts by
alert event id). An exception, a cancellation (SIGTERM during a batch, a rebalance) or a process
kill therefore never commits a batch that did not finish. Transient broker errors
(`BrokerUnavailable`, translated by the adapter) are retried with backoff inside the step, the
database's own outages inside the writer; anything else propagates, and the worker exits non-zero.

The per-message work (`prepare_message`) is a total function of the bytes: whatever a message
holds, it becomes accepted events or dead letters, never an exception that fails its batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from base64 import b64encode
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from models.contracts import same_event
from models.pipeline import OUTPUT_LISTS, ProcessedMessages, Rejection, locate_events, process_message
from models.rules import AlertCandidate, encode_alert_batch, evaluate_batch
from models.topics import INPUT_TOPICS
from services.pipeline.archive_writer import Conflict, DeadLetter, OnConflicts, OnRefusals, Refusal
from services.platform.settings import Settings

log = logging.getLogger(__name__)

# Dead letters keep the original bytes up to this size, plus the whole original's size and hash.
DEAD_LETTER_PAYLOAD_MAX = 1024 * 1024
CONFLICTING_DUPLICATE = "conflicting_duplicate"
SUBMITTER_NOT_ALLOWED = "submitter_not_allowed"
# auth.submission_refusal's codes, as a dead letter's reason says them.
_REFUSALS = {
    "unknown_submitter": "names no user (nor the operator's importer)",
    "role_may_not_submit": "has a role that may not submit records, screenings or surveys",
    "not_your_school": "does not serve that school",
    "not_enrolled": "submitted for a student enrolled nowhere (only a registration may)",
    "enrolled_elsewhere": "submitted for a student enrolled at another school",
}
# Text columns of a dead letter (reason, school, screener) are cut to this many characters.
_TEXT_MAX = 2000

# Produces (key, value) messages and returns once the broker has acknowledged all of them.
SendMessages = Callable[[Sequence[tuple[bytes | None, bytes]]], Awaitable[None]]
CommitOffsets = Callable[[], Awaitable[None]]


class BrokerUnavailable(Exception):
    """A transient broker error (timeout, connection, leader moving): the step is retried."""


class ArchivePort(Protocol):
    async def write(self, batch: ProcessedMessages, dead_letters: Sequence[DeadLetter], *,
                    on_conflicts: OnConflicts | None = None, on_refusals: OnRefusals | None = None) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    value: bytes | None


def safe_text(value: str, limit: int = _TEXT_MAX) -> str:
    """`value` as text PostgreSQL and UTF-8 accept: NUL and lone surrogates escaped, length cut."""
    text = value.replace("\x00", "\\u0000")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]


def dead_letter_message(letter: DeadLetter) -> bytes:
    """The JSON published on the dead-letters topic: origin, reason and the original bytes."""
    # ensure_ascii (the default) escapes anything outside ASCII, lone surrogates included.
    return json.dumps({
        "topic": letter.topic, "partition": letter.partition, "offset": letter.offset,
        "item_index": letter.item_index, "code": letter.code, "reason": letter.reason,
        "school_id": letter.school_id, "payload_base64": b64encode(letter.payload).decode(),
        "payload_size": letter.payload_size, "payload_sha256": letter.payload_sha256,
        "payload_truncated": len(letter.payload) < letter.payload_size,
    }, separators=(",", ":")).encode()


def dead_letter_of(message: RawMessage, rejection: Rejection) -> DeadLetter:
    """The dead letter of one rejection: safe text, the original bytes (cut at 1 MiB) and their hash."""
    payload = bytes(rejection.payload)
    return DeadLetter(
        topic=safe_text(message.topic), partition=message.partition, offset=message.offset,
        item_index=rejection.item_index, code=safe_text(rejection.code, 64), reason=safe_text(rejection.reason),
        school_id=safe_text(rejection.school_id, 64) if rejection.school_id else None,
        screener=safe_text(rejection.screener, 64) if rejection.screener else None,
        payload=payload[:DEAD_LETTER_PAYLOAD_MAX], payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest())


def dead_letter_record(letter: DeadLetter) -> tuple[bytes | None, bytes]:
    """(key, value) of a dead letter on its topic; keyed by school when the message named a valid one."""
    return (letter.school_id.encode("ascii", "backslashreplace") if letter.school_id else None,
            dead_letter_message(letter))


@dataclass(slots=True)
class PreparedBatch:
    """One (sub-)batch classified and ready to be made durable."""

    processed: ProcessedMessages = field(default_factory=ProcessedMessages)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    payload_bytes: int = 0
    messages: list[RawMessage] = field(default_factory=list)
    seen: dict[UUID, Any] = field(default_factory=dict)  # event id → the first event with it

    @property
    def events(self) -> int:
        return self.processed.accepted + len(self.dead_letters)


def prepare_message(message: RawMessage, family: str | None, into: PreparedBatch) -> None:
    """Classify one message into `into`; total in the bytes (see `models.pipeline.process_message`).

    An event whose id came earlier in the batch is dropped: silently if it is the same event,
    as a `conflicting_duplicate` dead letter if not (the first one, in message order, is kept).
    """
    processed = into.processed
    lists = [(name, getattr(processed, name)) for name in OUTPUT_LISTS if name != "rejected"]
    marks = [len(items) for _, items in lists]
    before = len(processed.rejected)
    value = message.value or b""
    process_message(value, expected_family=family, out=processed)
    into.dead_letters.extend(dead_letter_of(message, r) for r in processed.rejected[before:])
    into.payload_bytes += len(value)
    into.messages.append(message)
    seen = into.seen
    for (name, items), mark in zip(lists, marks, strict=True):
        if len(items) == mark:
            continue
        fresh = True
        for item in items[mark:]:
            event = getattr(item, "event", item)
            if seen.setdefault(event.event_id, event) is not event:
                fresh = False
        if not fresh:
            _drop_repeats(message, family, into, name, mark)


def _drop_repeats(message: RawMessage, family: str | None, into: PreparedBatch, name: str, mark: int) -> None:
    """The rare path: this message repeats ids of the batch (or itself); keep the first of each."""
    items = getattr(into.processed, name)
    # One message's accepted events are of one family, so they are in one list, in message order.
    located = locate_events(message.value or b"", expected_family=family)
    kept = items[:mark]
    for item, (_, index, payload) in zip(items[mark:], located, strict=False):
        event = getattr(item, "event", item)
        first = into.seen[event.event_id]
        if first is event:
            kept.append(item)
        elif not same_event(first, event):
            into.dead_letters.append(dead_letter_of(message, Rejection(
                code=CONFLICTING_DUPLICATE, item_index=index, payload=payload, school_id=event.school_id,
                screener=getattr(event, "screener", None),
                reason=f"event id {event.event_id} came twice in one batch with different content")))
    setattr(into.processed, name, kept)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff for transient errors: `first`, doubling, capped at `cap` seconds."""

    first: float = 0.2
    cap: float = 5.0

    def delays(self) -> Any:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.cap)


class Checkpoint:
    """Owns the commit order of micro-batches: dead letters, archive, alerts, then offsets.

    Memory is bounded in events and bytes, not messages: a batch whose messages hold more than
    `max_events` events or `max_bytes` bytes is made durable in several sub-batches (each in the
    order above) before its offsets are committed once.
    """

    def __init__(self, settings: Settings, writer: ArchivePort, *, send_dead_letters: SendMessages,
                 send_alerts: SendMessages | None, backoff: Backoff = Backoff(),
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self._prefix = settings.topic_prefix
        self._writer = writer
        self._send_dead_letters = send_dead_letters
        self._send_alerts = send_alerts
        self._backoff = backoff
        self._sleep = sleep
        self.max_events = settings.worker_batch_events
        self.max_bytes = settings.worker_batch_bytes
        self.accepted = 0
        self.alerts = 0
        self.rejected = 0
        self.batches = 0
        self.broker_retries = 0

    def _family_of(self, topic: str) -> str | None:
        return INPUT_TOPICS.get(topic.removeprefix(self._prefix))

    async def run(self, messages: Sequence[RawMessage], commit_offsets: CommitOffsets) -> None:
        """Make `messages` durable, then `commit_offsets()`; any exception leaves them uncommitted."""
        started = time.perf_counter()
        part = PreparedBatch()
        for message in messages:
            prepare_message(message, self._family_of(message.topic), part)
            if part.events >= self.max_events or part.payload_bytes >= self.max_bytes:
                await self._make_durable(part)
                part = PreparedBatch()
        if part.events or part.payload_bytes:
            await self._make_durable(part)
        # Step 4, and only here: every sub-batch above has finished.
        await commit_offsets()
        self.batches += 1
        log.debug("batch of %d message(s), %d bytes, durable in %.3fs", len(messages),
                  sum(len(message.value or b"") for message in messages), time.perf_counter() - started)

    def _conflict_letters(self, part: PreparedBatch, reasons: dict[UUID, str],
                          code: str = CONFLICTING_DUPLICATE) -> list[DeadLetter]:
        """Dead letters of the batch's events (first occurrences) named in `reasons`: by default those
        whose ids were stored before."""
        letters: list[DeadLetter] = []
        found: set[UUID] = set()
        for message in part.messages:
            value = message.value or b""
            if not any(str(event_id).encode() in value for event_id in reasons):
                continue
            for event, index, payload in locate_events(value, expected_family=self._family_of(message.topic)):
                if event.event_id in reasons and event.event_id not in found:
                    found.add(event.event_id)
                    letters.append(dead_letter_of(message, Rejection(
                        code=code, reason=reasons[event.event_id], item_index=index,
                        payload=payload, school_id=event.school_id, screener=getattr(event, "screener", None))))
        return letters

    async def _make_durable(self, part: PreparedBatch) -> None:
        async def on_conflicts(conflicts: Sequence[Conflict]) -> Sequence[DeadLetter]:
            letters = self._conflict_letters(part, {c.event_id: (
                f"event id {c.event_id} is already stored as a {c.stored_family} event"
                if c.stored_family != c.family else
                f"event id {c.event_id} is already stored with other content or another date")
                for c in conflicts})
            await self._with_retry("dead letters", self._send_dead_letters,
                                   [dead_letter_record(letter) for letter in letters])
            log.info("dead-lettered %d conflicting duplicate(s)", len(letters))
            self.rejected += len(letters)
            return letters

        refused: set[UUID] = set()

        async def on_refusals(refusals: Sequence[Refusal]) -> Sequence[DeadLetter]:
            refused.update(refusal.event_id for refusal in refusals)
            letters = self._conflict_letters(part, {r.event_id: (
                f"not stored: submitter {r.submitted_by!r} {_REFUSALS.get(r.code, r.code)} ({r.code}, school "
                f"{r.school_id}); 提交人无权为该学校的该学生写入，未入库") for r in refusals}, SUBMITTER_NOT_ALLOWED)
            await self._with_retry("dead letters", self._send_dead_letters,
                                   [dead_letter_record(letter) for letter in letters])
            log.warning("dead-lettered %d event(s) outside their submitter's write scope: %s", len(letters),
                        sorted({refusal.code for refusal in refusals}))
            self.rejected += len(letters)
            return letters

        if part.dead_letters:
            records = [dead_letter_record(letter) for letter in part.dead_letters]
            await self._with_retry("dead letters", self._send_dead_letters, records)
            # Codes and counts only: a reason may quote a submitted value.
            log.info("dead-lettered %d event(s): %s", len(part.dead_letters),
                     sorted({letter.code for letter in part.dead_letters}))
        await self._writer.write(part.processed, part.dead_letters, on_conflicts=on_conflicts,
                                 on_refusals=on_refusals)
        if refused:  # neither stored nor raising alerts
            for name in OUTPUT_LISTS:
                if name != "rejected":
                    setattr(part.processed, name, [item for item in getattr(part.processed, name)
                                                   if getattr(item, "event", item).event_id not in refused])
        if self._send_alerts is not None:
            alerts = evaluate_batch(part.processed)
            if alerts:
                by_school: dict[str, list[AlertCandidate]] = {}
                for alert in alerts:
                    by_school.setdefault(alert.school_id, []).append(alert)
                await self._with_retry("alerts", self._send_alerts, [
                    (school.encode(), encode_alert_batch(group)) for school, group in by_school.items()])
                self.alerts += len(alerts)
        self.accepted += part.processed.accepted
        self.rejected += len(part.dead_letters)

    async def _with_retry(self, what: str, send: SendMessages, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        # A retry may produce some records twice: their consumers are idempotent (dead letters by
        # origin, alerts by alert event id).
        for delay in self._backoff.delays():
            try:
                await send(records)
                return
            except BrokerUnavailable as error:
                self.broker_retries += 1
                log.warning("broker unavailable producing %s (%s); retrying in %.1fs", what, error, delay)
                await self._sleep(delay)
