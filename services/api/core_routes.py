"""`/health`, `/me`, `/rules` and `/summary`: the API's small endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from models.rules import rules_table
from services.access.session import TokenHash, user_session

router = APIRouter()


class Me(BaseModel):
    user_id: str
    role: str
    schools: list[str]


@router.get("/health", tags=["ops"], summary="liveness and database reachability (no authentication)")
async def health(request: Request) -> dict[str, str]:
    async with request.app.state.pool.connection() as conn:
        await conn.execute("SELECT 1")
    return {"status": "ok"}


@router.get("/me", response_model=Me, tags=["users"])
async def me(request: Request, token: TokenHash) -> Me:
    async with user_session(request, token) as session:
        rows = await session.fetch("SELECT auth.visible_schools() AS school_id ORDER BY 1")
        return Me(user_id=session.user_id, role=session.role, schools=[r["school_id"] for r in rows])


@router.get("/rules", tags=["alerts"], summary="the alert rules in force, with versions")
async def rules(request: Request, token: TokenHash) -> list[dict[str, Any]]:
    async with user_session(request, token):
        return list(rules_table())


@router.get("/summary", tags=["alerts"], summary="open alerts per school (counts only, no individual record)")
async def summary(request: Request, token: TokenHash) -> list[dict[str, Any]]:
    async with user_session(request, token) as session:
        session.require("health_office", "county_officer", "admin", "counsellor", "school_doctor")
        return await session.fetch("SELECT * FROM alerts.school_summary ORDER BY school_id")
