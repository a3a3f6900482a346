"""The fault suite's harness: a known set of events, real processes, and the conservation law.

`produce_known_set` publishes events of all four families, single and in envelopes, with
self-harm answers and poison of every kind the issue names, and returns what must come out.
`assert_conserved` is the law, with `schoolhealth audit delivery` as the oracle: every produced
event stored exactly once or dead-lettered with its reason, nothing missing, nothing twice, every
alert the rules raise applied exactly once.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from models.codecs import encode_batch, encode_event
from models.contracts import Event
from models.topics import (
    BMI_SCREENINGS,
    FITNESS_TESTS,
    HEALTH_RECORDS,
    INPUT_TOPICS,
    INTERVENTION_ALERTS,
    PSYCH_SURVEYS,
    VISION_SCREENINGS,
)
from services.alerts.service import alert_consumer_group
from services.pipeline.audit import TopicAudit, audit_delivery
from services.platform.settings import Settings
from tests import factories
from tests.processes import ChildProcess

TABLES = ("archive.growth_screenings", "archive.vision_screenings", "archive.survey_results",
          "archive.student_history", "archive.fitness_results")
SELF_HARM = [0, 0, 0, 0, 0, 0, 0, 0, 2]


@dataclass
class KnownSet:
    """What was produced, by topic name (without prefix): valid event ids and poison codes."""

    valid: dict[str, set[UUID]] = field(default_factory=dict)
    poison: dict[str, Counter[str]] = field(default_factory=dict)
    self_harm: set[UUID] = field(default_factory=set)

    @property
    def valid_total(self) -> int:
        return sum(len(ids) for ids in self.valid.values())


def poison_messages() -> list[tuple[str, bytes, list[str], list[UUID]]]:
    """(topic, bytes, the dead-letter codes it must yield, the ids it still carries validly)
    for each kind of hostile message the issue names."""
    good = json.loads(encode_event(factories.bmi(9_001)))
    survey = json.loads(encode_event(factories.survey(9_002)))

    def with_(base: dict[str, Any], **changes: Any) -> bytes:
        return json.dumps(base | changes).encode()

    surrogate = json.dumps(good | {"school_id": "@@"}).encode().replace(b'"@@"', b'"\\ud800"')
    huge = with_(good).replace(b'"height_cm": 140.0', b'"height_cm": 1' + b"0" * 400)
    bad_member = json.loads(encode_batch([factories.bmi(9_010), factories.bmi(9_011)]))
    bad_member["events"][1]["height_cm"] = 512.0
    surrogate_member = json.loads(encode_batch([factories.bmi(9_012), factories.bmi(9_013)]))
    surrogate_member["events"][0]["school_id"] = "@@"
    deep = b"[" * 2000 + b"]" * 2000
    return [
        (BMI_SCREENINGS, b"\x00\xffnot json at all", ["not_json"], []),
        (BMI_SCREENINGS, b'{"school_id": "\xff\xfe"}', ["not_json"], []),  # invalid UTF-8
        (BMI_SCREENINGS, with_(good, school_id="S\x00001"), ["invalid_field"], []),  # NUL
        (BMI_SCREENINGS, surrogate, ["not_json"], []),  # an escaped lone surrogate
        (BMI_SCREENINGS, huge, ["invalid_field"], []),  # a number beyond float
        (BMI_SCREENINGS, deep, ["not_json"], []),
        (BMI_SCREENINGS, b'{"a":' * 2000 + b"1" + b"}" * 2000, ["not_json"], []),
        (BMI_SCREENINGS, encode_event(factories.vision(9_003)), ["wrong_topic"], []),
        (BMI_SCREENINGS, json.dumps(bad_member).encode(), ["invalid_field"], [factories.bmi(9_010).event_id]),
        (BMI_SCREENINGS, json.dumps(surrogate_member).encode().replace(b'"@@"', b'"\\ud800"'), ["not_json"], []),
        (PSYCH_SURVEYS, deep, ["not_json"], []),  # once crash-looped the alert service's fast lane
        (PSYCH_SURVEYS, with_(survey, school_id="S\x00002"), ["invalid_field"], []),
    ]


def _families(n: int, school: str) -> list[tuple[str, Event]]:
    survey = factories.survey(n, school, answers=SELF_HARM) if n % 5 == 0 else factories.survey(n, school)
    return [(HEALTH_RECORDS, factories.record(n, school)), (VISION_SCREENINGS, factories.vision(n, school)),
            (BMI_SCREENINGS, factories.bmi(n, school)), (PSYCH_SURVEYS, survey),
            (FITNESS_TESTS, factories.fitness(n, school))]


def produce_known_set(settings: Settings, *, students: int = 24, envelope: int = 8) -> KnownSet:
    """Publish the known set and return what must come out of it."""
    known = KnownSet(valid={name: set() for name in INPUT_TOPICS}, poison={name: Counter() for name in INPUT_TOPICS})
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
                             max_request_size=10 * 1024 * 1024)
    schools = [f"S{number:03d}" for number in range(1, 9)]  # spread over every partition
    pending: dict[str, list[Event]] = {name: [] for name in INPUT_TOPICS}
    for n in range(students):
        school = schools[n % len(schools)]
        for topic, event in _families(n, school):
            if topic == PSYCH_SURVEYS and n % 5 == 0:
                known.self_harm.add(event.event_id)
            known.valid[topic].add(event.event_id)
            if n % 3 == 0:  # a third single, the rest in envelopes
                producer.send(settings.topic(topic), key=school.encode(), value=encode_event(event))
            else:
                pending[topic].append(event)
                if len(pending[topic]) == envelope:
                    producer.send(settings.topic(topic), key=school.encode(), value=encode_batch(pending[topic]))
                    pending[topic] = []
    for topic, events in pending.items():
        if events:
            producer.send(settings.topic(topic), key=b"S001", value=encode_batch(events))
    for topic, value, codes, ids in poison_messages():
        producer.send(settings.topic(topic), key=b"S001", value=value)
        known.poison[topic].update(codes)
        known.valid[topic].update(ids)
    producer.flush()
    producer.close()
    return known


def worker(settings: Settings, log: Path, *faults: str) -> ChildProcess:
    """A real worker; with `faults`, the fault suite's worker with those faults injected."""
    if faults:
        return ChildProcess(settings, log, faults, module="tests.faults.fault_worker")
    return ChildProcess(settings, log, ["worker"])


def alert_service(settings: Settings, log: Path) -> ChildProcess:
    return ChildProcess(settings, log, ["alerts", "serve", "--sweep-interval", "3600"])


def committed_offsets(settings: Settings, group: str,
                      topics: Sequence[str] | None = None) -> dict[tuple[str, int], int]:
    """The group's committed offset per input partition (without joining the group)."""
    names = topics or [settings.topic(name) for name in INPUT_TOPICS]
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        result: dict[tuple[str, int], int] = {}
        for topic in names:
            for partition in consumer.partitions_for_topic(topic) or ():
                offset = consumer.committed(TopicPartition(topic, partition))
                if offset is not None:
                    result[(topic, partition)] = offset
        return result
    finally:
        consumer.close()


def end_offsets(settings: Settings, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        return {(tp.topic, tp.partition): offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def lag(settings: Settings, group: str, topics: Sequence[str]) -> int:
    ends = end_offsets(settings, topics)
    committed = committed_offsets(settings, group, topics)
    return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str,
               processes: Sequence[ChildProcess] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + "".join(process.tail() for process in processes))


def wait_for_lag_zero(settings: Settings, processes: Sequence[ChildProcess] = (), *, alerts: bool = False,
                      timeout: float = 120) -> None:
    """Until the worker group (and the alert service's, if `alerts`) has committed every input offset."""
    inputs = [settings.topic(name) for name in INPUT_TOPICS]

    def done() -> bool:
        if lag(settings, settings.consumer_group, inputs):
            return False
        return not alerts or lag(settings, alert_consumer_group(settings),
                                 [settings.topic(PSYCH_SURVEYS), settings.topic(INTERVENTION_ALERTS)]) == 0

    wait_until(done, timeout=timeout, what="consumer lag 0", processes=processes)


def scalar(settings: Settings, query: str) -> int:
    with psycopg.connect(settings.pg_dsn("admin"), connect_timeout=5) as conn:
        row = conn.execute(query.encode()).fetchone()
    return int(row[0]) if row else 0


def conservation_table(audits: Sequence[TopicAudit]) -> str:
    """The audit as a Markdown table (the closing note's format)."""
    lines = ["| topic | produced | archived | dead-lettered | conflicting | missing | alerts applied/expected |",
             "|---|---|---|---|---|---|---|"]
    for a in audits:
        lines.append(f"| {a.topic.split('.', 1)[-1]} | {a.produced} | {a.archived} | {a.dead_lettered} | "
                     f"{a.conflicting} | {a.missing} | {a.alerts_expected - a.alerts_missing}/{a.alerts_expected} |")
    return "\n".join(lines)


def assert_conserved(settings: Settings, known: KnownSet, *, alerts: bool = False, label: str = "") -> list[TopicAudit]:
    """The conservation law; returns the audit (and appends its table to $SCHOOLHEALTH_FAULT_REPORT)."""
    audits = audit_delivery(settings)
    report = os.environ.get("SCHOOLHEALTH_FAULT_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:
            out.write(f"\n### {label}\n\n{conservation_table(audits)}\n")
    by_topic = {a.topic.removeprefix(settings.topic_prefix): a for a in audits}
    for name in INPUT_TOPICS:
        audit = by_topic[name]
        assert audit.missing == 0, f"{name}: {audit.missing} missing at {audit.missing_positions}"
        assert audit.produced == audit.archived + audit.dead_lettered + audit.conflicting
        assert audit.archived == len(known.valid[name]), (name, audit.as_dict())
        assert Counter(audit.dead_letter_codes) == known.poison[name], (name, audit.dead_letter_codes)
        if alerts:
            assert audit.alerts_missing == 0, audit.as_dict()
    total = sum(scalar(settings, f"SELECT count(*) FROM {table}") for table in TABLES)
    distinct = sum(scalar(settings, f"SELECT count(DISTINCT event_id) FROM {table}") for table in TABLES)
    assert total == distinct == known.valid_total, (total, distinct, known.valid_total)
    if alerts:
        assert scalar(settings, "SELECT count(*) FROM alerts.applied_events") >= len(known.self_harm)
        per_student = scalar(settings, "SELECT count(*) FROM (SELECT student_key FROM alerts.alerts"
                                       " WHERE concern = 'self_harm' GROUP BY student_key HAVING count(*) > 1) AS x")
        assert per_student == 0, "a self-harm answer raised two alerts"
        self_harm = scalar(settings, "SELECT count(*) FROM alerts.alerts WHERE concern = 'self_harm'")
        assert self_harm == len(known.self_harm)
    return audits


def log_has(process: ChildProcess, text: str) -> Callable[[], bool]:
    return lambda: text in process.log.read_text(errors="replace")
