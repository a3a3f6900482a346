"""The alert operations views read a rollup (migration 0105) and still publish exactly what 0046's
definitions did: after writes with no refresh, after a refresh, when deadlines pass without any
write, and in a time zone other than the rollup's. Each comparison reads both definitions as the
Grafana role in one transaction (the same now()), cell by cell, suppression included."""

from __future__ import annotations

import random
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from services.platform.settings import Settings
from services.reporting.metrics import refresh_incremental
from tests.paths import ROOT

pytestmark = pytest.mark.integration

VIEWS = ("alert_queue", "alert_acknowledgements", "alert_escalations")
MIGRATIONS = ROOT / "services" / "migrations"
TEAMS = ("counselling", "school_doctor")
PRIORITIES = ("urgent", "high", "medium", "low")
OPEN_STATES = ("open", "acknowledged", "in_progress")


def _former_views(settings: Settings) -> None:
    """0046's three Grafana alert views, as that migration wrote them, in a schema `former`."""
    text = (MIGRATIONS / "0046_alert_views_across.sql").read_text(encoding="utf-8")
    statements = [s for s in text.split(";\n") if "CREATE OR REPLACE VIEW reporting.alert_" in s]
    assert len(statements) == len(VIEWS)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        conn.execute("CREATE SCHEMA former")
        for statement in statements:
            conn.execute(re.sub(r"CREATE OR REPLACE VIEW reporting\.", "CREATE VIEW former.", statement).encode())
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA former TO {}").format(sql.Identifier(settings.pg_grafana_user)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA former TO {}").format(
            sql.Identifier(settings.pg_grafana_user)))


def _assert_same(settings: Settings, *, time_zone: str | None = None) -> dict[str, int]:
    """Every row of each view equals the former definition's, read in one transaction; rows per view."""
    rows: dict[str, int] = {}
    with psycopg.connect(settings.pg_dsn("grafana")) as conn:
        if time_zone:
            conn.execute(sql.SQL("SET TimeZone = {}").format(sql.Literal(time_zone)))
        for view in VIEWS:
            new = sorted(conn.execute(sql.SQL("SELECT * FROM reporting.{}").format(sql.Identifier(view))).fetchall(),
                         key=repr)
            old = sorted(conn.execute(sql.SQL("SELECT * FROM former.{}").format(sql.Identifier(view))).fetchall(),
                         key=repr)
            assert new == old, f"reporting.{view} differs from 0046's definition"
            # The panels filter on "time": the filter must not change what a window shows either.
            if view != "alert_queue":
                window = sql.SQL("SELECT * FROM {}.{} WHERE \"time\" BETWEEN now() - interval '3 days' AND now()")
                assert sorted(conn.execute(window.format(sql.Identifier("reporting"), sql.Identifier(view))).fetchall(),
                              key=repr) == sorted(conn.execute(window.format(
                                  sql.Identifier("former"), sql.Identifier(view))).fetchall(), key=repr)
            rows[view] = len(new)
    return rows


def _alert(rng: random.Random, now: datetime, county: str | None, *, deadline: timedelta | None = None,
           opened: timedelta | None = None) -> tuple[object, ...]:
    opened_at = now - (opened if opened is not None else timedelta(hours=rng.uniform(0, 24 * 8)))
    ack_deadline = now + deadline if deadline is not None else opened_at + timedelta(hours=rng.choice([1, 4, 24, 72]))
    state = rng.choice((*OPEN_STATES, "open", "open", "resolved", "referred")) if deadline is None else "open"
    acknowledged = None if state == "open" else opened_at + timedelta(minutes=rng.uniform(5, 60 * 80))
    return (uuid.uuid4(), f"{rng.getrandbits(256):064x}", f"S{county}{rng.randint(0, 3)}", county,
            rng.choice(TEAMS), rng.choice(PRIORITIES), state, rng.choice((0, 0, 0, 1, 2)), opened_at, ack_deadline,
            acknowledged, "done" if state == "resolved" else None, "hospital" if state == "referred" else None)


def _insert(conn: psycopg.Connection[tuple[object, ...]], alerts: list[tuple[object, ...]]) -> None:
    conn.cursor().executemany(
        "INSERT INTO alerts.alerts (alert_id, student_key, school_id, county_id, concern, team, priority,"
        " rule_id, rule_version, state, escalation_level, opened_at, ack_deadline, escalate_at, acknowledged_at,"
        " outcome, referred_to, first_event_id, last_event_id, observed_on, submitted_at, updated_at)"
        " VALUES (%s, %s, %s, %s, 'self_harm', %s, %s, 'r', 1, %s, %s, %s, %s, %s, %s, %s, %s,"
        " gen_random_uuid(), gen_random_uuid(), CURRENT_DATE, now(), now())",
        [(*alert[:10], alert[9], *alert[10:]) for alert in alerts])  # the deadline is also the escalation time
    # Escalations: one transition per level reached, some days after opening.
    conn.cursor().executemany(
        "INSERT INTO alerts.transitions (alert_id, at, actor, action, from_state, to_state, from_level, to_level)"
        " SELECT %s, %s + make_interval(hours => level * 5), 'system:escalation', 'escalate', 'open', 'open',"
        " level - 1, level"
        " FROM generate_series(1, %s) AS level",
        [(a[0], a[8], a[7]) for a in alerts if int(str(a[7])) > 0])


def _province(settings: Settings, rng: random.Random, now: datetime) -> None:
    """Many alerts in a few large cells (published) and many small ones (withheld), one county unknown."""
    counties: list[str | None] = ["C1", "C2", "C3", None]
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        _insert(conn, [_alert(rng, now, rng.choice(counties)) for _ in range(900)])


def _change_some(settings: Settings, rng: random.Random, now: datetime) -> None:
    """What counsellors and the escalation timer do between two refreshes, and new alerts."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT alert_id FROM alerts.alerts WHERE state IN ('open', 'acknowledged', 'in_progress') ORDER BY 1")]
        picked = rng.sample(ids, 120)
        for alert_id in picked[:40]:
            conn.execute("UPDATE alerts.alerts SET state = 'acknowledged', acknowledged_at = opened_at"
                         " + interval '90 minutes' WHERE alert_id = %s AND state = 'open'", (alert_id,))
        for alert_id in picked[40:70]:
            conn.execute("UPDATE alerts.alerts SET state = 'resolved', outcome = 'done', closed_at = now()"
                         " WHERE alert_id = %s", (alert_id,))
        for alert_id in picked[70:90]:
            conn.execute(
                "WITH raised AS (UPDATE alerts.alerts SET escalation_level = escalation_level + 1"
                " WHERE alert_id = %s AND escalation_level < 2 RETURNING alert_id, escalation_level)"
                " INSERT INTO alerts.transitions (alert_id, at, actor, action, from_state, to_state, from_level,"
                " to_level) SELECT alert_id, now() - interval '2 hours', 'system:escalation', 'escalate', 'open',"
                " 'open', escalation_level - 1, escalation_level FROM raised", (alert_id,))
        for alert_id in picked[90:110]:
            # A priority rise moves the alert's escalations to another cell.
            conn.execute("UPDATE alerts.alerts SET priority = 'urgent' WHERE alert_id = %s", (alert_id,))
        for alert_id in picked[110:]:
            conn.execute("UPDATE alerts.alerts SET county_id = 'C2' WHERE alert_id = %s", (alert_id,))
        _insert(conn, [_alert(rng, now, rng.choice(["C1", "C3"])) for _ in range(60)])


def _marks(settings: Settings) -> int:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM alerts.queue_marks)"
                           " + (SELECT count(*) FROM alerts.acknowledgement_marks)"
                           " + (SELECT count(*) FROM alerts.escalation_marks)").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("seed", [1, 2])
def test_the_alert_views_publish_what_the_former_definitions_did(isolated: Settings, seed: int) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    _former_views(isolated)
    _province(isolated, rng, now)
    # Before any refresh: everything written is marked and read live.
    assert _marks(isolated) > 0
    counts = _assert_same(isolated)
    assert all(counts[view] > 10 for view in VIEWS), counts

    refresh_incremental(isolated)
    assert _marks(isolated) == 0  # now every cell comes from the rollup
    _assert_same(isolated)
    _assert_same(isolated, time_zone="Asia/Shanghai")

    _change_some(isolated, rng, now)
    assert _marks(isolated) > 0
    _assert_same(isolated)
    refresh_incremental(isolated)
    _assert_same(isolated)
    _assert_same(isolated, time_zone="Asia/Shanghai")


def test_a_deadline_that_passes_after_the_refresh_changes_the_counts_as_before(isolated: Settings) -> None:
    rng = random.Random(7)
    _former_views(isolated)
    _province(isolated, rng, datetime.now(UTC))
    # Open, unacknowledged alerts, all in one cell (so the cell is published), due in a few seconds.
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        now = datetime.now(UTC)
        soon = [(*a[:4], "counselling", "high", "open", 0, now - timedelta(minutes=10), now + timedelta(seconds=8),
                 None, None, None) for a in (_alert(rng, now, "C9") for _ in range(15))]
        _insert(conn, soon)
    refresh_incremental(isolated)
    assert _marks(isolated) == 0
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        rolled = conn.execute("SELECT alerts, overdue FROM alerts.queue_rollup WHERE county_id = 'C9'").fetchall()
    assert rolled == [(15, 0)]  # the refresh counted them before their deadline
    before = _assert_same(isolated)
    with psycopg.connect(isolated.pg_dsn("grafana")) as conn:
        overdue = conn.execute("SELECT overdue FROM reporting.alert_queue WHERE county_id = 'C9'").fetchone()
    assert overdue == (0,)
    time.sleep(max(0.0, (now + timedelta(seconds=9) - datetime.now(UTC)).total_seconds()))
    # No write since the refresh, and the 15 are now overdue and late, as 0046 counted them.
    assert _marks(isolated) == 0
    assert _assert_same(isolated) == before
    with psycopg.connect(isolated.pg_dsn("grafana")) as conn:
        overdue = conn.execute("SELECT overdue FROM reporting.alert_queue WHERE county_id = 'C9'").fetchone()
        late = conn.execute("SELECT sum(late) FROM reporting.alert_acknowledgements WHERE county_id = 'C9'").fetchone()
    assert overdue == (15,)
    assert late == (15,)
