"""Idempotent application of alert events, repeats, and escalation driven by a controllable clock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from models.pipeline import ProcessedMessages, classify_event
from models.rules import AlertCandidate, evaluate_batch
from services.access.users import add_user
from services.alerts.service import apply_candidates, escalate_due, queue_summary
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests import factories

pytestmark = pytest.mark.integration

T0 = datetime(2025, 10, 15, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def candidates(n: int, answers: list[int], school: str = "SA01", **extra: Any) -> list[AlertCandidate]:
    batch = ProcessedMessages()
    classify_event(factories.survey(n, school=school, answers=answers, **extra), batch)
    return evaluate_batch(batch)


def apply(settings: Settings, items: list[AlertCandidate], now: datetime) -> list[Any]:
    async def run() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(settings.pg_dsn("app")) as conn, conn.transaction():
            return await apply_candidates(conn, items, now=now)
    return asyncio.run(run())


def sweep(settings: Settings, now: datetime) -> list[Any]:
    async def run() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(settings.pg_dsn("app")) as conn:
            return await escalate_due(conn, now=now)
    return asyncio.run(run())


def one(settings: Settings, query: str) -> tuple[Any, ...]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        row = conn.execute(query.encode()).fetchone()
    assert row is not None
    return tuple(row)


def test_redelivery_is_idempotent_and_a_repeat_updates_the_open_alert(isolated: Settings) -> None:
    settings = isolated
    first = candidates(1, [2, 2, 2, 2, 2, 2, 2, 1, 0])  # moderately severe: medium
    assert len(apply(settings, first, T0)) == 1
    assert apply(settings, first, T0 + timedelta(minutes=1)) == []  # redelivered: nothing changes
    repeat = candidates(1, [3, 3, 3, 3, 3, 2, 2, 2, 0], event_id=str(uuid.uuid4()))  # severe now: high
    apply(settings, repeat, T0 + timedelta(hours=1))
    assert one(settings, "SELECT count(*), max(priority), max(occurrences), max(ack_deadline) FROM alerts.alerts") == (
        1, "high", 2, T0 + timedelta(hours=25))
    assert one(settings, "SELECT count(*) FROM alerts.transitions") == (2,)
    assert [(r["school_id"], r["high"], r["open_total"]) for r in queue_summary(settings)] == [("SA01", 1, 1)]


def test_escalation_to_the_school_lead_then_the_county(isolated: Settings) -> None:
    settings = isolated
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        conn.execute("INSERT INTO archive.schools VALUES ('SA01', 'School A', 'C01', 'County 1', 'urban', 'junior',"
                     " false, 500, 1, now())")
    counsellor = add_user(settings, "c-a", "counsellor", schools=["SA01"])
    lead = add_user(settings, "lead-a", "school_doctor", lead_schools=["SA01"])
    county = add_user(settings, "co-1", "county_officer", counties=["C01"])
    other_county = add_user(settings, "co-2", "county_officer", counties=["C02"])
    apply(settings, candidates(1, [0] * 8 + [1]), T0)
    clock = Clock(T0)
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in
               (("counsellor", counsellor), ("lead", lead), ("county", county), ("other", other_county))}
    with serve_in_thread(create_api(settings, clock=clock)) as url:
        def queue(who: str, **params: Any) -> list[dict[str, Any]]:
            response = httpx.get(f"{url}/alerts", headers=headers[who], params=params)
            assert response.status_code == 200, response.text
            return list(response.json())

        [alert] = queue("counsellor")
        assert alert["ack_deadline"].startswith("2025-10-15T10:00") and not alert["overdue"]
        assert queue("lead") == []  # a school doctor lead sees counselling alerts only once escalated
        assert len(queue("county")) == 1 and queue("other") == []

        assert sweep(settings, T0 + timedelta(minutes=59)) == []
        clock.now = T0 + timedelta(minutes=61)
        assert queue("counsellor")[0]["overdue"]
        assert len(sweep(settings, clock.now)) == 1
        [escalated] = queue("lead")
        assert escalated["escalation_level"] == 1 and escalated["overdue"]
        assert escalated["escalate_at"].startswith("2025-10-15T11:00")
        assert queue("county", escalated=True)[0]["escalation_level"] == 1

        assert sweep(settings, T0 + timedelta(minutes=119)) == []
        assert len(sweep(settings, T0 + timedelta(hours=2, minutes=1))) == 1
        assert sweep(settings, T0 + timedelta(days=2)) == []  # the county is the last level
        assert queue("county")[0]["escalation_level"] == 2

        # The lead acknowledges: escalation stops, and the history says who and when.
        clock.now = T0 + timedelta(hours=3)
        response = httpx.post(f"{url}/alerts/{alert['alert_id']}/acknowledge", headers=headers["lead"])
        assert response.status_code == 200, response.text
        assert response.json()["acknowledged_by"] == "lead-a"
    assert sweep(settings, T0 + timedelta(days=9)) == []
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        history = conn.execute("SELECT action, actor, at, from_level, to_level FROM alerts.transitions ORDER BY id"
                               ).fetchall()
    assert [(a, who, lvl) for a, who, _, _, lvl in history] == [
        ("open", "rule:phq-item9-self-harm@1", 0), ("escalate", "system:escalation", 1),
        ("escalate", "system:escalation", 2), ("acknowledge", "lead-a", 2)]
    assert history[1][2] == T0 + timedelta(minutes=61) and history[3][2] == T0 + timedelta(hours=3)
