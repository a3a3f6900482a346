"""The `/web` routes: login, the school doctor's pages and the alert queue.

Authentication: the login form takes a user's access token (from `schoolhealth users`) and keeps
it in an HttpOnly, Secure, SameSite=Strict cookie scoped to `/web`. Every page hashes it and opens
the API's `user_session`, so what a page shows or changes is decided by the database's row-level
security as for the API. POST forms carry a CSRF token derived from the session token (HMAC), so
a page of another site can neither read nor forge it; the login form uses a double-submit cookie.
Alert actions and single screenings call the same domain functions as the API
(`services.alerts.queue`, `services.intake.submission`), so the rules are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from pydantic import ValidationError

from models.alerts import OPEN_STATES_SQL, OUTCOMES
from models.contracts import Event
from models.evidence_text import describe_evidence
from models.fitness import BAND_LABELS, ITEM_INFO, items_for
from models.follow_up import FINDINGS, fitness_findings, growth_findings, vision_findings
from models.follow_up import STATES as FOLLOW_UP_STATES
from models.importing import COLUMN_NAMES_ZH, COLUMNS, HeaderRejected, RowRejected, check_header, check_row
from models.rules import evaluate_batch
from services.access.session import FREE_FAILURES, Session, failure_delay, user_session
from services.access.users import hash_token, new_token
from services.alerts import queue as alert_queue
from services.intake.bounded_files import WEB_LIMITS, FileRefused
from services.intake.importer import ImportSummary, Rejected, UnreadableFile, read_rows, shown_code
from services.intake.importer import publish_events as _publish
from services.intake.submission import SUBMIT_ROLES, ScreeningIn, submit_screening
from services.screening_models import ranking
from services.students.facts import StudentFacts, school_names, student_facts
from services.students.follow_up import StepRefused, follow_up_rows, record_step
from services.web.class_sheet import (
    FITNESS_ATTEMPTS,
    SHEET_COLUMNS,
    RosterStudent,
    fitness_column_applies,
    fitness_columns,
    sheet_rows,
)
from services.web.letters import TITLES, Letter, build_letter
from services.web.letters import greeting as letter_greeting
from services.web.messages import LANGUAGES, label, pick_language, translate
from services.web.reasons import translate_reason

router = APIRouter(prefix="/web", include_in_schema=False)

SESSION_COOKIE = "shk_session"
LOGIN_COOKIE = "shk_login"
LANGUAGE_COOKIE = "shk_lang"
SCREENING_KINDS = ("bmi", "vision")
FOLLOW_UP_CONCERNS = ("obesity", "high_myopia", "severe_thinness")
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
UPLOAD_TTL_SECONDS = 30 * 60
UPLOAD_SWEEP_SECONDS = 60.0
WEB_SESSION_SECONDS = 8 * 3600
#: Failed sign-ins from one address in 15 minutes before each answer is delayed (2, 4, 8 … 30 s).
FREE_SIGN_IN_FAILURES = FREE_FAILURES
SHOWN_ACCEPTED_ROWS = 50
_STATIC = {"web.css": "text/css; charset=utf-8", "web.js": "text/javascript; charset=utf-8"}
_HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(_HERE / "templates"))
# What a saved screening shows of its classification, in this order.
_SHOWN = {"bmi": ("bmi_display", "bmi_for_age_z", "who_category", "height_for_age_z", "weight_for_age_z",
                  "who_weight_for_age", "wst586", "wst456_wasting", "wst456_stunting"),
          "vision": ("student_grade", "myopia_grade", "screening_myopia")}
_FAMILY_OF_KIND = {"bmi": "bmi-screening", "vision": "vision-screening"}


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: an HMAC keyed by the (HttpOnly) session token itself."""
    return hmac.new(session_token.encode(), b"schoolhealth-web-csrf", hashlib.sha256).hexdigest()


def _language(request: Request) -> str:
    return pick_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def _cookie(response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/web", secure=True, httponly=True, samesite="strict")


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _to_login() -> HTTPException:
    expired = f"{SESSION_COOKIE}=; Max-Age=0; Path=/web; HttpOnly; Secure; SameSite=Strict"
    return HTTPException(status.HTTP_303_SEE_OTHER, headers={"Location": "/web/login", "Set-Cookie": expired})


def _session_token(request: Request) -> str:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise _to_login()
    return token


@contextlib.asynccontextmanager
async def web_session(request: Request) -> AsyncIterator[Session]:
    """The API's per-request database session for the cookie's token; to the login page without one."""
    token_hash = hash_token(_session_token(request))
    async with contextlib.AsyncExitStack() as stack:
        try:
            session = await stack.enter_async_context(user_session(request, token_hash, web=True))
        except HTTPException as error:
            if error.status_code == status.HTTP_401_UNAUTHORIZED:
                raise _to_login() from None
            raise
        yield session


def _check_csrf(request: Request, submitted: str | None) -> None:
    expected = csrf_token(_session_token(request))
    if not submitted or not hmac.compare_digest(expected, submitted):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF token missing or wrong")


def _context(request: Request, session: Session | None, **values: Any) -> dict[str, Any]:
    language = _language(request)
    token = request.cookies.get(SESSION_COOKIE)

    def t(key: str, **arguments: object) -> str:
        return translate(language, key, **arguments)

    def code(prefix: str, value: object) -> str:
        return label(language, prefix, value)

    def reason(text: str) -> str:
        return translate_reason(language, text)

    zone = request.app.state.settings.zone
    return {"request": request, "lang": language, "languages": LANGUAGES, "t": t, "code": code, "reason": reason,
            "import_columns": _import_columns(), "tz": zone, "today": datetime.now(zone).date(),
            "user": None if session is None else {"id": session.user_id, "role": session.role},
            "csrf": csrf_token(token) if token and session is not None else "",
            "here": quote(request.url.path), **values}


def _page(name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(context["request"], name, context, status_code=status_code,
                                      headers={"Cache-Control": "no-store"})


def _error(request: Request, session: Session | None, code: int) -> HTMLResponse:
    return _page("error.html", _context(request, session, code=code), status_code=code)


async def _visible_schools(session: Session) -> list[str]:
    return [r["s"] for r in await session.fetch("SELECT auth.visible_schools() AS s ORDER BY 1")]


# --- login, language, static ---------------------------------------------------------------------

@router.get("", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    async with web_session(request) as session:
        role = session.role
    return _redirect("/web/doctor/class-sheet" if role == "school_doctor" else "/web/alerts")


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = _page("login.html", _context(request, None, login_csrf=nonce, failed=False))
    _cookie(response, LOGIN_COOKIE, nonce, max_age=3600)
    return response


async def _sign_in_failures(request: Request, source: str, *, record: bool) -> int:
    """Failed sign-ins from `source` in the last 15 minutes (recording one more first if `record`)."""
    from psycopg import sql

    from services.access.session import api_role

    async with request.app.state.pool.connection() as conn, conn.transaction():
        await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(api_role(request.app.state.settings))))
        function = "auth.sign_in_failed" if record else "auth.recent_sign_in_failures"
        row = await (await conn.execute(f"SELECT {function}(%s)", (source,))).fetchone()
    return int(row[0]) if row else 0


def _slowdown(failures: int) -> float:
    """Seconds to wait before answering a source with `failures` recent failed sign-ins (and refused
    bearer tokens: `services.access.session.failure_delay`)."""
    return failure_delay(failures)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, token: str = Form(max_length=200), csrf: str = Form(max_length=200)) -> Response:
    """Signing in with an API token opens a web session of its own (expiring, revoked at sign-out)."""
    expected = request.cookies.get(LOGIN_COOKIE)
    if not expected or not hmac.compare_digest(expected, csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF token missing or wrong")
    source = request.client.host if request.client else "unknown"
    await asyncio.sleep(_slowdown(await _sign_in_failures(request, source, record=False)))
    token = token.strip()
    session_token = new_token()
    try:
        async with user_session(request, hash_token(token), record_failure=False) as session:
            role = session.role
            await session.conn.execute("SELECT auth.open_web_session(%s, make_interval(secs => %s))",
                                       (hash_token(session_token), WEB_SESSION_SECONDS))
    except HTTPException:
        await _sign_in_failures(request, source, record=True)
        nonce = secrets.token_urlsafe(24)
        refused = _page("login.html", _context(request, None, login_csrf=nonce, failed=True), status_code=401)
        _cookie(refused, LOGIN_COOKIE, nonce, max_age=3600)
        return refused
    response: Response = _redirect("/web/doctor/class-sheet" if role == "school_doctor" else "/web/alerts")
    _cookie(response, SESSION_COOKIE, session_token, max_age=WEB_SESSION_SECONDS)
    response.delete_cookie(LOGIN_COOKIE, path="/web")
    return response


@router.post("/logout")
async def logout(request: Request, csrf: str = Form(max_length=200)) -> Response:
    """Signing out revokes the session on the server: its cookie no longer opens anything."""
    _check_csrf(request, csrf)
    with contextlib.suppress(HTTPException):
        async with web_session(request) as session:
            await session.conn.execute("SELECT auth.close_web_session()")
    response = _redirect("/web/login")
    response.delete_cookie(SESSION_COOKIE, path="/web", secure=True, httponly=True, samesite="strict")
    return response


@router.get("/language/{language}")
async def switch_language(language: str, next: str = "/web") -> Response:
    if language not in LANGUAGES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown language")
    # Only paths of these pages: never an open redirect.
    target = next if next.startswith("/web") and "//" not in next and "\\" not in next else "/web"
    response = _redirect(target)
    response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, path="/web", secure=True,
                        samesite="strict")
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in _STATIC:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return Response((_HERE / "static" / name).read_bytes(), media_type=_STATIC[name],
                    headers={"Cache-Control": "max-age=300"})


# --- school doctor: one screening ----------------------------------------------------------------

def _row_of(kind: str, fields: dict[str, str]) -> dict[str, str]:
    row = {column: fields.get(column, "").strip() for column in COLUMNS[kind]}
    if kind == "bmi" and fields.get("oedema", "").strip():  # blank: not recorded
        row["oedema"] = fields["oedema"].strip()
    if kind == "vision":
        row["wears_glasses"] = "true" if fields.get("wears_glasses") in ("true", "on", "1") else "false"
    return row


def _shown_classification(kind: str, classification: dict[str, Any]) -> list[tuple[str, Any]]:
    shown = []
    for name in _SHOWN[kind]:
        value = classification.get(name)
        if value is None:  # a measurement not taken, or a z-score WHO gives none for
            value = "not_applicable"
        if isinstance(value, float):
            value = round(value, 2)
        shown.append(("bmi" if name == "bmi_display" else name, value))
    return shown


@router.get("/doctor/screening", response_class=HTMLResponse)
async def screening_form(request: Request, kind: str = "bmi") -> Response:
    async with web_session(request) as session:
        if session.role not in SUBMIT_ROLES:
            return _error(request, session, 403)
        schools = await _visible_schools(session)
        kind = kind if kind in SCREENING_KINDS else "bmi"
        row = {"measured_on": session.now.date().isoformat(), "screener": session.user_id,
               "school_id": schools[0] if schools else ""}
        return _page("screening.html", _context(request, session, kind=kind, schools=schools, row=row,
                                                error=None))


@router.get("/doctor/roster/lookup")
async def roster_lookup(request: Request, q: str = "") -> JSONResponse:
    """Students of the caller's schools whose student number or name matches ``q`` (at most 10)."""
    q = q.strip()[:40]
    async with web_session(request) as session:
        if session.role not in SUBMIT_ROLES or not q:
            return JSONResponse({"students": []}, headers={"Cache-Control": "no-store"})
        rows = await session.fetch(
            "SELECT student_key, national_number FROM roster.students"
            " WHERE upper(national_number) = upper(%(q)s) OR name LIKE %(prefix)s OR upper(national_number) LIKE"
            " upper(%(prefix)s) ORDER BY (upper(national_number) = upper(%(q)s)) DESC, name LIMIT 10",
            {"q": q, "prefix": q.replace("%", "").replace("_", "") + "%"})
        facts = await student_facts(session, [row["student_key"] for row in rows], _today(request, session))
        language = _language(request)
        students = []
        for row in rows:
            f = facts.get(row["student_key"])
            if f is None:
                continue
            students.append({"number": row["national_number"], "name": f.name, "sex": f.sex,
                             "birth_date": f.birth_date.isoformat() if f.birth_date else None,
                             "school_id": f.school_id, "school_name": f.school_name,
                             "grade_class": _grade_class(f, language),
                             "age": translate(language, "age.years", n=f.age) if f.age is not None else ""})
    return JSONResponse({"students": students}, headers={"Cache-Control": "no-store"})


@router.post("/doctor/screening/check")
async def screening_check(request: Request) -> JSONResponse:
    """Immediate validation while typing: the importer's own rules, nothing stored or published."""
    body = await request.json()
    _check_csrf(request, request.headers.get("x-csrf-token"))
    kind = body.get("kind") if body.get("kind") in SCREENING_KINDS else "bmi"
    fields = {str(k): str(v) for k, v in (body.get("fields") or {}).items()}
    touched = set(body.get("touched") or [])
    async with web_session(request) as session:
        user_id, now = session.user_id, session.now
    secret = request.app.state.settings.student_key_secret.get_secret_value().encode()
    try:
        # A valid row always classifies (`check_row`): only the contract's refusals come back.
        check_row(kind, _row_of(kind, fields), secret=secret, submitted_by=user_id, now=now)  # type: ignore[arg-type]
    except RowRejected as error:
        shown = error.field in touched
        return JSONResponse({"ok": False, "field": error.field if shown else None,
                             "reason": translate_reason(_language(request), error.reason) if shown else None})
    return JSONResponse({"ok": True, "field": None, "reason": None})


@router.post("/doctor/screening", response_class=HTMLResponse)
async def screening_submit(request: Request) -> Response:
    form = await request.form()
    _check_csrf(request, str(form.get("csrf", "")))
    kind = str(form.get("kind", "bmi"))
    kind = kind if kind in SCREENING_KINDS else "bmi"
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    row = _row_of(kind, fields)
    token_hash = hash_token(_session_token(request))
    error: dict[str, Any] | None = None
    result = None
    try:
        result = await submit_screening(request, token_hash, ScreeningIn(kind=kind, row=row))  # type: ignore[arg-type]
    except HTTPException as refused:
        if refused.status_code == status.HTTP_401_UNAUTHORIZED:
            raise _to_login() from None
        detail = refused.detail
        error = detail if isinstance(detail, dict) else {"reason": str(detail)}
    async with web_session(request) as session:
        schools = await _visible_schools(session)
        if result is None:
            return _page("screening.html", _context(request, session, kind=kind, schools=schools, row=row,
                                                    error=error), status_code=422)
        return _page("screening_saved.html", _context(
            request, session, kind=kind, result=result,
            shown=_shown_classification(kind, result.classification)))


@router.get("/doctor/screening/{event_id}/archived")
async def screening_archived(request: Request, event_id: uuid.UUID, kind: str) -> JSONResponse:
    if kind not in SCREENING_KINDS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown kind")
    async with web_session(request) as session:
        # One id's family from the registry (migration 0080): the archive has no index on the id.
        row = await session.fetch_one("SELECT archive.event_family(%s) AS family", (event_id,))
    archived = bool(row and row["family"] == _FAMILY_OF_KIND[kind])
    return JSONResponse({"archived": archived}, headers={"Cache-Control": "no-store"})


# --- school doctor: upload a screening day --------------------------------------------------------

@dataclasses.dataclass(slots=True, kw_only=True)
class _Upload:
    user_id: str
    kind: str
    path: Path
    filename: str
    created: float


@dataclasses.dataclass(slots=True, kw_only=True)
class _Preview:
    accepted: list[dict[str, Any]]
    rejected: list[Rejected]
    events: list[Event]
    numbers: dict[int, str] = dataclasses.field(default_factory=dict)  # row → student number, for the page
    origins: list[tuple[int, str | None]] = dataclasses.field(default_factory=list)  # row number, screener


async def _apply_write_scope(session: Session, kind: str, preview: _Preview) -> _Preview:
    """Rows for students not enrolled at a school the user serves move to the rejected rows.

    The database decides (`auth.write_refusal`), as for a single screening through the API.
    """
    if not preview.events:
        return preview
    refusals = await session.fetch(
        "SELECT auth.write_refusal(k, s, %s, NULL) AS refusal FROM unnest(%s::text[], %s::text[])"
        " WITH ORDINALITY AS t(k, s, n) ORDER BY n",
        (kind, [e.student_key for e in preview.events], [e.school_id for e in preview.events]))
    kept = _Preview(accepted=[], rejected=list(preview.rejected), events=[], numbers=preview.numbers, origins=[])
    for event, shown, origin, refusal in zip(preview.events, preview.accepted, preview.origins,
                                             [r["refusal"] for r in refusals], strict=True):
        if refusal is None:
            kept.events.append(event)
            kept.accepted.append(shown)
            kept.origins.append(origin)
        else:
            code = "not_your_school" if refusal == "not_your_school" else "not_your_student"
            kept.rejected.append(Rejected(row_number=origin[0], field="student_number", reason=code,
                                          school_id=shown_code(event.school_id), screener=origin[1]))
    kept.rejected.sort(key=lambda r: r.row_number)
    return kept


def _uploads(request: Request) -> dict[str, _Upload]:
    store: dict[str, _Upload] | None = getattr(request.app.state, "web_uploads", None)
    if store is None:
        store = {}
        request.app.state.web_uploads = store
    sweep_uploads(request.app.state)
    return store


def sweep_uploads(state: Any, *, everything: bool = False) -> int:
    """Delete the temporary files of previews not published within their time (or all of them).

    The API runs this every `UPLOAD_SWEEP_SECONDS` and at shutdown, so an unpublished file with
    student numbers and birth dates never waits on disk for some later request.
    """
    store: dict[str, _Upload] = getattr(state, "web_uploads", None) or {}
    ttl = getattr(state, "upload_ttl_seconds", UPLOAD_TTL_SECONDS)
    removed = 0
    for upload_id, upload in list(store.items()):
        if everything or time.monotonic() - upload.created > ttl:
            shutil.rmtree(upload.path.parent, ignore_errors=True)
            store.pop(upload_id, None)
            removed += 1
    return removed


def _preview(kind: str, path: Path, *, schools: set[str], secret: bytes, user_id: str, now: datetime) -> _Preview:
    """Validate and classify every row as the worker will; rows of schools not served are rejected."""
    # Over WEB_LIMITS (rows, cells, unpacked XLSX) the whole file is refused (FileRefused): an
    # accepted file has every row either in `events` or in `rejected`.
    header, rows = read_rows(path, WEB_LIMITS)
    check_header(kind, header)
    preview = _Preview(accepted=[], rejected=[], events=[])
    for number, row in enumerate(rows, start=1):
        school, screener = shown_code(row.get("school_id")), shown_code(row.get("screener"))
        preview.numbers[number] = (row.get("student_number") or "")[:40]
        try:
            if row.get("school_id") not in schools:
                raise RowRejected("school_id", "not_your_school")
            checked = check_row(kind, row, secret=secret, submitted_by=user_id, now=now)  # type: ignore[arg-type]
        except RowRejected as error:
            preview.rejected.append(Rejected(row_number=number, field=error.field, reason=error.reason,
                                             school_id=school, screener=screener))
            continue
        event, batch = checked.event, checked.batch
        classified = (batch.growth or batch.vision)[0]
        result = dataclasses.asdict(classified.result)
        preview.events.append(event)
        preview.origins.append((number, screener))
        preview.accepted.append({
            "row": number, "school_id": school, "measured_on": row.get("measured_on"),
            "student_number": preview.numbers[number], "student_key": event.student_key, "name": None,
            "shown": _shown_classification(kind, result),
            "alerts": [a.concern for a in evaluate_batch(batch)]})
    return preview


@router.get("/doctor/import", response_class=HTMLResponse)
async def import_form(request: Request) -> Response:
    async with web_session(request) as session:
        if session.role not in SUBMIT_ROLES:
            return _error(request, session, 403)
        return _page("import.html", _context(request, session, problem=None))


def _import_columns() -> dict[str, list[tuple[str, str]]]:
    return {kind: [(column, COLUMN_NAMES_ZH[column]) for column in COLUMNS[kind]] for kind in SCREENING_KINDS}


@router.post("/doctor/import", response_class=HTMLResponse)
async def import_preview(request: Request, file: UploadFile, kind: str = Form(), csrf: str = Form()) -> Response:
    _check_csrf(request, csrf)
    kind = kind if kind in SCREENING_KINDS else "bmi"
    async with web_session(request) as session:
        if session.role not in SUBMIT_ROLES:
            return _error(request, session, 403)
        schools = set(await _visible_schools(session))
        user_id, now = session.user_id, session.now
        context = _context(request, session, problem=None)
    suffix = Path(file.filename or "upload.csv").suffix.lower()
    suffix = suffix if suffix in (".csv", ".xlsx") else ".csv"
    content = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(content) > MAX_UPLOAD_BYTES:
        return _page("import.html", context | {"problem": context["t"]("import.too_large")}, status_code=413)
    directory = Path(tempfile.mkdtemp(prefix="schoolhealth-web-upload-"))
    path = directory / f"upload{suffix}"
    path.write_bytes(content)
    secret = request.app.state.settings.student_key_secret.get_secret_value().encode()
    t = context["t"]
    try:
        preview = await asyncio.to_thread(_preview, kind, path, schools=schools, secret=secret, user_id=user_id,
                                          now=now)
    except HeaderRejected as error:
        shutil.rmtree(directory, ignore_errors=True)
        return _page("import.html", context | {"problem": _header_problem(context, error), "kind": kind},
                     status_code=422)
    except FileRefused as refused:
        shutil.rmtree(directory, ignore_errors=True)
        return _page("import.html", context | {"problem": refused.sentence(context["lang"]), "kind": kind},
                     status_code=413)
    except UnreadableFile as error:
        shutil.rmtree(directory, ignore_errors=True)
        shown = Path(file.filename or "").name[:100] or "upload"
        return _page("import.html", context | {"problem": t(f"import.unreadable.{error.code}", name=shown),
                                               "kind": kind}, status_code=422)
    except Exception:  # any other unreadable content: one sentence, never a traceback
        shutil.rmtree(directory, ignore_errors=True)
        return _page("import.html", context | {"problem": t("import.unreadable"), "kind": kind}, status_code=422)
    async with web_session(request) as session:
        preview = await _apply_write_scope(session, kind, preview)
        names = await _roster_names(session, [a["student_key"] for a in preview.accepted[:SHOWN_ACCEPTED_ROWS]])
    for accepted in preview.accepted[:SHOWN_ACCEPTED_ROWS]:
        accepted["name"] = names.get(accepted["student_key"])
    upload_id = secrets.token_urlsafe(16)
    _uploads(request)[upload_id] = _Upload(user_id=user_id, kind=kind, path=path,
                                           filename=Path(file.filename or "").name[:100], created=time.monotonic())
    return _page("import_preview.html", context | {
        "upload_id": upload_id, "kind": kind, "filename": Path(file.filename or "").name[:100],
        "accepted": preview.accepted[:SHOWN_ACCEPTED_ROWS], "accepted_count": len(preview.accepted),
        "rejected": preview.rejected, "numbers": preview.numbers})


def _header_problem(context: dict[str, Any], error: HeaderRejected) -> str:
    t, zh = context["t"], context["lang"] == "zh-CN"

    def shown(column: str) -> str:
        return f"{COLUMN_NAMES_ZH[column]} ({column})" if zh and column in COLUMN_NAMES_ZH else column

    parts = []
    if error.missing:
        parts.append(f"{t('import.missing')}: " + ", ".join(shown(c) for c in error.missing))
    if error.unexpected:
        parts.append(f"{t('import.unexpected')}: " + ", ".join(repr(c) for c in error.unexpected))
    if not parts and error.reason:
        parts.append(error.reason)
    return f"{t('import.header')}: " + "; ".join(parts)


async def _roster_names(session: Session, keys: list[str]) -> dict[str, str]:
    """Names of these students from the protected roster (row-level security: the user's schools)."""
    if not keys:
        return {}
    rows = await session.fetch("SELECT student_key, name FROM roster.students WHERE student_key = ANY(%s)", (keys,))
    return {row["student_key"]: row["name"] for row in rows}


_TEMPLATE_KINDS = ("bmi", "vision", "roster")


@router.get("/doctor/import/template/{kind}.csv")
async def import_template(request: Request, kind: str) -> Response:
    """An empty file of one kind with its header row, headings in the page's language (UTF-8 with BOM for Excel)."""
    if kind not in _TEMPLATE_KINDS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such template")
    async with web_session(request) as session:
        if session.role not in SUBMIT_ROLES:
            return _error(request, session, 403)
    from models.importing import OPTIONAL_COLUMNS

    columns = (*COLUMNS[kind], *OPTIONAL_COLUMNS.get(kind, ()))
    zh = _language(request) == "zh-CN"
    header = ",".join(COLUMN_NAMES_ZH[c] if zh else c for c in columns)
    name = f"{kind}-template.csv"
    return Response(("\ufeff" + header + "\r\n").encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def _record_rejections(settings: Any, summary: ImportSummary) -> None:
    import psycopg

    from services.intake.importer import record_rejections

    with psycopg.connect(settings.pg_dsn("app")) as conn:
        record_rejections(conn, summary)


@router.post("/doctor/import/{upload_id}/publish", response_class=HTMLResponse)
async def import_publish(request: Request, upload_id: str, csrf: str = Form()) -> Response:
    _check_csrf(request, csrf)
    settings = request.app.state.settings
    async with web_session(request) as session:
        context = _context(request, session, problem=None)
        upload = _uploads(request).get(upload_id)
        if upload is None or upload.user_id != session.user_id:
            return _page("import.html", context | {"problem": context["t"]("import.expired")}, status_code=410)
        # The schools are read again: a user who lost a school since the preview cannot publish for it.
        schools = set(await _visible_schools(session))
        user_id, now = session.user_id, session.now
    secret = settings.student_key_secret.get_secret_value().encode()
    del _uploads(request)[upload_id]
    try:
        preview = await asyncio.to_thread(_preview, upload.kind, upload.path, schools=schools, secret=secret,
                                          user_id=user_id, now=now)
        async with web_session(request) as session:
            preview = await _apply_write_scope(session, upload.kind, preview)
        messages = await asyncio.to_thread(_publish, settings, preview.events) if preview.events else 0
        summary = ImportSummary(kind=upload.kind, path=Path(upload.filename or "upload"), import_id=uuid.uuid4(),
                                accepted=len(preview.events), rejected=preview.rejected, published_messages=messages)
        if summary.rejected:
            await asyncio.to_thread(_record_rejections, settings, summary)
    finally:
        shutil.rmtree(upload.path.parent, ignore_errors=True)
    return _page("import_done.html", context | {"accepted": summary.accepted, "rejected": len(summary.rejected)})


# --- alerts: queue, live feed, one alert, actions, referral letter ---------------------------------

_QUEUE_COLUMNS = alert_queue.ALERT_COLUMNS + ", a.priority_rank, a.evidence, r.name"


async def _queue_rows(request: Request, session: Session, *, alert_id: uuid.UUID | None = None,
                      concerns: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    rows = await session.fetch(
        f"SELECT {_QUEUE_COLUMNS} FROM alerts.alerts a LEFT JOIN roster.students r ON r.student_key = a.student_key"
        f" WHERE a.state IN ({OPEN_STATES_SQL})"
        " AND (%(alert)s::uuid IS NULL OR a.alert_id = %(alert)s)"
        " AND (%(concerns)s::text[] IS NULL OR a.concern = ANY(%(concerns)s))"
        " ORDER BY a.priority_rank, a.ack_deadline, a.opened_at LIMIT 500",
        {"alert": alert_id, "concerns": list(concerns) if concerns else None})
    await alert_queue.audit_reads(session, rows, "web_queue")
    facts = await student_facts(session, [row["student_key"] for row in rows], _today(request, session))
    for row in rows:
        row["overdue"] = row["state"] == "open" and row["ack_deadline"] <= session.now
        row["facts"] = facts.get(row["student_key"])
    return rows


def _today(request: Request, session: Session) -> date:
    """Today in the schools' time zone (a school day starts at midnight Beijing time, not UTC)."""
    return session.now.astimezone(request.app.state.settings.zone).date()


@router.get("/alerts", response_class=HTMLResponse)
async def queue(request: Request) -> Response:
    async with web_session(request) as session:
        if session.role not in alert_queue.QUEUE_ROLES:
            return _error(request, session, 403)
        rows = await _queue_rows(request, session)
        return _page("queue.html", _context(request, session, rows=rows))


@router.get("/alerts/feed")
async def feed(request: Request) -> Response:
    """The API's live feed, authenticated by the session cookie (EventSource sends no header)."""
    return await alert_queue.alert_feed(request, hash_token(_session_token(request)), web=True)


@router.get("/alerts/{alert_id}/row", response_class=HTMLResponse)
async def queue_row(request: Request, alert_id: uuid.UUID) -> Response:
    """One row of the queue table, for the live feed; 204 when the alert left the queue."""
    async with web_session(request) as session:
        rows = await _queue_rows(request, session, alert_id=alert_id)
        if not rows:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        return _page("_alert_row.html", _context(request, session, row=rows[0]))


_LATEST_SCREENING = {
    "vision": "SELECT DISTINCT ON (student_key) * FROM archive.vision_current WHERE student_key = ANY(%s)"
              " ORDER BY student_key, measured_on DESC, ingested_at DESC",
    "growth": "SELECT DISTINCT ON (student_key) * FROM archive.growth_current WHERE student_key = ANY(%s)"
              " ORDER BY student_key, measured_on DESC, ingested_at DESC",
}
LETTER_KINDS = ("vision", "growth")


async def class_students(request: Request, session: Session, *, school: str | None, grade: int,
                         class_name: str | None) -> list[StudentFacts]:
    """The roster's students now in ``grade`` (and ``class_name``) of the caller's schools, by class and name."""
    rows = await session.fetch(
        "SELECT student_key FROM roster.students WHERE (%(school)s::text IS NULL OR school_id = %(school)s)"
        " AND grade BETWEEN %(low)s AND %(high)s",
        {"school": school, "low": max(1, grade - 9), "high": grade})
    facts = await student_facts(session, [row["student_key"] for row in rows], _today(request, session))
    chosen = [f for f in facts.values() if f.grade == grade and f.status != "left"
              and (not class_name or f.class_name == class_name)]
    return sorted(chosen, key=lambda f: ((f.class_name or "").zfill(4), f.name or "", f.student_key))


async def _letters(request: Request, session: Session, kind: str, facts: list[StudentFacts]) -> list[Letter]:
    keys = [f.student_key for f in facts]
    screenings = {row["student_key"]: row for row in await session.fetch(_LATEST_SCREENING[kind], (keys,))}
    cases = {(row["student_key"], row["screening_event_id"]): row["next_check_on"] for row in await session.fetch(
        "SELECT student_key, screening_event_id, next_check_on FROM followup.cases WHERE student_key = ANY(%s)",
        (keys,))}
    language = _language(request)
    return [build_letter(kind, language, f.student_key, f, screenings[f.student_key],
                         next_check=cases.get((f.student_key, screenings[f.student_key]["event_id"])))
            for f in facts if f.student_key in screenings]


@router.get("/doctor/letters/{kind}/{student_key}", response_class=HTMLResponse)
async def parent_letter(request: Request, kind: str, student_key: str) -> Response:
    """One student's screening result letter to the guardian (printable)."""
    async with web_session(request) as session:
        if session.role not in alert_queue.QUEUE_ROLES or kind not in LETTER_KINDS:
            return _error(request, session, 404 if kind not in LETTER_KINDS else 403)
        facts = (await student_facts(session, [student_key], _today(request, session))).get(student_key)
        letters = await _letters(request, session, kind, [facts]) if facts else []
        if not letters:
            return _error(request, session, 404)
        return _page("parent_letters.html", _context(request, session, letters=letters, kind=kind,
                                                     title=TITLES[kind, _language(request)]))


@router.get("/doctor/letters/{kind}", response_class=HTMLResponse)
async def class_letters(request: Request, kind: str, grade: int, class_name: str | None = None,
                        school: str | None = None) -> Response:
    """The letters of every student of one class with a screening of that kind, one page each when printed."""
    async with web_session(request) as session:
        if session.role not in alert_queue.QUEUE_ROLES or kind not in LETTER_KINDS:
            return _error(request, session, 404 if kind not in LETTER_KINDS else 403)
        students = await class_students(request, session, school=school or None, grade=grade,
                                        class_name=(class_name or "").strip() or None)
        letters = await _letters(request, session, kind, students)
        return _page("parent_letters.html", _context(request, session, letters=letters, kind=kind,
                                                     title=TITLES[kind, _language(request)],
                                                     group=grade_class_text(grade, class_name, _language(request))))


def grade_class_text(grade: int, class_name: str | None, language: str) -> str:
    if language == "zh-CN":
        return f"{grade}年级" + (f"{class_name}班" if class_name else "")
    return f"Grade {grade}" + (f", class {class_name}" if class_name else "")


# --- school doctor: a class screening sheet -------------------------------------------------------

@router.get("/doctor/class-sheet", response_class=HTMLResponse)
async def class_sheet(  # noqa: PLR0917 - the sheet's choices are query parameters
    request: Request, grade: str | None = None, class_name: str | None = None, school: str | None = None,
    measured_on: str | None = None, sheet: str | None = None, attempt: str | None = None,
) -> Response:
    """Pick a class, then enter its screenings row by row (keyboard: Enter moves on, a row saves as you leave it).

    ``sheet=fitness`` is the physical-fitness sheet (the grade's items), ``attempt=retest`` its 补测.
    """
    async with web_session(request) as session:
        if session.role not in SUBMIT_ROLES:
            return _error(request, session, 403)
        today = _today(request, session)
        try:
            day = date.fromisoformat(measured_on) if measured_on else today
        except ValueError:
            day = today
        visible = await _visible_schools(session)
        names = await school_names(session, visible)
        chosen_grade = int(grade) if grade and grade.isdigit() else None
        if chosen_grade is None:
            return _page("class_sheet_choose.html", _context(
                request, session, classes=await _classes(request, session, school or None), schools=names))
        students = await class_students(request, session, school=school or None, grade=chosen_grade,
                                        class_name=(class_name or "").strip() or None)
        fitness = sheet == "fitness" and 1 <= chosen_grade <= 12
        chosen_attempt = attempt if attempt in FITNESS_ATTEMPTS else "first"
        keys = [f.student_key for f in students]
        entered = (await _fitness_entered_on(session, keys, day, chosen_attempt) if fitness
                   else await _entered_on(session, keys, day))
        columns = fitness_columns(chosen_grade) if fitness else SHEET_COLUMNS
        applies = {(f.student_key, c.name): (not fitness or fitness_column_applies(c, f.sex, chosen_grade))
                   for f in students for c in columns}
        return _page("class_sheet.html", _context(
            request, session, students=students, entered=entered, columns=columns, day=day,
            group=grade_class_text(chosen_grade, class_name, _language(request)), schools=names,
            school=school or "", grade=chosen_grade, class_name=(class_name or "").strip(),
            sheet="fitness" if fitness else "screening", attempt=chosen_attempt, attempts=FITNESS_ATTEMPTS,
            applies=applies))


async def _classes(request: Request, session: Session, school: str | None) -> list[dict[str, Any]]:
    rows = await session.fetch("SELECT student_key FROM roster.students"
                               " WHERE (%(school)s::text IS NULL OR school_id = %(school)s)", {"school": school})
    facts = await student_facts(session, [row["student_key"] for row in rows], _today(request, session))
    counts: dict[tuple[str, int, str], int] = {}
    for f in facts.values():
        if f.grade is None or f.status == "left" or f.school_id is None:
            continue
        key = (f.school_id, f.grade, f.class_name or "")
        counts[key] = counts.get(key, 0) + 1
    return [{"school_id": s, "grade": g, "class_name": c, "students": n}
            for (s, g, c), n in sorted(counts.items(), key=lambda item: (item[0][0], item[0][1],
                                                                          item[0][2].zfill(4)))]


async def _entered_on(session: Session, keys: list[str], day: date) -> dict[str, dict[str, Any]]:
    """What was already entered for these students on ``day`` (the sheet shows it and counts it as saved)."""
    entered: dict[str, dict[str, Any]] = {}
    if not keys:
        return entered
    for view, columns in (("archive.growth_current", "height_cm, weight_kg"),
                          ("archive.vision_current", "ucva_right, ucva_left, se_right, se_left, wears_glasses")):
        rows = await session.fetch(
            f"SELECT DISTINCT ON (student_key) student_key, {columns} FROM {view}"
            " WHERE student_key = ANY(%s) AND measured_on = %s ORDER BY student_key, ingested_at DESC", (keys, day))
        for row in rows:
            entered.setdefault(row.pop("student_key"), {}).update(
                {k: ("true" if v is True else "" if v is False or v is None else str(v)) for k, v in row.items()})
    return entered


async def _fitness_entered_on(session: Session, keys: list[str], day: date, attempt: str) -> dict[str, dict[str, Any]]:
    """The fitness results already entered for these students on ``day`` (that attempt), as typed."""
    from models.fitness_upload import format_time

    entered: dict[str, dict[str, Any]] = {}
    if not keys:
        return entered
    rows = await session.fetch(
        "SELECT DISTINCT ON (student_key) * FROM archive.fitness_current"
        " WHERE student_key = ANY(%s) AND measured_on = %s AND attempt = %s ORDER BY student_key, ingested_at DESC",
        (keys, day, attempt))
    for row in rows:
        exempted = set(items_for(row["sex"], row["grade"]) if row["exempt"] else row["exempt_items"] or ())
        cells: dict[str, Any] = {"height_cm": "" if row["height_cm"] is None else str(row["height_cm"]),
                                 "weight_kg": "" if row["weight_kg"] is None else str(row["weight_kg"]),
                                 "exemption_reason": row["exemption_reason"] if exempted else ""}
        for item, info in ITEM_INFO.items():
            value = row[info.field]
            if item in exempted:
                cells[info.field] = "免测"
            elif value is not None:
                cells[info.field] = (format_time(float(value)) if info.field in ("run_800m_s", "run_1000m_s",
                                                                                  "shuttle_run_50m_x8_s")
                                     else str(value).removesuffix(".0"))
        entered[row["student_key"]] = cells
    return entered


@router.post("/doctor/class-sheet/save")
async def class_sheet_save(request: Request) -> JSONResponse:
    """Validate, classify and submit the screenings of one sheet row; the answer says what was saved."""
    body = await request.json()
    _check_csrf(request, request.headers.get("x-csrf-token"))
    language = _language(request)
    key = str(body.get("student_key", ""))
    cells = {str(k): str(v) for k, v in (body.get("cells") or {}).items()}
    fitness = body.get("sheet") == "fitness"
    attempt = str(body.get("attempt") or "first")
    async with web_session(request) as session:
        if session.role not in SUBMIT_ROLES:
            return JSONResponse({"ok": False, "errors": [{"reason": translate(language, "error.403")}]}, 403)
        today = _today(request, session)
        try:
            day = date.fromisoformat(str(body.get("measured_on", ""))) if body.get("measured_on") else today
        except ValueError:
            day = today
        student = await session.fetch_one(
            "SELECT school_id, national_number, sex, birth_date FROM roster.students WHERE student_key = %s", (key,))
        user_id = session.user_id
        facts = (await student_facts(session, [key], day)).get(key) if fitness and student else None
    if student is None:
        return JSONResponse({"ok": False, "errors": [{"reason": translate(language, "error.404")}]}, 404)
    roster_student = RosterStudent(school_id=student["school_id"], student_number=student["national_number"],
                                   sex=student["sex"], birth_date=student["birth_date"])
    if fitness:
        grade = facts.grade if facts else None
        if grade is None or attempt not in FITNESS_ATTEMPTS:
            return JSONResponse({"ok": False, "errors": [{"field": "grade", "reason": translate(
                language, "sheet.no_grade")}]}, 422)
        rows = sheet_rows(roster_student, cells, measured_on=day, screener=user_id, columns=fitness_columns(grade),
                          grade=grade, attempt=attempt)
    else:
        rows = sheet_rows(roster_student, cells, measured_on=day, screener=user_id)
    token_hash = hash_token(_session_token(request))
    saved: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    findings: list[str] = []
    for kind, row in rows.items():
        try:
            result = await submit_screening(request, token_hash,
                                                ScreeningIn(kind=kind, row=row))  # type: ignore[arg-type]
        except HTTPException as refused:
            if refused.status_code == status.HTTP_401_UNAUTHORIZED:
                raise _to_login() from None
            detail = refused.detail if isinstance(refused.detail, dict) else {"reason": str(refused.detail)}
            errors.append({"kind": kind, "field": detail.get("field"),
                           "reason": translate_reason(language, str(detail.get("reason", "")))})
            continue
        found = _sheet_findings(kind, result.classification)
        findings += found
        saved[kind] = _sheet_summary(kind, result.classification, found, language)
    if not rows:
        errors.append({"reason": translate(language, "sheet.nothing")})
    return JSONResponse({"ok": not errors, "saved": saved, "errors": errors, "findings": findings},
                        headers={"Cache-Control": "no-store"})


def _sheet_findings(kind: str, classification: dict[str, Any]) -> list[str]:
    if kind == "fitness":
        return list(fitness_findings(classification.get("band"), classification.get("failed_items")))
    if kind == "bmi":
        return list(growth_findings(classification.get("wst586"), classification.get("wst456_wasting"),
                                    classification.get("wst456_stunting")))
    if kind == "vision":
        return list(vision_findings(classification.get("screening_myopia"), classification.get("student_grade")))
    return []


def _sheet_summary(kind: str, classification: dict[str, Any], found: list[str], language: str) -> str:
    if kind == "fitness":
        return _fitness_summary(classification, found, language)
    words = [translate(language, f"finding.{f}") for f in found] or [translate(language, f"sheet.normal.{kind}")]
    if kind == "bmi" and classification.get("bmi_display") is not None:
        words.insert(0, f"BMI {classification['bmi_display']}")
    return " · ".join(words)


def _fitness_summary(classification: dict[str, Any], found: list[str], language: str) -> str:
    """"总分 87.60 良好 · 单项不及格：引体向上" / "incomplete: missing 800 m run"."""
    zh = language == "zh-CN"

    def item_names(items: list[str]) -> str:
        shown = []
        for item in items:
            info = ITEM_INFO.get(item)  # type: ignore[call-overload]
            shown.append("BMI" if item == "bmi" else (info.name_zh if zh else info.name_en) if info else item)
        return "、".join(shown) if zh else ", ".join(shown)

    status = classification.get("status")
    if status == "exempt":
        words = [translate(language, "sheet.fitness.exempt")]
    elif status == "complete":
        band = BAND_LABELS[classification["band"]][0 if zh else 1]
        words = [translate(language, "sheet.fitness.total", total=f"{classification['total']:.2f}", band=band)]
    else:
        words = [translate(language, "sheet.fitness.incomplete", items=item_names(classification["missing_items"]))]
    if classification.get("exempt_items") and status != "exempt":
        words.append(translate(language, "sheet.fitness.exempt_items",
                               items=item_names(classification["exempt_items"])))
    if classification.get("failed_items"):
        words.append(translate(language, "sheet.fitness.failed", items=item_names(classification["failed_items"])))
    return " · ".join(words)


SHOWN_FOLLOW_UP_ROWS = 500


@router.get("/doctor/follow-up", response_class=HTMLResponse)
async def follow_up(  # noqa: PLR0917 - the list's filters are query parameters
    request: Request, finding: str | None = None, state: str | None = None, grade: str | None = None,
    class_name: str | None = None, school: str | None = None,
) -> Response:
    """Students whose latest screening needs action, with the step reached and the next check."""
    async with web_session(request) as session:
        if session.role not in alert_queue.QUEUE_ROLES:
            return _error(request, session, 403)
        today = _today(request, session)
        chosen_grade = int(grade) if grade and grade.isdigit() else None
        rows = await follow_up_rows(
            session, today, school=school or None, finding=finding if finding in FINDINGS else None,
            state=state if state in FOLLOW_UP_STATES else None, grade=chosen_grade,
            class_name=(class_name or "").strip() or None)
        alerts = await _queue_rows(request, session, concerns=FOLLOW_UP_CONCERNS)
        schools = await school_names(session, await _visible_schools(session))
        return _page("follow_up.html", _context(
            request, session, rows=rows[:SHOWN_FOLLOW_UP_ROWS], total=len(rows), alerts=alerts, findings=FINDINGS,
            states=FOLLOW_UP_STATES, schools=schools,
            chosen={"finding": finding or "", "state": state or "", "grade": chosen_grade, "school": school or "",
                    "class_name": (class_name or "").strip()},
            can_act=session.role in SUBMIT_ROLES))


@router.post("/doctor/follow-up/step")
async def follow_up_step(request: Request) -> Response:
    form = await request.form()
    _check_csrf(request, str(form.get("csrf", "")))
    back = str(form.get("back", "/web/doctor/follow-up"))
    back = back if back.startswith("/web/doctor/follow-up") and "//" not in back else "/web/doctor/follow-up"
    try:
        event_id = uuid.UUID(str(form.get("event_id", "")))
        next_text = str(form.get("next_check_on", "")).strip()
        next_check = date.fromisoformat(next_text) if next_text else None
    except ValueError:
        return _redirect(back)
    note = str(form.get("note", "")).strip()[:500] or None
    async with web_session(request) as session:
        if session.role not in SUBMIT_ROLES:
            return _error(request, session, 403)
        try:
            await record_step(session, student_key=str(form.get("student_key", "")), event_id=event_id,
                              state=str(form.get("state", "")), next_check_on=next_check, note=note)
        except StepRefused:
            return _error(request, session, 404)
    separator = "&" if "?" in back else "?"
    return _redirect(f"{back}{separator}saved={event_id}#case-{event_id}")


@router.get("/risk", response_class=HTMLResponse)
async def risk_page(request: Request, model: str | None = None) -> Response:
    """The review-first list of one screening model (the role's own models; RLS decides the rows)."""
    async with web_session(request) as session:
        if session.role not in ranking.RISK_ROLES:
            return _error(request, session, 403)
        own = ranking.models_for(session.role)
        chosen = model if model in own else own[0]
        rows = await ranking.ranked_rows(session, chosen, limit=100, today=_today(request, session))
        return _page("risk.html", _context(request, session, rows=rows, model=chosen, models=own))


async def _detail(request: Request, alert_id: uuid.UUID) -> alert_queue.AlertDetail:
    return await alert_queue.alert_detail(request, hash_token(_session_token(request)), alert_id)


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
async def alert_page(request: Request, alert_id: uuid.UUID, done: str | None = None,
                     refused: str | None = None) -> Response:
    try:
        detail = await _detail(request, alert_id)
    except HTTPException as error:
        if error.status_code == status.HTTP_401_UNAUTHORIZED:
            raise _to_login() from None
        async with web_session(request) as session:
            return _error(request, session, error.status_code)
    async with web_session(request) as session:
        extra = await _alert_extras(request, session, detail)
        return _page("alert.html", _context(request, session, alert=detail, outcomes=OUTCOMES, done=done,
                                            refused=refused, **extra))


async def _alert_extras(request: Request, session: Session, detail: alert_queue.AlertDetail) -> dict[str, Any]:
    """The student's facts, the school's name, the evidence in words and the student's earlier alerts."""
    facts = (await student_facts(session, [detail.student_key], _today(request, session))).get(detail.student_key)
    earlier = await session.fetch(
        f"SELECT {alert_queue.ALERT_COLUMNS}, a.evidence FROM alerts.alerts a"
        " WHERE a.student_key = %s AND a.alert_id <> %s ORDER BY a.opened_at DESC LIMIT 20",
        (detail.student_key, detail.alert_id))
    await alert_queue.audit_reads(session, earlier, "web_alert_earlier")
    language = _language(request)
    for row in earlier:
        row["evidence_text"] = describe_evidence(row["concern"], row["evidence"] or {}, language)
    names = await school_names(session, [detail.school_id])
    return {"facts": facts, "school_name": names.get(detail.school_id, detail.school_id), "earlier": earlier,
            "evidence_text": describe_evidence(detail.concern, detail.evidence, language)}


@router.post("/alerts/{alert_id}/act")
async def alert_act(request: Request, alert_id: uuid.UUID) -> Response:
    form = await request.form()
    _check_csrf(request, str(form.get("csrf", "")))
    action = str(form.get("action", ""))
    note = str(form.get("note", "")).strip() or None
    page = f"/web/alerts/{alert_id}"
    try:
        if action == "acknowledge":
            arguments: dict[str, Any] = {"note": alert_queue.EmptyIn(note=note).note}
        elif action == "note":
            arguments = {"note": alert_queue.NoteIn(note=note or "").note}
        elif action == "resolve":
            arguments = {"outcome": str(form.get("outcome", "")), "note": alert_queue.EmptyIn(note=note).note}
        elif action == "refer":
            body = alert_queue.ReferIn(referred_to=str(form.get("referred_to", "")).strip(), note=note)
            arguments = {"referred_to": body.referred_to, "note": body.note}
        else:
            return _redirect(f"{page}?refused=invalid")
    except ValidationError:
        return _redirect(f"{page}?refused=invalid")
    try:
        await alert_queue.act(request, hash_token(_session_token(request)), alert_id, action, **arguments)  # type: ignore[arg-type]
    except HTTPException as error:
        if error.status_code == status.HTTP_401_UNAUTHORIZED:
            raise _to_login() from None
        if error.status_code == status.HTTP_404_NOT_FOUND:
            async with web_session(request) as session:
                return _error(request, session, 404)
        code = error.detail.get("code", "invalid") if isinstance(error.detail, dict) else "invalid"
        return _redirect(f"{page}?refused={quote(code)}")
    return _redirect(f"{page}?done={quote(action)}")


@router.get("/alerts/{alert_id}/letter", response_class=HTMLResponse)
async def referral_letter(request: Request, alert_id: uuid.UUID) -> Response:
    try:
        detail = await _detail(request, alert_id)
    except HTTPException as error:
        if error.status_code == status.HTTP_401_UNAUTHORIZED:
            raise _to_login() from None
        async with web_session(request) as session:
            return _error(request, session, error.status_code)
    async with web_session(request) as session:
        if detail.team != "school_doctor":
            return _error(request, session, 404)
        school = await session.fetch_one("SELECT name FROM archive.schools WHERE school_id = %s",
                                         (detail.school_id,))
        facts = (await student_facts(session, [detail.student_key], _today(request, session))).get(detail.student_key)
        return _page("letter.html", _context(request, session, alert=detail, facts=facts,
                                             greeting=letter_greeting(_language(request), facts),
                                             school_name=school["name"] if school else detail.school_id))


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


templates.env.filters["iso"] = _iso
@pass_context
def _minute(context: Any, value: datetime | None) -> str:
    """A time as people at the school read it: their time zone, to the minute, without seconds."""
    if not value:
        return "–"
    zone = context.get("tz")
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if zone else value.strftime("%Y-%m-%d %H:%M UTC")


def _grade_class(facts: StudentFacts | None, language: str) -> str:
    """"4年级3班" / "Grade 4, class 3"; what is known of it, or "–"."""
    if facts is None or facts.grade is None:
        return "–"
    if language == "zh-CN":
        return f"{facts.grade}年级" + (f"{facts.class_name}班" if facts.class_name else "")
    return f"Grade {facts.grade}" + (f", class {facts.class_name}" if facts.class_name else "")


templates.env.filters["minute"] = _minute
templates.env.globals["grade_class"] = _grade_class
