"""`schoolhealth audit delivery`: the operator's proof, after an incident, that nothing was lost.

It reads the input topics over a range (from `--since`, or from the beginning of what the broker
retains, up to their current end), runs every message through the worker's own pure per-message
path (`models.pipeline.process_message`) to learn which events and rejections it holds, and looks
each one up: an accepted event must be in its family's archive table (by event id) or be
dead-lettered at its position as a `conflicting_duplicate`; a rejection must be in
`ops.dead_letters` at its position (topic, partition, offset, item in the envelope). Whatever is
neither is missing. Self-harm and other alerts the rules raise for the surveys read must each be
applied once (`alerts.applied_events`).

The fault suite uses the same function as its oracle.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from models.pipeline import ProcessedMessages, locate_events, process_message
from models.rules import evaluate_batch
from models.topics import INPUT_TOPICS
from services.pipeline.ingest import CONFLICTING_DUPLICATE
from services.platform.kafka import read_topic
from services.platform.settings import Settings

Position = tuple[int, int, int]  # partition, offset, item index (-1: the whole message)


@dataclass(slots=True)
class TopicAudit:
    """Per input topic: every event (or rejected message) read, and where it ended up."""

    topic: str
    produced: int = 0
    archived: int = 0
    dead_lettered: int = 0
    conflicting: int = 0
    missing: int = 0
    alerts_expected: int = 0
    alerts_missing: int = 0
    missing_positions: list[Position] = field(default_factory=list)
    dead_letter_codes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "produced": self.produced, "archived": self.archived,
                "dead_lettered": self.dead_lettered, "conflicting": self.conflicting, "missing": self.missing,
                "alerts_expected": self.alerts_expected, "alerts_missing": self.alerts_missing,
                "dead_letter_codes": dict(sorted(self.dead_letter_codes.items())),
                "missing_positions": [list(p) for p in self.missing_positions[:20]]}


@dataclass(frozen=True, slots=True)
class _Item:
    position: Position
    event_id: UUID | None  # None: a rejection (no accepted event)


def audit_delivery(settings: Settings, *, since: datetime | None = None) -> list[TopicAudit]:
    """Audit every input topic; see the module docstring."""
    results: list[TopicAudit] = []
    with psycopg.connect(settings.pg_dsn("admin"), connect_timeout=10) as conn:
        for name, family in INPUT_TOPICS.items():
            topic = settings.topic(name)
            audit = TopicAudit(topic=topic)
            items: list[_Item] = []
            alert_ids: list[UUID] = []
            for record in read_topic(settings, topic, since):
                value = record.value or b""
                out = ProcessedMessages()
                process_message(value, expected_family=family, out=out)
                for rejection in out.rejected:
                    items.append(_Item((record.partition, record.offset, rejection.item_index), None))
                if out.accepted:
                    for event, index, _ in locate_events(value, expected_family=family):
                        items.append(_Item((record.partition, record.offset, index), event.event_id))
                alert_ids.extend(candidate.alert_event_id for candidate in evaluate_batch(out))
            _settle(conn, audit, family, items)
            if alert_ids:
                applied = {row[0] for row in conn.execute(
                    "SELECT alert_event_id FROM alerts.applied_events WHERE alert_event_id = ANY(%s)",
                    (list(set(alert_ids)),))}
                audit.alerts_expected = len(set(alert_ids))
                audit.alerts_missing = len(set(alert_ids) - applied)
            results.append(audit)
    return results


def _settle(conn: psycopg.Connection[Any], audit: TopicAudit, family: str, items: list[_Item]) -> None:
    audit.produced = len(items)
    if not items:
        return
    letters: dict[Position, str] = {}
    for partition, offset, index, code in conn.execute(
            "SELECT kafka_partition, kafka_offset, item_index, code FROM ops.dead_letters WHERE topic = %s",
            (audit.topic,)):
        letters[(partition, offset, index)] = code
    ids = list({item.event_id for item in items if item.event_id is not None})
    stored: set[UUID] = set()
    if ids:
        # The registry is written in the same transaction as the family's row (services.archive),
        # and it is the events' key: the measurement tables have no index on the id alone (0080).
        stored = {row[0] for row in conn.execute(
            "SELECT event_id FROM archive.event_ids WHERE family = %s"
            " AND event_id IN (SELECT unnest(%s::uuid[]))", (family, ids))}
    codes: dict[str, int] = defaultdict(int)
    for item in items:
        code = letters.get(item.position)
        if item.event_id is not None and code == CONFLICTING_DUPLICATE:
            audit.conflicting += 1
            codes[code] += 1
        elif item.event_id is not None and item.event_id in stored:
            audit.archived += 1
        elif code is not None:
            audit.dead_lettered += 1
            codes[code] += 1
        else:
            audit.missing += 1
            audit.missing_positions.append(item.position)
    audit.dead_letter_codes = dict(codes)
