"""The alert service: `intervention-alerts` from Kafka into the alert queue, and the escalation sweep.

The worker evaluates `models.rules` on every archived micro-batch and produces one message per
raised alert. This service consumes them in micro-batches: one transaction applies the batch
(open a new alert, or merge a repeat into the student's open alert of the same concern), records
each transition, notes the alert event ids it applied and notifies `schoolhealth_alerts`; only
then are the Kafka offsets committed. A redelivered message finds its id in
`alerts.applied_events` and changes nothing, so delivery is at-least-once and the queue exact.

A fast lane: the service also reads `psych-surveys` itself (its own consumer group) and applies
the survey rules at once, so a self-harm answer does not wait behind a backlog of bulk measurements
in the worker. Alert event ids are derived from (source event, rule), so the fast lane and the
worker's alert for the same answer are one alert: whichever comes second changes nothing.

The escalation sweep reads the clock through a callable, so tests drive it with a fake clock.
State changes come from the pure functions of `models.alerts`; this module only loads and stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from models.alerts import OPEN_STATES_SQL, AlertState, Transition, escalate, merge_repeat, new_alert
from models.pipeline import ProcessedMessages, process_message
from models.rules import AlertCandidate, decode_alert_messages, evaluate_batch
from models.topics import INPUT_TOPICS, INTERVENTION_ALERTS, PSYCH_SURVEYS
from services.platform.clock import Clock, utc_now
from services.platform.kafka import BrokerUnavailable, CommitLost, GroupConsumer
from services.platform.kafka_limits import PARTITION_FETCH_BYTES
from services.platform.settings import Settings

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "schoolhealth_alerts"


def alert_consumer_group(settings: Settings) -> str:
    return settings.alerts_consumer_group


_STATE_COLUMNS = ("state, priority, escalation_level, opened_at, ack_deadline, escalate_at, acknowledged_at, "
                  "acknowledged_by, assigned_to, closed_at, outcome, referred_to, occurrences")


def state_of(row: dict[str, Any]) -> AlertState:
    """The pure state of an alert row (as read with `_STATE_COLUMNS` and a dict row factory)."""
    return AlertState(
        state=row["state"], priority=row["priority"], escalation_level=row["escalation_level"],
        opened_at=row["opened_at"], ack_deadline=row["ack_deadline"], escalate_at=row["escalate_at"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"], assigned_to=row["assigned_to"], closed_at=row["closed_at"],
        outcome=row["outcome"], referred_to=row["referred_to"], occurrences=row["occurrences"],
    )


UPDATE_STATE_SQL = """
UPDATE alerts.alerts SET state = %(state)s, priority = %(priority)s, escalation_level = %(escalation_level)s,
    ack_deadline = %(ack_deadline)s, escalate_at = %(escalate_at)s, acknowledged_at = %(acknowledged_at)s,
    acknowledged_by = %(acknowledged_by)s,
    assigned_to = %(assigned_to)s, closed_at = %(closed_at)s, outcome = %(outcome)s,
    referred_to = %(referred_to)s, occurrences = %(occurrences)s, updated_at = %(updated_at)s
WHERE alert_id = %(alert_id)s
"""

INSERT_TRANSITION_SQL = """
INSERT INTO alerts.transitions (alert_id, at, actor, action, from_state, to_state, from_level, to_level, note)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def state_parameters(alert_id: UUID, state: AlertState, *, now: datetime) -> dict[str, Any]:
    return {
        "alert_id": alert_id, "state": state.state, "priority": state.priority,
        "escalation_level": state.escalation_level, "ack_deadline": state.ack_deadline,
        "escalate_at": state.escalate_at,
        "acknowledged_at": state.acknowledged_at, "acknowledged_by": state.acknowledged_by,
        "assigned_to": state.assigned_to, "closed_at": state.closed_at, "outcome": state.outcome,
        "referred_to": state.referred_to, "occurrences": state.occurrences, "updated_at": now,
    }


def transition_parameters(alert_id: UUID, transition: Transition) -> tuple[Any, ...]:
    return (alert_id, transition.at, transition.actor, transition.action, transition.from_state,
            transition.to_state, transition.from_level, transition.to_level, transition.note)


async def apply_candidates(conn: psycopg.AsyncConnection[Any], candidates: Sequence[AlertCandidate], *,
                           now: datetime) -> list[UUID]:
    """Apply alert candidates inside the caller's transaction; return the ids of alerts changed.

    Idempotent on `alert_event_id`; a repeat of an open concern updates that alert.
    """
    changed: list[UUID] = []
    async with conn.cursor(row_factory=dict_row) as cursor:
        for candidate in candidates:
            await cursor.execute("SELECT 1 FROM alerts.applied_events WHERE alert_event_id = %s",
                                 (candidate.alert_event_id,))
            if await cursor.fetchone() is not None:
                continue
            await cursor.execute(
                f"SELECT alert_id, {_STATE_COLUMNS} FROM alerts.alerts WHERE student_key = %s AND concern = %s"
                f" AND state IN ({OPEN_STATES_SQL}) FOR UPDATE",
                (candidate.student_key, candidate.concern))
            row = await cursor.fetchone()
            if row is not None:
                alert_id = row["alert_id"]
                state, transition = merge_repeat(state_of(row), candidate, now=now)
                await cursor.execute(UPDATE_STATE_SQL, state_parameters(alert_id, state, now=now))
                await cursor.execute(
                    "UPDATE alerts.alerts SET last_event_id = %s, evidence = %s, observed_on = %s, submitted_at = %s"
                    " WHERE alert_id = %s",
                    (candidate.source_event_id, json.dumps(dict(candidate.evidence)), candidate.observed_on,
                     candidate.submitted_at, alert_id))
            else:
                alert_id = candidate.alert_event_id
                state, transition = new_alert(candidate, now=now)
                await cursor.execute(
                    """INSERT INTO alerts.alerts (alert_id, student_key, school_id, county_id, concern, team, priority,
                        rule_id, rule_version, state, escalation_level, opened_at, ack_deadline, escalate_at,
                        occurrences,
                        first_event_id, last_event_id, observed_on, submitted_at, evidence, updated_at)
                    VALUES (%s, %s, %s, (SELECT county_id FROM archive.schools WHERE school_id = %s), %s, %s, %s,
                        %s, %s, %s, 0, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s)""",
                    (alert_id, candidate.student_key, candidate.school_id, candidate.school_id, candidate.concern,
                     candidate.team, candidate.priority, candidate.rule_id, candidate.rule_version, state.state,
                     state.opened_at, state.ack_deadline, state.escalate_at, candidate.source_event_id,
                     candidate.source_event_id,
                     candidate.observed_on, candidate.submitted_at, json.dumps(dict(candidate.evidence)), now))
            await cursor.execute(INSERT_TRANSITION_SQL, transition_parameters(alert_id, transition))
            await cursor.execute("INSERT INTO alerts.applied_events (alert_event_id, alert_id) VALUES (%s, %s)",
                                 (candidate.alert_event_id, alert_id))
            changed.append(alert_id)
        for alert_id in dict.fromkeys(changed):
            await cursor.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(alert_id)))
    return changed


async def escalate_due(conn: psycopg.AsyncConnection[Any], *, now: datetime) -> list[UUID]:
    """Escalate every open alert whose escalation is due by `now` (one level each).

    Runs in its own transaction on `conn`; returns the escalated alert ids.
    """
    escalated: list[UUID] = []
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            f"SELECT alert_id, {_STATE_COLUMNS} FROM alerts.alerts WHERE state = 'open' AND escalate_at <= %s"
            " AND escalation_level < 2 ORDER BY escalate_at FOR UPDATE SKIP LOCKED", (now,))
        rows = await cursor.fetchall()
        for row in rows:
            result = escalate(state_of(row), now=now)
            if result is None:
                continue
            state, transition = result
            await cursor.execute(UPDATE_STATE_SQL, state_parameters(row["alert_id"], state, now=now))
            await cursor.execute(INSERT_TRANSITION_SQL, transition_parameters(row["alert_id"], transition))
            await cursor.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(row["alert_id"])))
            escalated.append(row["alert_id"])
    if escalated:
        log.info("escalated %d alert(s)", len(escalated))
    return escalated


def run_escalation(settings: Settings, *, now: datetime) -> list[UUID]:
    """One escalation sweep at `now` (synchronous convenience for the CLI and tests)."""

    async def sweep() -> list[UUID]:
        async with await psycopg.AsyncConnection.connect(settings.pg_dsn("app")) as conn:
            return await escalate_due(conn, now=now)

    return asyncio.run(sweep())


# A fast-lane candidate's survey: who submitted it, for whom and where (the write-scope re-check).
Submission = tuple[str, str, str]


def candidates_of(topic: str, value: bytes | None, *, prefix: str,
                  submissions: dict[UUID, Submission] | None = None) -> list[AlertCandidate]:
    """The alert candidates in one record of `intervention-alerts` or (fast lane) `psych-surveys`.

    Invalid records yield nothing: the worker dead-letters bad surveys, and a bad alert message is
    logged by its code only. Total in the bytes: nothing a record holds stops the service.
    A fast-lane candidate's survey is added to `submissions` (by event id), for `_AlertStore.apply`
    to re-check its submitter's write scope as the worker does.
    """
    name = topic.removeprefix(prefix)
    try:
        if name == INTERVENTION_ALERTS:
            candidates, invalid = decode_alert_messages(value or b"")
            for error in invalid:
                log.warning("skipped an invalid alert message: %s", error)
            return candidates
        batch = ProcessedMessages()
        process_message(value or b"", expected_family=INPUT_TOPICS.get(name), out=batch)
        found = evaluate_batch(batch)
        if found and submissions is not None:
            for item in batch.surveys:
                submissions[item.event.event_id] = (item.event.submitted_by, item.event.student_key,
                                                    item.event.school_id)
        return found
    except Exception as error:  # a record that breaks the rules is skipped, by its error's type only
        log.error("skipped a record of %s that could not be read (%s)", name, type(error).__name__)
        return []


async def _refused_surveys(conn: psycopg.AsyncConnection[Any], submissions: Mapping[UUID, Submission]) -> set[UUID]:
    """The surveys among `submissions` whose submitter may not write them (the operator's skipped)."""
    from services.access.users import OPERATOR_IDENTITIES

    checked = {event_id: s for event_id, s in submissions.items() if s[0] not in OPERATOR_IDENTITIES}
    if not checked:
        return set()
    ids = list(checked)
    cursor = await conn.execute(
        "SELECT e FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[]) AS u (e, submitter, student, school)"
        " WHERE auth.submission_refusal(submitter, student, school, 'survey', NULL) IS NOT NULL",
        (ids, [checked[i][0] for i in ids], [checked[i][1] for i in ids], [checked[i][2] for i in ids]))
    return {row[0] for row in await cursor.fetchall()}


class _AlertStore:
    """The service's database connection: reconnects, and retries a batch while PostgreSQL is down."""

    def __init__(self, settings: Settings, stop: asyncio.Event) -> None:
        self._dsn = settings.pg_dsn("app")
        self._stop = stop
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.retries = 0

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._dsn, connect_timeout=5)
        return self._conn

    async def apply(self, candidates: Sequence[AlertCandidate], clock: Clock,
                    submissions: Mapping[UUID, Submission] | None = None) -> int | None:
        """Apply `candidates` in one transaction, retrying with backoff while the database is down.

        Fast-lane candidates (their survey in `submissions`) whose submitter may not write that
        survey (`auth.submission_refusal`, migration 0044) are dropped: the worker dead-letters the
        survey, and its alert must not open here either.

        Returns how many alerts changed, or None if the service was stopped before they were
        applied (then the caller must not commit the offsets).
        """
        delay = 0.2
        while True:
            try:
                conn = await self._connection()
                async with conn.transaction():
                    refused = await _refused_surveys(conn, submissions or {})
                    if refused:
                        log.warning("dropped %d fast-lane alert(s) of surveys outside their submitter's write scope",
                                    sum(c.source_event_id in refused for c in candidates))
                    changed = await apply_candidates(
                        conn, [c for c in candidates if c.source_event_id not in refused], now=clock())
                return len(changed)
            except psycopg.OperationalError as error:
                self.retries += 1
                log.warning("alert store unavailable (%s); retrying the batch in %.1fs", type(error).__name__, delay)
                await self.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                if self._stop.is_set():
                    return None
                delay = min(delay * 2, 5.0)

    async def sweep(self, clock: Clock) -> None:
        try:
            await escalate_due(await self._connection(), now=clock())
        except psycopg.OperationalError as error:
            log.warning("escalation sweep skipped: alert store unavailable (%s)", type(error).__name__)
            await self.close()

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None


async def _start_with_retry(consumer: GroupConsumer, stop: asyncio.Event) -> bool:
    """Start the Kafka consumer, retrying with backoff while the broker is unreachable."""
    delay = 0.5
    while not stop.is_set():
        try:
            await consumer.start()
            return True
        except BrokerUnavailable as error:
            log.warning("broker unavailable at start-up (%s); retrying in %.1fs", error, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, 5.0)
    return False


async def _commit_with_retry(consumer: GroupConsumer, stop: asyncio.Event) -> None:
    """Commit the consumed offsets; a rebalance means another member redelivers (applying is idempotent)."""
    delay = 0.2
    while True:
        try:
            await consumer.commit()
            return
        except CommitLost:
            log.warning("offsets not committed (the group rebalanced); the records will be applied again, idempotently")
            return
        except BrokerUnavailable as error:
            if stop.is_set():
                return  # uncommitted: applied again after the restart, idempotently
            log.warning("offsets not committed yet (%s); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def consume_alerts(settings: Settings, *, stop: asyncio.Event | None = None, clock: Clock = utc_now,
                         sweep_interval: float = 30.0, ready: asyncio.Event | None = None,
                         fast_lane: bool = True) -> int:
    """Consume `intervention-alerts` (and `psych-surveys` as the fast lane) into the database until
    `stop` is set; return how many alerts were opened or updated.

    Per batch: apply in one transaction (retried while PostgreSQL is down), then commit the
    offsets; a batch not applied is never committed. Also runs the escalation sweep every
    `sweep_interval` seconds with `clock()` as now.
    """
    stop = stop or asyncio.Event()
    topics = [settings.topic(INTERVENTION_ALERTS)] + ([settings.topic(PSYCH_SURVEYS)] if fast_lane else [])
    consumer = GroupConsumer(settings, "alerts", topics, group=alert_consumer_group(settings),
                             partition_fetch_bytes=PARTITION_FETCH_BYTES, fetch_max_wait_ms=50)
    store = _AlertStore(settings, stop)
    applied = 0
    if not await _start_with_retry(consumer, stop):
        return applied
    try:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        if ready is not None:
            ready.set()
        while not stop.is_set():
            records = await consumer.poll(timeout_ms=100, max_records=500)
            candidates: list[AlertCandidate] = []
            submissions: dict[UUID, Submission] = {}
            for record in records:
                candidates.extend(candidates_of(record.topic, record.value, prefix=settings.topic_prefix,
                                                submissions=submissions))
            if candidates:
                changed = await store.apply(candidates, clock, submissions)
                if changed is None:
                    break  # stopped during an outage: leave the batch uncommitted
                applied += changed
            if records:
                await _commit_with_retry(consumer, stop)
            if loop.time() - last_sweep >= sweep_interval:
                last_sweep = loop.time()
                await store.sweep(clock)
    finally:
        await consumer.stop()
        await store.close()
    return applied


def run_alert_service(settings: Settings, *, sweep_interval: float = 30.0, fast_lane: bool = True) -> None:
    """`schoolhealth alerts serve`: consume alerts and sweep escalations until SIGTERM/SIGINT.

    Waits for PostgreSQL at start-up (migrations retried with backoff); any other error ends the
    process with a non-zero status and the batch in hand uncommitted.
    """
    import signal

    from services.platform.migrate import migrate_with_retry
    from services.platform.topics import create_topics

    migrate_with_retry(settings)
    create_topics(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await consume_alerts(settings, stop=stop, sweep_interval=sweep_interval, fast_lane=fast_lane)

    asyncio.run(main())


def queue_summary(settings: Settings) -> list[dict[str, Any]]:
    """Per school: open alerts by priority, how many are unacknowledged and how many escalated."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn, conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(
            f"""SELECT school_id, county_id,
                   count(*) FILTER (WHERE priority = 'urgent') AS urgent,
                   count(*) FILTER (WHERE priority = 'high') AS high,
                   count(*) FILTER (WHERE priority = 'medium') AS medium,
                   count(*) FILTER (WHERE priority = 'low') AS low,
                   count(*) FILTER (WHERE state = 'open') AS unacknowledged,
                   count(*) FILTER (WHERE escalation_level > 0) AS escalated,
                   count(*) AS open_total
               FROM alerts.alerts WHERE state IN ({OPEN_STATES_SQL})
               GROUP BY school_id, county_id ORDER BY school_id""")
        return [dict(row) for row in cursor.fetchall()]
