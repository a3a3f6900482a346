"""Students to review first: the screening models' risk scores, for the people who act on them.

A counsellor gets the depression model's ranking for the schools they serve, a school doctor the
myopia-onset and overweight rankings; row-level security on `ml.risk_scores` enforces it (a model
the caller's role does not act on answers with an empty list). Reading depression scores is a
read of psychological data and is audited. The scores prioritise review; they are not diagnoses.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from services.api.session import Session, TokenHash, user_session
from services.api.students import student_facts

router = APIRouter(prefix="/risk", tags=["screening models"])

RISK_ROLES = ("counsellor", "school_doctor", "county_officer", "admin")
MODEL_TEAMS = {"depression": "counselling", "myopia_onset": "school_doctor", "overweight": "school_doctor"}
# The team each role acts for; county officers and admins see every team's models.
_ROLE_TEAMS = {"counsellor": "counselling", "school_doctor": "school_doctor"}


def models_for(role: str) -> list[str]:
    """The models whose rankings a role acts on, in a fixed order (row-level security still decides rows)."""
    team = _ROLE_TEAMS.get(role)
    return [name for name, model_team in MODEL_TEAMS.items() if team is None or model_team == team]


class RiskOut(BaseModel):
    rank: int
    student_key: str
    name: str | None
    grade: int | None
    """The grade in today's school year (not the grade at registration); None past grade 9."""
    class_name: str | None = None
    school_id: str
    school_name: str | None = None
    model: str
    version: str
    score: float
    scored_at: datetime
    open_alerts: int
    """Open alerts of the model's team for this student: already on someone's queue."""


@router.get("", response_model=list[RiskOut],
            summary="students to review first, by a screening model's risk (not a diagnosis)")
async def ranked(
    request: Request, token: TokenHash,
    model: Literal["depression", "myopia_onset", "overweight"],
    school_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RiskOut]:
    """Highest risk first, among the students of the schools I serve that the model scored."""
    async with user_session(request, token) as session:
        session.require(*RISK_ROLES)
        today = session.now.astimezone(request.app.state.settings.zone).date()
        rows = await ranked_rows(session, model, school_id=school_id, limit=limit, today=today)
        return [RiskOut(**row) for row in rows]


async def ranked_rows(session: Session, model: str, *, today: date, school_id: str | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
    """The ranking the caller may see (row-level security), highest risk first, its reads audited."""
    rows = await session.fetch(
        "SELECT r.student_key, r.school_id, r.model, r.version, r.score, r.scored_at, ro.name,"
        " (SELECT count(*) FROM alerts.alerts a WHERE a.student_key = r.student_key AND a.team = %(team)s"
        "   AND a.state IN ('open', 'acknowledged', 'in_progress'))::int AS open_alerts"
        " FROM ml.risk_scores r"
        " LEFT JOIN roster.students ro ON ro.student_key = r.student_key"
        " WHERE r.model = %(model)s AND (%(school)s::text IS NULL OR r.school_id = %(school)s)"
        " ORDER BY r.score DESC, r.student_key LIMIT %(limit)s",
        {"model": model, "team": MODEL_TEAMS[model], "school": school_id, "limit": limit})
    if model == "depression":
        await session.audit_psych_reads([(row["student_key"], row["school_id"], None) for row in rows], "risk_scores")
    facts = await student_facts(session, [row["student_key"] for row in rows], today)
    for position, row in enumerate(rows, start=1):
        row["rank"] = position
        known = facts.get(row["student_key"])
        row["grade"] = known.grade if known else None
        row["class_name"] = known.class_name if known else None
        row["school_name"] = known.school_name if known else None
    return rows
