"""`GET /risk`: students to review first by a screening model's risk (not a diagnosis).

HTTP only: `services.screening_models.ranking` reads the ranking the caller may see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from services.access.session import TokenHash, user_session
from services.screening_models.ranking import RISK_ROLES, ranked_rows

router = APIRouter(prefix="/risk", tags=["screening models"])


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
