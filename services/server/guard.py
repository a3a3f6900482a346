"""Request limits in front of every route, before FastAPI parses anything.

- A body is capped by its declared length and again while it streams in (413), at 6 MiB for the
  upload page and 256 KiB elsewhere; nothing larger is ever buffered or parsed.
- A request with a body must carry a valid token (bearer header, or the web session cookie)
  before its body is read: a stranger's 50 MB JSON costs one hash and one indexed lookup.
- A query string with a NUL byte or bytes that are not UTF-8 is answered 400; text that
  PostgreSQL cannot store (NUL, lone surrogates) raises in the handler and is answered 422 by the
  exception handlers installed here, never 500.
- Every response carries the security headers (CSP, X-Frame-Options, nosniff, Referrer-Policy).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg import sql

from services.access.users import hash_token

MAX_BODY_BYTES = 256 * 1024
MAX_UPLOAD_BODY_BYTES = 6 * 1024 * 1024
UPLOAD_PATHS = ("/web/doctor/import", "/web/doctor/fitness-upload")
#: Bodies that may come without a session: the sign-in form itself.
OPEN_PATHS = ("/web/login",)
SESSION_COOKIE = "shk_session"

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# The API's interactive docs load their script and styles from a CDN: a looser policy there only.
_DOCS_CSP = (b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
             b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com;"
             b" frame-ancestors 'none'")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _token(scope: Scope, headers: dict[bytes, bytes]) -> tuple[str, bool] | None:
    """(token, whether it came from the web session cookie)."""
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), False
    if scope["path"].startswith("/web"):
        for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and value:
                return value, True
    return None


class RequestGuard:
    """Pure ASGI middleware (streaming responses such as the live feed pass through untouched)."""

    def __init__(self, app: ASGIApp, *, authenticate: Callable[[Scope, str, bool], Awaitable[bool]]) -> None:
        self.app = app
        self._authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, _DOCS_CSP if name == b"content-security-policy" and path in ("/docs", "/redoc")
                          else value) for name, value in SECURITY_HEADERS if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        query: bytes = scope.get("query_string", b"")
        if b"\x00" in query or b"%00" in query:
            await _plain(send_with_headers, 400, "the query string contains a NUL byte")
            return
        try:
            unquote_to_bytes(query.replace(b"+", b" ")).decode("utf-8")
            path.encode("utf-8")
        except UnicodeError:
            await _plain(send_with_headers, 400, "the query string is not UTF-8")
            return
        if "\x00" in path:
            await _plain(send_with_headers, 400, "the path contains a NUL byte")
            return

        headers = _headers(scope)
        limit = MAX_UPLOAD_BODY_BYTES if path in UPLOAD_PATHS else MAX_BODY_BYTES
        declared = headers.get(b"content-length")
        has_body = scope["method"] in ("POST", "PUT", "PATCH", "DELETE") and (
            declared not in (None, b"0") or b"chunked" in headers.get(b"transfer-encoding", b""))
        if declared is not None:
            try:
                declared_length = int(declared)
            except ValueError:
                await _plain(send_with_headers, 400, "Content-Length is not a number")
                return
            if declared_length > limit:
                await _plain(send_with_headers, 413, f"the request body is larger than {limit} bytes")
                return
        if has_body and path not in OPEN_PATHS:
            token = _token(scope, headers)
            if token is None or not await self._authenticate(scope, *token):
                if path.startswith("/web"):
                    await send_with_headers({"type": "http.response.start", "status": 303,
                                             "headers": [(b"location", b"/web/login"), (b"content-length", b"0")]})
                    await send_with_headers({"type": "http.response.body", "body": b""})
                else:
                    await _plain(send_with_headers, 401, "missing, unknown, revoked or expired token",
                                 extra=[(b"www-authenticate", b"Bearer")])
                return

        received = 0
        started = False
        refused = False

        async def counted_receive() -> Message:
            # Over the limit, the guard answers 413 itself and tells the route the client left:
            # whatever the route then tries to send is dropped.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _plain(send_with_headers, 413, f"the request body is larger than {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send_with_headers(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except Exception:
            if not refused:
                raise


async def _plain(send: Send, status: int, detail: str, *, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, api_role: str) -> None:
    """The guard and the 422 handlers for text PostgreSQL cannot hold, on `app`."""

    async def authenticate(scope: Scope, token: str, web: bool) -> bool:
        """A valid token: a web session if it came in the cookie; a refused bearer token is recorded
        against the source and answered after its slowdown (`services.access.session`)."""
        from services.access.session import refuse_bearer_token

        pool = scope["app"].state.pool
        token_sha256 = hash_token(token)
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(api_role)))
            await conn.execute("SELECT set_config('schoolhealth.token_sha256', %s, true)", (token_sha256,))
            row = await (await conn.execute("SELECT auth.current_user_id(), auth.current_token_kind()")).fetchone()
        valid = bool(row and row[0]) and (not web or (row is not None and row[1] == "web_session"))
        if not valid and not web:
            client = scope.get("client")
            await refuse_bearer_token(pool, api_role, client[0] if client else "unknown")
        return valid

    async def unstorable(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": {"code": "unstorable_text",
                                        "reason": "the request contains text that cannot be stored "
                                                  "(a NUL byte or an invalid character)"}}, status_code=422)

    app.add_exception_handler(psycopg.DataError, unstorable)
    app.add_exception_handler(UnicodeEncodeError, unstorable)
    app.add_middleware(RequestGuard, authenticate=authenticate)
