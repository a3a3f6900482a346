"""The school doctor's page for the national fitness upload sheet (国家学生体质健康标准数据上报表).

The same sheet a school uploads to the national data system, as CSV or XLSX, for one school the
doctor serves, one test date and one attempt (首测/补测): every row is read and scored as the
worker will score it (`models.fitness_upload`), rows of students not enrolled at that school are
refused by the database (`auth.write_refusal`, as for every upload), and nothing is published
until the doctor has seen the preview. The file is read within the web upload limits
(`services.intake.bounded_files.WEB_LIMITS`) and its temporary copy removed after publishing or when the
preview expires (the upload page's sweep).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import shutil
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from models.contracts import Event
from models.fitness import ITEM_INFO, score_fitness_event
from models.fitness_upload import (
    UPLOAD_COLUMNS,
    UploadHeaderRejected,
    UploadRowRejected,
    check_upload_header,
    row_to_fitness_event,
)
from services.intake.bounded_files import WEB_LIMITS, FileRefused
from services.intake.importer import ImportSummary, Rejected, UnreadableFile, read_rows, shown_code
from services.intake.importer import publish_events as _publish
from services.students.facts import school_names
from services.web.class_sheet import FITNESS_ATTEMPTS
from services.web.pages import (
    MAX_UPLOAD_BYTES,
    SHOWN_ACCEPTED_ROWS,
    _apply_write_scope,
    _check_csrf,
    _context,
    _error,
    _page,
    _Preview,
    _record_rejections,
    _roster_names,
    _today,
    _Upload,
    _uploads,
    _visible_schools,
    web_session,
)

router = APIRouter()
#: Only a school's doctor uploads its fitness results (the PE teacher's sheet, checked by the doctor).
UPLOAD_ROLES = ("school_doctor",)
KIND = "fitness"


@dataclasses.dataclass(slots=True, kw_only=True)
class _FitnessUpload(_Upload):
    school_id: str
    measured_on: date
    attempt: str


def _fitness_preview(path: Path, *, school_id: str, measured_on: date, attempt: str, secret: bytes,
                     user_id: str, now: datetime) -> _Preview:
    """Every row of the sheet either scored (accepted) or rejected with its column and reason."""
    header, rows = read_rows(path, WEB_LIMITS)
    columns = check_upload_header(header)
    preview = _Preview(accepted=[], rejected=[], events=[])
    for number, row in enumerate(rows, start=1):
        cells = {column: row.get(name, "") for column, name in zip(columns, header, strict=True)}
        preview.numbers[number] = str(cells.get("学籍号") or "")[:40]
        try:
            event = row_to_fitness_event(cells, secret=secret, school_id=school_id, measured_on=measured_on,
                                         screener=user_id, submitted_by=user_id, now=now, attempt=attempt)
        except UploadRowRejected as error:
            preview.rejected.append(Rejected(row_number=number, field=error.column, reason=error.reason,
                                             school_id=shown_code(school_id), screener=shown_code(user_id)))
            continue
        result = score_fitness_event(event)
        preview.events.append(event)
        preview.origins.append((number, shown_code(user_id)))
        preview.accepted.append({
            "row": number, "student_number": preview.numbers[number], "student_key": event.student_key,
            "name": None, "grade": event.grade, "sex": event.sex, "status": result.status,
            "total": None if result.total is None else f"{result.total:.2f}", "band": result.band,
            "failed_items": list(result.failed_items), "missing_items": list(result.missing_items),
            "exempt_items": list(result.exempt_items)})
    return preview


def _item_name(item: str, *, zh: bool) -> str:
    info = ITEM_INFO.get(item)  # type: ignore[call-overload]
    return "BMI" if item == "bmi" else item if info is None else info.name_zh if zh else info.name_en


@router.get("/doctor/fitness-upload/template.csv")
async def fitness_upload_template(request: Request) -> Response:
    """An empty upload sheet: the national data system's column headings (UTF-8 with BOM for Excel)."""
    async with web_session(request) as session:
        if session.role not in UPLOAD_ROLES:
            return _error(request, session, 403)
    return Response(("\ufeff" + ",".join(UPLOAD_COLUMNS) + "\r\n").encode("utf-8"),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="fitness-upload-template.csv"',
                             "Cache-Control": "no-store"})


async def _form(request: Request, problem: str | None = None, status_code: int = 200, **chosen: Any) -> Response:
    async with web_session(request) as session:
        if session.role not in UPLOAD_ROLES:
            return _error(request, session, 403)
        visible = await _visible_schools(session)
        names = await school_names(session, visible)
        today = _today(request, session)
        return _page("fitness_upload.html", _context(
            request, session, problem=problem, schools=[(s, names.get(s, s)) for s in visible],
            attempts=FITNESS_ATTEMPTS, chosen={"school": "", "measured_on": today.isoformat(), "attempt": "first"}
            | {k: v for k, v in chosen.items() if v}), status_code=status_code)


@router.get("/doctor/fitness-upload", response_class=HTMLResponse)
async def fitness_upload_form(request: Request) -> Response:
    return await _form(request)


@router.post("/doctor/fitness-upload", response_class=HTMLResponse)
async def fitness_upload_preview(  # noqa: PLR0917 - the form's fields
    request: Request, file: UploadFile, school_id: str = Form(max_length=40), measured_on: str = Form(max_length=20),
    attempt: str = Form(max_length=10), csrf: str = Form(max_length=200),
) -> Response:
    """Read and score the sheet; show the accepted and rejected rows; publish nothing yet."""
    _check_csrf(request, csrf)
    chosen = {"school": school_id, "measured_on": measured_on, "attempt": attempt}
    async with web_session(request) as session:
        if session.role not in UPLOAD_ROLES:
            return _error(request, session, 403)
        visible = set(await _visible_schools(session))
        user_id, now, today = session.user_id, session.now, _today(request, session)
        context = _context(request, session, problem=None)
    t = context["t"]
    if school_id not in visible:
        return await _form(request, t("import.not_your_school"), 403, **chosen)
    try:
        day = date.fromisoformat(measured_on)
    except ValueError:
        return await _form(request, f"{t('fitness_upload.measured_on')}: {measured_on[:20]!r}", 422, **chosen)
    if day > today or attempt not in FITNESS_ATTEMPTS:
        return await _form(request, f"{t('fitness_upload.measured_on')}: {day.isoformat()} > {today.isoformat()}"
                           if day > today else t("field.attempt"), 422, **chosen)
    suffix = Path(file.filename or "upload.csv").suffix.lower()
    suffix = suffix if suffix in (".csv", ".xlsx") else ".csv"
    content = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(content) > MAX_UPLOAD_BYTES:
        return await _form(request, t("import.too_large"), 413, **chosen)
    directory = Path(tempfile.mkdtemp(prefix="schoolhealth-web-fitness-"))
    path = directory / f"upload{suffix}"
    path.write_bytes(content)
    secret = request.app.state.settings.student_key_secret.get_secret_value().encode()
    shown_name = Path(file.filename or "").name[:100]
    try:
        preview = await asyncio.to_thread(_fitness_preview, path, school_id=school_id, measured_on=day,
                                          attempt=attempt, secret=secret, user_id=user_id, now=now)
    except UploadHeaderRejected as error:
        shutil.rmtree(directory, ignore_errors=True)
        return await _form(request, f"{t('import.header')}: {error}", 422, **chosen)
    except FileRefused as refused:
        shutil.rmtree(directory, ignore_errors=True)
        return await _form(request, refused.sentence(context["lang"]), 413, **chosen)
    except UnreadableFile as error:
        shutil.rmtree(directory, ignore_errors=True)
        return await _form(request, t(f"import.unreadable.{error.code}", name=shown_name or "upload"), 422, **chosen)
    except Exception:  # any other unreadable content: one sentence, never a traceback
        shutil.rmtree(directory, ignore_errors=True)
        return await _form(request, t("import.unreadable"), 422, **chosen)
    async with web_session(request) as session:
        preview = await _apply_write_scope(session, KIND, preview)
        names = await _roster_names(session, [a["student_key"] for a in preview.accepted[:SHOWN_ACCEPTED_ROWS]])
        school_name = (await school_names(session, [school_id])).get(school_id, school_id)
    zh = context["lang"] == "zh-CN"
    for accepted in preview.accepted[:SHOWN_ACCEPTED_ROWS]:
        accepted["name"] = names.get(accepted["student_key"])
        for key in ("missing_items", "failed_items"):
            accepted[key] = [_item_name(item, zh=zh) for item in accepted[key]]
    upload_id = secrets.token_urlsafe(16)
    _uploads(request)[upload_id] = _FitnessUpload(user_id=user_id, kind=KIND, path=path, filename=shown_name,
                                                  created=time.monotonic(), school_id=school_id, measured_on=day,
                                                  attempt=attempt)
    return _page("fitness_upload_preview.html", context | {
        "upload_id": upload_id, "filename": shown_name, "school_name": school_name, "day": day, "attempt": attempt,
        "accepted": preview.accepted[:SHOWN_ACCEPTED_ROWS], "accepted_count": len(preview.accepted),
        "rejected": preview.rejected, "numbers": preview.numbers})


@router.post("/doctor/fitness-upload/{upload_id}/publish", response_class=HTMLResponse)
async def fitness_upload_publish(request: Request, upload_id: str, csrf: str = Form(max_length=200)) -> Response:
    """Publish the accepted rows to the fitness topic, re-checking the school and every row first."""
    _check_csrf(request, csrf)
    settings = request.app.state.settings
    async with web_session(request) as session:
        if session.role not in UPLOAD_ROLES:
            return _error(request, session, 403)
        context = _context(request, session, problem=None)
        upload = _uploads(request).get(upload_id)
        if not isinstance(upload, _FitnessUpload) or upload.user_id != session.user_id:
            return _page("fitness_upload.html", context | {
                "problem": context["t"]("import.expired"), "schools": [], "attempts": FITNESS_ATTEMPTS,
                "chosen": {"school": "", "measured_on": "", "attempt": "first"}}, status_code=410)
        # A doctor who no longer serves the school since the preview publishes nothing for it.
        visible = set(await _visible_schools(session))
        user_id, now = session.user_id, session.now
    del _uploads(request)[upload_id]
    secret = settings.student_key_secret.get_secret_value().encode()
    try:
        if upload.school_id not in visible:
            async with web_session(request) as session:
                return _error(request, session, 403)
        preview = await asyncio.to_thread(_fitness_preview, upload.path, school_id=upload.school_id,
                                          measured_on=upload.measured_on, attempt=upload.attempt, secret=secret,
                                          user_id=user_id, now=now)
        async with web_session(request) as session:
            preview = await _apply_write_scope(session, KIND, preview)
        events: list[Event] = list(preview.events)
        messages = await asyncio.to_thread(_publish, settings, events) if events else 0
        summary = ImportSummary(kind=KIND, path=Path(upload.filename or "upload"), import_id=uuid.uuid4(),
                                accepted=len(events), rejected=preview.rejected, published_messages=messages)
        if summary.rejected:
            await asyncio.to_thread(_record_rejections, settings, summary)
    finally:
        shutil.rmtree(upload.path.parent, ignore_errors=True)
    return _page("fitness_upload_done.html", context | {"accepted": summary.accepted,
                                                       "rejected": len(summary.rejected)})
