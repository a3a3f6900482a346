"""The national data system's upload sheet (国家学生体质健康标准数据上报) in and out, as pure functions.

A school keeps one workflow: the sheet it uploads to 中国学生体质健康网 is imported here
(`row_to_fitness_event`), and a school's scored results are exported in the same columns
(`export_row`). The columns and codes are in ``models/reference/fitness_2014_upload_template.csv``;
**none of them is in the 2014 document** and the grade codes come from a single third-party
source (see ``models/reference/README.md``):

* grade codes 11-16 (grades 1-6), 21-23 (7-9), 31-33 (10-12); university codes 41-44 are
  refused (the standard's university tables are not shipped);
* sex: ``1`` male (one weak source); ``2`` female is **assumed** (GB/T 2261.1), not confirmed;
  ``男``/``女`` are accepted too;
* the nine student columns in their order, then the item columns by name. Names, addresses and
  ethnicity are read past and never leave this module (the student number becomes the key).

Times: the 50 m run in seconds (``9.1``); 800 m, 1000 m and the 50 m × 8 shuttle as ``m'ss``
(``3'35``, ``3'35"``, ``3:35``, ``3分35秒``) or whole seconds (``215``). A cell reading ``免测``
(or ``免考``) marks that item exempted; every item 免测 is a wholly exempted student. The upload
sheet carries no exemption reason, so imported exemptions carry ``not_stated``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from typing import Any, Final

from pydantic import ValidationError

from models.codecs import field_errors
from models.contracts import FitnessTest
from models.fitness import ITEM_INFO, Item, items_for
from models.identity import event_id_for, student_key
from models.types import Sex

__all__ = [
    "EXEMPT_MARKS",
    "GRADE_BY_CODE",
    "ITEM_COLUMNS",
    "STUDENT_COLUMNS",
    "UPLOAD_COLUMNS",
    "UploadHeaderRejected",
    "UploadRowRejected",
    "build_fitness_event",
    "check_upload_header",
    "code_of_grade",
    "export_row",
    "format_time",
    "parse_time",
    "row_to_fitness_event",
    "whole",
]


def _template() -> list[dict[str, str]]:
    text = resources.files("models.reference").joinpath("fitness_2014_upload_template.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


_GRADE_IN_MEANING: Final = re.compile(r"\(grade (\d+)\)")


def _grade_codes() -> dict[str, int]:
    codes = {}
    for row in _template():
        if row["kind"] == "grade_code":
            match = _GRADE_IN_MEANING.search(row["meaning"])
            if match:
                codes[row["code_or_column"]] = int(match[1])
    return codes


GRADE_BY_CODE: Final[Mapping[str, int]] = _grade_codes()
_CODE_BY_GRADE: Final[Mapping[int, str]] = {grade: code for code, grade in GRADE_BY_CODE.items()}
_UNIVERSITY_CODES: Final = frozenset(row["code_or_column"] for row in _template()
                                     if row["kind"] == "grade_code" and row["code_or_column"].startswith("4"))

STUDENT_COLUMNS: Final[tuple[str, ...]] = tuple(row["code_or_column"] for row in _template()
                                                if row["kind"] == "student_column")
#: Item columns in the template's order; the two measurements first.
ITEM_COLUMNS: Final[tuple[str, ...]] = tuple(row["code_or_column"] for row in _template()
                                             if row["kind"] == "item_column")
UPLOAD_COLUMNS: Final[tuple[str, ...]] = (*STUDENT_COLUMNS, *ITEM_COLUMNS)

_ITEM_BY_COLUMN: Final[Mapping[str, Item]] = {info.name_zh: item for item, info in ITEM_INFO.items()}
_MEASUREMENT_FIELD: Final[Mapping[str, str]] = {"身高": "height_cm", "体重": "weight_kg"}
# The project's importer turns some Chinese headings into English names; accept those too.
_ALIASES: Final[Mapping[str, str]] = {
    "student_number": "学籍号", "name": "姓名", "sex": "性别", "birth_date": "出生日期",
    "height_cm": "身高", "weight_kg": "体重", "class_name": "班级名称",
    # models.importing's names of the item columns (the class sheet's), back to the sheet's headings.
    **{info.field: info.name_zh for info in ITEM_INFO.values()},
}
_REQUIRED: Final = ("年级编号", "学籍号", "性别")
_SEX_CODES: Final[Mapping[str, Sex]] = {"1": "male", "2": "female", "男": "male", "女": "female"}
_SEX_CODE_OUT: Final[Mapping[str, str]] = {"male": "1", "female": "2"}
EXEMPT_MARKS: Final = frozenset({"免测", "免考", "免"})
_MINUTES_SECONDS: Final = re.compile(r"(\d{1,2})\s*(?:'|’|:|：|分)\s*(\d{1,2}(?:\.\d+)?)\s*(?:\"|”|''|秒)?")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_TIMED_AS_MINUTES: Final = frozenset({"run_800m", "run_1000m", "shuttle_run_50m_x8"})


class UploadHeaderRejected(ValueError):
    """A sheet whose columns are not the upload sheet's: nothing in it is imported."""


class UploadRowRejected(ValueError):
    """One row that cannot become a fitness test; ``column`` is the sheet's column heading."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


def _heading(name: str) -> str:
    cleaned = re.sub(r"\s+", "", name.removeprefix("\ufeff"))
    cleaned = re.sub(r"[(（][^)）]*[)）]$", "", cleaned)  # 身高(cm), 体重（千克）
    return _ALIASES.get(cleaned, cleaned)


def check_upload_header(header: Sequence[str]) -> list[str]:
    """The sheet's headings as upload-sheet columns; raises if a required one is missing or one is unknown."""
    columns = [_heading(name) for name in header]
    unknown = [name for name, column in zip(header, columns, strict=True) if column not in UPLOAD_COLUMNS]
    missing = [column for column in _REQUIRED if column not in columns]
    repeated = sorted({column for column in columns if columns.count(column) > 1})
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if unknown:
        problems.append("unexpected " + ", ".join(repr(name) for name in unknown))
    if repeated:
        problems.append("repeated " + ", ".join(repeated))
    if problems:
        raise UploadHeaderRejected("upload sheet header: " + "; ".join(problems)
                                   + f" (expected columns: {', '.join(UPLOAD_COLUMNS)})")
    return columns


def _seconds(column: str, text: str) -> float:
    match = _MINUTES_SECONDS.fullmatch(text)
    if match:
        seconds = float(match[2])
        if seconds >= 60:
            raise UploadRowRejected(column, f"{text!r} has {seconds:g} seconds past the minute")
        return int(match[1]) * 60 + seconds
    if _NUMBER.fullmatch(text):
        return float(text)
    raise UploadRowRejected(column, f"{text!r} is not a time (m'ss, e.g. 3'35, or seconds)")


def _number(column: str, text: str) -> float:
    if not _NUMBER.fullmatch(text):
        shown = repr(text) if len(text) <= 12 and not re.search(r"\d{7}", text) else f"({len(text)} characters)"
        raise UploadRowRejected(column, f"{shown} is not a number")
    return float(text)


def _whole(value: float) -> int | float:
    # Counts, ml and cm are whole in the contract; a spreadsheet writes 3 as 3.0.
    return int(value) if value.is_integer() else value


def row_to_fitness_event(
    row: Mapping[str, Any], *, secret: bytes, school_id: str, measured_on: date, screener: str,
    submitted_by: str, now: datetime, attempt: str = "first",
) -> FitnessTest:
    """One row of the upload sheet (keys: upload-sheet headings) as a validated `fitness-test` event.

    Raises `UploadRowRejected` naming the column; the reason never repeats a name or a number.
    The event id is derived from the content, so importing the same sheet twice stores it once.
    """
    cells = {_heading(str(name)): ("" if value is None else str(value).strip()) for name, value in row.items()}
    grade_code = cells.get("年级编号", "").removesuffix(".0")
    if not grade_code:
        raise UploadRowRejected("年级编号", "blank; a grade code (11-16, 21-23, 31-33) is required")
    if grade_code in _UNIVERSITY_CODES:
        raise UploadRowRejected("年级编号", f"{grade_code} is a university year; only grades 1-12 are scored here")
    grade = GRADE_BY_CODE.get(grade_code)
    if grade is None:
        shown = repr(grade_code) if len(grade_code) <= 4 else f"({len(grade_code)} characters)"
        raise UploadRowRejected("年级编号", f"{shown} is not a grade code (11-16, 21-23, 31-33)")
    sex = _SEX_CODES.get(cells.get("性别", "").removesuffix(".0"))
    if sex is None:
        raise UploadRowRejected("性别", "not a sex code (1 male, 2 female, or 男/女)")
    number = cells.get("学籍号", "")
    if not number:
        raise UploadRowRejected("学籍号", "blank; the student number is required")
    try:
        key = student_key(secret, number)
    except ValueError as error:
        raise UploadRowRejected("学籍号", str(error)) from None
    values: dict[str, Any] = {}
    exempted: list[str] = []
    for column in ITEM_COLUMNS:
        text = cells.get(column, "")
        if not text:
            continue
        item = _ITEM_BY_COLUMN.get(column)
        if text in EXEMPT_MARKS:
            if item is None:
                raise UploadRowRejected(column, "免测 applies to test items, not to height or weight")
            exempted.append(item)
            continue
        if item is None:
            values[_MEASUREMENT_FIELD[column]] = _number(column, text)
        elif item in _TIMED_AS_MINUTES:
            values[ITEM_INFO[item].field] = _seconds(column, text)
        else:
            value = _number(column, text)
            values[ITEM_INFO[item].field] = _whole(value) if ITEM_INFO[item].unit != "s" else value
    try:
        return build_fitness_event(
            key=key, school_id=school_id, measured_on=measured_on, attempt=attempt, sex=sex, grade=grade,
            screener=screener, submitted_by=submitted_by, now=now, values=values, exempted=exempted)
    except ValidationError as error:
        problem = field_errors(error, FitnessTest)[0]
        column = _column_of_field(problem.field)
        raise UploadRowRejected(column, problem.message) from None


def build_fitness_event(
    *, key: str, school_id: str, measured_on: date, attempt: str, sex: Sex, grade: int, screener: str,
    submitted_by: str, now: datetime, values: Mapping[str, Any], exempted: Sequence[str],
    exemption_reason: str | None = None,
) -> FitnessTest:
    """The `fitness-test` event of one student's results (``values`` by contract field) and exempted items.

    Every item of the grade exempted is a whole exemption (免测). The event id is derived from the
    content alone, so the same test typed on the class sheet or imported from the upload sheet is one
    event. Raises pydantic's ``ValidationError`` (the contract's reasons) for anything invalid.
    """
    tested = items_for(sex, grade)
    whole_exemption = bool(exempted) and set(tested) <= set(exempted)
    event_fields: dict[str, Any] = {
        # An exemption reason counts only where one was given (the upload sheet has none), so the
        # ids of imported sheets stay what they were.
        "event_id": event_id_for("fitness", school_id, key, measured_on.isoformat(), attempt,
                                 *(f"{name}={values[name]!r}" for name in sorted(values)),
                                 "exempt=" + ",".join(sorted(exempted)),
                                 *([f"reason={exemption_reason}"] if exemption_reason else [])),
        "occurred_at": now, "school_id": school_id, "student_key": key, "submitted_by": submitted_by,
        "measured_on": measured_on, "sex": sex, "grade": grade, "attempt": attempt, "screener": screener,
        **values,
    }
    reason = exemption_reason or "not_stated"
    if whole_exemption:
        event_fields |= {"exempt": True, "exemption_reason": reason}
    elif exempted:
        event_fields |= {"exempt_items": tuple(exempted), "exemption_reason": reason}
    elif exemption_reason is not None:
        event_fields["exemption_reason"] = exemption_reason
    return FitnessTest.model_validate(event_fields)


def parse_time(column: str, text: str) -> float:
    """A run time in seconds from ``m'ss`` (``3'35``, ``3'35"``, ``3:35``, ``3分35秒``) or seconds."""
    return _seconds(column, text)


def whole(value: float) -> int | float:
    """A count, ml or cm as the contract takes it (a spreadsheet writes 3 as 3.0)."""
    return _whole(value)


def _column_of_field(field: str) -> str:
    for info in ITEM_INFO.values():
        if info.field == field:
            return info.name_zh
    return {"height_cm": "身高", "weight_kg": "体重", "grade": "年级编号", "sex": "性别",
            "measured_on": "测试日期"}.get(field, field)


def code_of_grade(grade: int) -> str:
    """The upload sheet's grade code (11 … 33) of grade 1-12."""
    return _CODE_BY_GRADE[grade]


def format_time(seconds: float) -> str:
    """A run time as the sheet writes it: ``3'35`` (whole seconds), ``3'35.5`` otherwise."""
    minutes, rest = divmod(Decimal(repr(float(seconds))), 60)
    shown = f"{rest:f}".rstrip("0").rstrip(".") if rest % 1 else f"{int(rest)}"
    return f"{int(minutes)}'{shown.zfill(2) if rest < 10 else shown}"


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def export_row(student: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, str]:
    """One upload-sheet row from a roster entry and a stored result (archive column names).

    `student` holds ``national_number``, ``name``, ``sex``, ``birth_date``, ``class_name``;
    ethnicity and address are not kept by this platform and are left blank for the school.
    """
    row = dict.fromkeys(UPLOAD_COLUMNS, "")
    row |= {
        "年级编号": code_of_grade(int(result["grade"])), "班级编号": student.get("class_name") or "",
        "班级名称": student.get("class_name") or "", "学籍号": student["national_number"],
        "姓名": student["name"], "性别": _SEX_CODE_OUT[str(result["sex"])],
        "出生日期": student["birth_date"].isoformat() if student.get("birth_date") else "",
        "身高": _plain(result.get("height_cm")), "体重": _plain(result.get("weight_kg")),
    }
    exempt_items = set(result.get("exempt_items") or ())
    for item, info in ITEM_INFO.items():
        value = result.get(info.field)
        if result.get("exempt") or item in exempt_items:
            if item in items_for(result["sex"], int(result["grade"])):
                row[info.name_zh] = "免测"
            continue
        if value is None:
            continue
        row[info.name_zh] = format_time(float(value)) if item in _TIMED_AS_MINUTES else _plain(value)
    return row
