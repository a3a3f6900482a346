"""The alert queue as its users see it: the queue, one alert with the student's history, state
changes and the live feed, each in the caller's per-request database session (row-level security
decides which alerts exist for them). The API (`services.api.alert_routes`) and the web pages
(`services.web`) both call these functions, so the rules are one; refusals are FastAPI
`HTTPException`s (404, 409, 422, 429) because both front doors answer HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from fastapi import HTTPException, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from models.alerts import OUTCOMES, Action, TransitionRefused, apply_action
from services.access.session import Session, user_session
from services.alerts.feed_hub import FeedHub, FeedRefused
from services.alerts.service import (
    INSERT_TRANSITION_SQL,
    NOTIFY_CHANNEL,
    UPDATE_STATE_SQL,
    state_of,
    state_parameters,
    transition_parameters,
)

QUEUE_ROLES = ("counsellor", "school_doctor", "county_officer", "admin")
# Refusals that are about the alert's state (409) rather than the request's content (422).
_CONFLICTS = frozenset({"already_acknowledged", "already_closed", "not_acknowledged", "already_in_progress",
                        "same_assignee", "closed"})

ALERT_COLUMNS = """a.alert_id, a.student_key, a.school_id, a.county_id, a.concern, a.team, a.priority, a.state,
    a.escalation_level, a.opened_at, a.ack_deadline, a.escalate_at, a.acknowledged_at, a.acknowledged_by, a.assigned_to,
    a.closed_at, a.outcome, a.referred_to, a.occurrences, a.rule_id, a.rule_version, a.observed_on,
    a.submitted_at, a.updated_at"""


class AlertOut(BaseModel):
    alert_id: UUID
    student_key: str
    school_id: str
    county_id: str | None
    concern: str
    team: str
    priority: str
    state: str
    escalation_level: int
    opened_at: datetime
    ack_deadline: datetime
    escalate_at: datetime
    overdue: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    assigned_to: str | None
    closed_at: datetime | None
    outcome: str | None
    referred_to: str | None
    occurrences: int
    rule_id: str
    rule_version: int
    observed_on: date
    submitted_at: datetime
    updated_at: datetime


class TransitionOut(BaseModel):
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str
    from_level: int
    to_level: int
    note: str | None


class AlertDetail(AlertOut):
    evidence: dict[str, Any]
    transitions: list[TransitionOut]
    student: dict[str, Any] | None
    history: dict[str, list[dict[str, Any]]]


def _alert(row: dict[str, Any], now: datetime) -> AlertOut:
    return AlertOut(**{k: v for k, v in row.items() if k in AlertOut.model_fields},
                    overdue=row["state"] == "open" and row["ack_deadline"] <= now)


async def audit_reads(session: Session, rows: list[dict[str, Any]], what: str) -> None:
    """Write one audit row per counselling alert (psychological data) in `rows`, in this transaction."""
    await session.audit_psych_reads(
        [(r["student_key"], r["school_id"], r["alert_id"]) for r in rows if r["team"] == "counselling"], what)


async def queue_rows(session: Session, *, states: Sequence[str], school_id: str | None, team: str | None,
                     escalated: bool | None, limit: int) -> list[AlertOut]:
    """Alerts of the caller's schools in `states`, ordered by priority then acknowledgement deadline."""
    session.require(*QUEUE_ROLES)
    # Row-level security decides the rows; naming the schools it can let through (the same rows)
    # finds them by the queue index instead of filtering every open alert of the province.
    schools = await session.policy_schools()
    rows = await session.fetch(
        f"SELECT {ALERT_COLUMNS} FROM alerts.alerts a WHERE a.state = ANY(%(states)s)"
        " AND (%(school)s::text IS NULL OR a.school_id = %(school)s)"
        " AND (%(schools)s::text[] IS NULL OR a.school_id = ANY(%(schools)s::text[]))"
        " AND (%(team)s::text IS NULL OR a.team = %(team)s)"
        " AND (%(escalated)s::boolean IS NULL OR (a.escalation_level > 0) = %(escalated)s)"
        " ORDER BY a.priority_rank, a.ack_deadline, a.opened_at LIMIT %(limit)s",
        {"states": list(states), "school": school_id, "schools": schools, "team": team, "escalated": escalated,
         "limit": limit})
    await audit_reads(session, rows, "queue")
    return [_alert(row, session.now) for row in rows]


async def alert_feed(request: Request, token: str, *, web: bool = False) -> StreamingResponse:
    """`text/event-stream`: one `alert` event per new or changed alert I may see; `: keepalive` comments.

    `token` is the hash of a bearer token, or with `web` of the pages' session cookie (a web session).
    """
    async with user_session(request, token, web=web) as session:
        session.require(*QUEUE_ROLES)
        user_id = session.user_id
    hub: FeedHub = request.app.state.feed_hub
    try:
        subscription = hub.subscribe(user_id)
    except FeedRefused as refused:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, refused.reason, headers={"Retry-After": "30"}) from None

    async def events() -> AsyncIterator[str]:
        yield ": connected\n\n"
        async for ids in subscription.batches(keepalive=15.0):
            if not ids:
                yield ": keepalive\n\n"
                continue
            async with user_session(request, token, web=web) as session:
                rows = await session.fetch(
                    f"SELECT {ALERT_COLUMNS} FROM alerts.alerts a WHERE a.alert_id = ANY(%s)",
                    ([UUID(i) for i in ids],))
                await audit_reads(session, rows, "feed")
                for row in rows:
                    payload = _alert(row, session.now).model_dump_json()
                    yield f"event: alert\nid: {row['alert_id']}\ndata: {payload}\n\n"

    async def guarded() -> AsyncIterator[str]:
        try:
            async for chunk in events():
                yield chunk
        except HTTPException:
            # The token was revoked while the feed was open: end the stream.
            return
        finally:
            hub.unsubscribe(subscription)

    return StreamingResponse(guarded(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def load(session: Session, alert_id: UUID, *, lock: bool) -> dict[str, Any]:
    row = await session.fetch_one(
        f"SELECT {ALERT_COLUMNS}, a.evidence FROM alerts.alerts a WHERE a.alert_id = %s"
        + (" FOR UPDATE" if lock else ""), (alert_id,))
    if row is None:
        # Not there, or not one of mine: the same answer, so ids of other schools leak nothing.
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id} in your queue")
    return row


async def alert_detail(request: Request, token: str, alert_id: UUID) -> AlertDetail:
    """One alert of the caller's queue with its transitions, the student and the relevant history (404 otherwise)."""
    async with user_session(request, token) as session:
        session.require(*QUEUE_ROLES)
        row = await load(session, alert_id, lock=False)
        transitions = await session.fetch(
            "SELECT at, actor, action, from_state, to_state, from_level, to_level, note FROM alerts.transitions"
            " WHERE alert_id = %s ORDER BY id", (alert_id,))
        student = await session.fetch_one(
            "SELECT r.name, r.sex, r.birth_date, r.grade, s.boarding, s.left_behind, s.disability, s.status"
            " FROM roster.students r FULL JOIN archive.students s ON s.student_key = r.student_key"
            " WHERE coalesce(r.student_key, s.student_key) = %s", (row["student_key"],))
        history: dict[str, list[dict[str, Any]]] = {}
        if row["team"] == "counselling":
            history["surveys"] = await session.fetch(
                "SELECT answered_on, instrument, total, max_total, band, positive_screen, safety_flags"
                " FROM archive.survey_current WHERE student_key = %s AND instrument <> 'hl-student'"
                " ORDER BY answered_on DESC LIMIT 20", (row["student_key"],))
        else:
            history["growth"] = await session.fetch(
                "SELECT measured_on, height_cm, weight_kg, bmi_rounded AS bmi, bmi_for_age_z, who_category, wst586"
                " FROM archive.growth_current WHERE student_key = %s ORDER BY measured_on DESC LIMIT 20",
                (row["student_key"],))
            history["vision"] = await session.fetch(
                "SELECT measured_on, ucva_right, ucva_left, se_right, se_left, myopia_grade, screening_myopia"
                " FROM archive.vision_current WHERE student_key = %s ORDER BY measured_on DESC LIMIT 20",
                (row["student_key"],))
        await audit_reads(session, [row], "alert_detail")
        base = _alert(row, session.now).model_dump()
        return AlertDetail(**base, evidence=row["evidence"], transitions=[TransitionOut(**t) for t in transitions],
                           student=student, history=history)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=2000)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: str = Field(description=f"one of {', '.join(OUTCOMES)}")
    note: str | None = Field(default=None, max_length=2000)


class ReferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    referred_to: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
                             description="code of the service the student is referred to")
    note: str | None = Field(default=None, max_length=2000)


class ReassignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


class EmptyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=2000)


async def act(request: Request, token: str, alert_id: UUID, action: Action, **arguments: Any) -> AlertOut:
    """Apply `action` to one alert of the caller's queue (`models.alerts` decides), record and notify it."""
    async with user_session(request, token) as session:
        session.require(*QUEUE_ROLES)
        row = await load(session, alert_id, lock=True)
        if action == "reassign":
            serves = await session.fetch_one("SELECT auth.user_serves(%s, %s, %s) AS ok",
                                             (arguments["assignee"], row["school_id"], row["team"]))
            if not serves or not serves["ok"]:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                    {"code": "assignee_not_serving",
                                     "reason": f"{arguments['assignee']} does not act on {row['team']} alerts"
                                               f" of school {row['school_id']}"})
        try:
            state, transition = apply_action(state_of(row), action, actor=session.user_id, now=session.now,
                                             **arguments)
        except TransitionRefused as refused:
            code = status.HTTP_409_CONFLICT if refused.code in _CONFLICTS else status.HTTP_422_UNPROCESSABLE_CONTENT
            raise HTTPException(code, {"code": refused.code, "reason": refused.reason}) from None
        async with session.conn.cursor() as cursor:
            await cursor.execute(UPDATE_STATE_SQL, state_parameters(alert_id, state, now=session.now))
            await cursor.execute(INSERT_TRANSITION_SQL, transition_parameters(alert_id, transition))
            await cursor.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(alert_id)))
        updated = await load(session, alert_id, lock=False)
        # Acting on an alert shows its concern and student key again: audited as a read is.
        await audit_reads(session, [updated], f"act:{action}")
        return _alert(updated, session.now)
