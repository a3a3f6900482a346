"""Authentication and the per-request database session.

Every request runs its queries in one transaction under the NOLOGIN API role (`SET LOCAL ROLE`)
with `schoolhealth.token_sha256` set to the hash of the presented bearer token. PostgreSQL's
row-level policies resolve the user from that hash, so what a request can read or change is
decided by the database, not only by this code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import psycopg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.access.users import hash_token
from services.platform.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="a per-user token from `schoolhealth users token`")

UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}
# Failed sign-ins and refused bearer tokens a source may have in 15 minutes before it is slowed.
FREE_FAILURES = 5


def failure_delay(failures: int) -> float:
    """Seconds to wait before answering a source with `failures` recent failures: none for the
    first few, then 2, 4, 8 … up to 30 seconds."""
    return 0.0 if failures < FREE_FAILURES else min(2.0 ** (failures - FREE_FAILURES + 1), 30.0)


def request_source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def refuse_bearer_token(pool: AsyncConnectionPool[Any], role: str, source: str) -> None:
    """Record a refused bearer token from `source`, then wait as long as its failures warrant.

    The wait holds no database connection; the caller answers 401 after it.
    """
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        row = await (await conn.execute("SELECT auth.bearer_token_refused(%s)", (source,))).fetchone()
    # As on the sign-in form: the failures before this one decide the wait (five are free).
    await asyncio.sleep(failure_delay(int(row[0]) - 1 if row else 0))


def api_role(settings: Settings) -> str:
    """The NOLOGIN role requests run as (created by migration 0003)."""
    return f"{settings.pg_app_user}_api"


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    conn: psycopg.AsyncConnection[Any]
    user_id: str
    role: str
    now: datetime

    async def fetch(self, query: str | sql.Composable, params: Any = None) -> list[dict[str, Any]]:
        async with self.conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(query, params)  # type: ignore[arg-type]
            return await cursor.fetchall()

    async def fetch_one(self, query: str | sql.Composable, params: Any = None) -> dict[str, Any] | None:
        rows = await self.fetch(query, params)
        return rows[0] if rows else None

    async def audit_psych_reads(self, reads: Sequence[tuple[str, str, UUID | None]], what: str) -> None:
        """One `audit.psych_reads` row per (student key, school, alert or None) read, in this transaction.

        The table's trigger stamps the authenticated user; rows can be added, never changed.
        """
        if reads:
            async with self.conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO audit.psych_reads (user_id, student_key, school_id, alert_id, what)"
                    " VALUES ('', %s, %s, %s, %s)", [(*read, what) for read in reads])

    async def policy_schools(self) -> list[str] | None:
        """The schools whose rows row-level security may let this user see (served, led or in a served
        county); None when it sees every school.

        The policies test each row against these schools; a query that also names them lets the
        planner find the rows through a school index instead of filtering the whole province.
        """
        row = await self.fetch_one("SELECT auth.sees_all() AS everything,"
                                   " ARRAY(SELECT auth.visible_schools() UNION SELECT auth.lead_schools()) AS schools")
        return None if row is None or row["everything"] else list(row["schools"])

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"the {self.role} role may not do this (allowed: {', '.join(roles)})")


async def token_hash(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The SHA-256 of the bearer token; 401 without one."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=UNAUTHENTICATED)
    return hash_token(credentials.credentials)


TokenHash = Annotated[str, Depends(token_hash)]


@contextlib.asynccontextmanager
async def user_session(request: Request, token_sha256: str, *, web: bool = False,
                       record_failure: bool = True) -> AsyncIterator[Session]:
    """One transaction as the token's user; 401 if the token is unknown, revoked or its user disabled.

    `web`: the token came from the web pages' cookie, which must hold a web session (an API token
    there is refused). Otherwise it is a bearer token, and a refused one is recorded against the
    request's source and answered only after that source's slowdown (`record_failure=False`: the
    caller records it, as the sign-in form does).

    The transaction commits when the block ends without an exception and rolls back otherwise,
    so a refused state change leaves nothing behind.
    """
    settings: Settings = request.app.state.settings
    pool: AsyncConnectionPool[Any] = request.app.state.pool
    clock: Callable[[], datetime] = request.app.state.clock
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(api_role(settings))))
        await conn.execute("SELECT set_config('schoolhealth.token_sha256', %s, true)", (token_sha256,))
        row = await (await conn.execute(
            "SELECT auth.current_user_id(), auth.current_role_name(), auth.current_token_kind()")).fetchone()
        valid = row is not None and row[0] is not None and (not web or row[2] == "web_session")
        if valid:
            assert row is not None
            yield Session(conn=conn, user_id=row[0], role=row[1], now=clock())
    if not valid:
        if not web and record_failure:
            await refuse_bearer_token(pool, api_role(settings), request_source(request))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown, revoked or disabled token",
                            headers=UNAUTHENTICATED)
