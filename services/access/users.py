"""API users and their bearer tokens (`schoolhealth users`).

A token is shown once, when it is issued; the database keeps only its SHA-256. Tokens carry 256
random bits, so a plain hash suffices (no password to brute-force). These functions run as the
owner role: user management is an administrator's job, outside the API's row-level security.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from services.platform.settings import Settings

ROLES = ("counsellor", "school_doctor", "county_officer", "health_office", "admin", "device")
# The identities the operator's importers stamp on their events (`submitted_by`): they may write
# for every school, and no user may take these names (migration 0044).
OPERATOR_IDENTITIES = ("importer", "fitness-importer")
TOKEN_PREFIX = "shk_"  # noqa: S105  (a visible prefix, not a secret)
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class UserError(ValueError):
    """A user operation that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    user_id: str
    role: str
    disabled: bool
    schools: tuple[str, ...]
    lead_schools: tuple[str, ...]
    counties: tuple[str, ...]
    active_tokens: int


API_TOKEN_LIFETIME = timedelta(days=180)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _issue(conn: psycopg.Connection[Any], user_id: str) -> str:
    token = new_token()
    # API tokens expire (web sign-ins get sessions of their own, of hours).
    conn.execute("INSERT INTO auth.tokens (token_sha256, user_id, expires_at) VALUES (%s, %s, now() + %s)",
                 (hash_token(token), user_id, API_TOKEN_LIFETIME))
    return token


def add_user(settings: Settings, user_id: str, role: str, *, schools: Iterable[str] = (),
             lead_schools: Iterable[str] = (), counties: Iterable[str] = ()) -> str:
    """Create a user serving `schools` (leading `lead_schools`) or `counties`; return its first token."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if not _USER_ID.fullmatch(user_id):
        raise UserError("a user id is a code: letters, digits and . _ : - (at most 64), not a name or e-mail")
    schools, lead_schools, counties = list(schools), list(lead_schools), list(counties)
    if counties and role not in ("county_officer", "admin"):
        raise UserError("only county officers and admins serve whole counties")
    if role == "health_office" and (schools or lead_schools or counties):
        raise UserError("the health office sees aggregates only; it serves no school")
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        try:
            conn.execute("INSERT INTO auth.users (user_id, role) VALUES (%s, %s)", (user_id, role))
        except psycopg.errors.UniqueViolation:
            raise UserError(f"user {user_id} already exists") from None
        for school in dict.fromkeys([*schools, *lead_schools]):
            conn.execute("INSERT INTO auth.user_schools (user_id, school_id, is_lead) VALUES (%s, %s, %s)",
                         (user_id, school, school in lead_schools))
        for county in dict.fromkeys(counties):
            conn.execute("INSERT INTO auth.user_counties (user_id, county_id) VALUES (%s, %s)", (user_id, county))
        return _issue(conn, user_id)


def issue_token(settings: Settings, user_id: str) -> str:
    """A new token for an existing, enabled user (earlier tokens stay valid until revoked)."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        row = conn.execute("SELECT disabled FROM auth.users WHERE user_id = %s", (user_id,)).fetchone()
        if row is None:
            raise UserError(f"no user {user_id}")
        if row[0]:
            raise UserError(f"user {user_id} is disabled")
        return _issue(conn, user_id)


def disable_user(settings: Settings, user_id: str) -> None:
    """Disable a user and revoke all their tokens (effective at their next request)."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        if conn.execute("UPDATE auth.users SET disabled = true WHERE user_id = %s", (user_id,)).rowcount == 0:
            raise UserError(f"no user {user_id}")
        conn.execute("UPDATE auth.tokens SET revoked = true WHERE user_id = %s", (user_id,))


def list_users(settings: Settings) -> list[User]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        rows = conn.execute(
            """SELECT u.user_id, u.role, u.disabled,
                   coalesce(array_agg(DISTINCT us.school_id) FILTER (WHERE us.school_id IS NOT NULL), '{}'),
                   coalesce(array_agg(DISTINCT us.school_id) FILTER (WHERE us.is_lead), '{}'),
                   coalesce(array_agg(DISTINCT uc.county_id) FILTER (WHERE uc.county_id IS NOT NULL), '{}'),
                   (SELECT count(*) FROM auth.tokens t WHERE t.user_id = u.user_id AND NOT t.revoked)
               FROM auth.users u
               LEFT JOIN auth.user_schools us ON us.user_id = u.user_id
               LEFT JOIN auth.user_counties uc ON uc.user_id = u.user_id
               GROUP BY u.user_id ORDER BY u.user_id""").fetchall()
    return [User(user_id=r[0], role=r[1], disabled=r[2], schools=tuple(r[3]), lead_schools=tuple(r[4]),
                 counties=tuple(r[5]), active_tokens=int(r[6])) for r in rows]
