"""`POST /screenings`: one screening or health record from a school doctor or a screening device.

HTTP only: `services.intake.submission` checks, classifies and publishes it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from services.access.session import TokenHash
from services.intake.submission import ScreeningIn, ScreeningOut, submit_screening

router = APIRouter(prefix="/screenings", tags=["screenings"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ScreeningOut,
             summary="submit one screening or health record")
async def submit(request: Request, token: TokenHash, body: ScreeningIn) -> ScreeningOut:
    return await submit_screening(request, token, body)
