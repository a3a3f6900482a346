"""Alert queue endpoints: the queue, one alert with the student's history, state changes, live feed.

HTTP only: each route opens or passes the caller's session to `services.alerts.queue`.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from models.alerts import OPEN_STATES_IN_ORDER, State
from services.access.session import TokenHash, user_session
from services.alerts.queue import (
    AlertDetail,
    AlertOut,
    EmptyIn,
    NoteIn,
    ReassignIn,
    ReferIn,
    ResolveIn,
    act,
    alert_feed,
    queue_rows,
)
from services.alerts.queue import alert_detail as load_alert_detail

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("", response_model=list[AlertOut], summary="my queue, most urgent first")
async def queue(  # noqa: PLR0917  (FastAPI query parameters)
    request: Request, token: TokenHash,
    state: Annotated[list[State] | None,
                     Query(description="states to list; default the open ones")] = None,
    school_id: Annotated[str | None, Query(max_length=64)] = None,
    team: Literal["counselling", "school_doctor"] | None = None,
    escalated: Annotated[bool | None, Query(description="only alerts escalated at least once")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertOut]:
    """Alerts of the schools I serve, ordered by priority then acknowledgement deadline."""
    states = list(state or OPEN_STATES_IN_ORDER)
    async with user_session(request, token) as session:
        return await queue_rows(session, states=states, school_id=school_id, team=team, escalated=escalated,
                                limit=limit)


@router.get("/feed", summary="live feed of new and changed alerts (server-sent events)",
            response_class=StreamingResponse)
async def feed(request: Request, token: TokenHash) -> StreamingResponse:
    """`text/event-stream`: one `alert` event per new or changed alert I may see; `: keepalive` comments."""
    return await alert_feed(request, token)


@router.get("/{alert_id}", response_model=AlertDetail, summary="one alert with the student's relevant history")
async def alert_detail(request: Request, token: TokenHash, alert_id: UUID) -> AlertDetail:
    return await load_alert_detail(request, token, alert_id)


@router.post("/{alert_id}/acknowledge", response_model=AlertOut, summary="take responsibility (stops escalation)")
async def acknowledge(request: Request, token: TokenHash, alert_id: UUID, body: EmptyIn | None = None) -> AlertOut:
    return await act(request, token, alert_id, "acknowledge", note=body.note if body else None)


@router.post("/{alert_id}/start", response_model=AlertOut, summary="mark an acknowledged alert in progress")
async def start(request: Request, token: TokenHash, alert_id: UUID, body: EmptyIn | None = None) -> AlertOut:
    return await act(request, token, alert_id, "start", note=body.note if body else None)


@router.post("/{alert_id}/notes", response_model=AlertOut, summary="add a note to the alert's history")
async def add_note(request: Request, token: TokenHash, alert_id: UUID, body: NoteIn) -> AlertOut:
    return await act(request, token, alert_id, "note", note=body.note)


@router.post("/{alert_id}/resolve", response_model=AlertOut, summary="resolve with an outcome")
async def resolve(request: Request, token: TokenHash, alert_id: UUID, body: ResolveIn) -> AlertOut:
    return await act(request, token, alert_id, "resolve", outcome=body.outcome, note=body.note)


@router.post("/{alert_id}/refer", response_model=AlertOut, summary="refer the student to another service")
async def refer(request: Request, token: TokenHash, alert_id: UUID, body: ReferIn) -> AlertOut:
    return await act(request, token, alert_id, "refer", referred_to=body.referred_to, note=body.note)


@router.post("/{alert_id}/reassign", response_model=AlertOut, summary="hand the alert to a colleague")
async def reassign(request: Request, token: TokenHash, alert_id: UUID, body: ReassignIn) -> AlertOut:
    return await act(request, token, alert_id, "reassign", assignee=body.assignee, note=body.note)
