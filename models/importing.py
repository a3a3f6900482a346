"""Pure conversion of bulk-import rows (CSV, or XLSX read as text) into events.

The importer adapter reads a file and hands each row here as ``csv.DictReader`` gives it. This
module checks the header, parses the cells of one row, derives ``student_key`` (the student
number stops here) and builds the event through the same contract as the Kafka path, so a row
is accepted exactly when the event it becomes would be.

Event ids are derived from the row's content, so importing the same file twice yields the same
ids and the archive keeps one copy. The id uses ``student_key`` rather than the raw student
number: a UUIDv5 is an unkeyed hash, and structured student numbers could be recovered from it
by enumeration.

Rejections name the CSV column. Reasons do not repeat a name, student number or birth date, so
an import report can be logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from models.ages import completed_months, months_between
from models.codecs import field_errors
from models.contracts import (
    AGE_MONTHS_MAX,
    IDENTIFIER_MAX_LENGTH,
    IDENTIFIER_PATTERN,
    BmiScreening,
    Event,
    FitnessTest,
    HealthRecord,
    PsychSurvey,
    VisionScreening,
)
from models.fitness import ITEM_INFO, items_for
from models.fitness_upload import EXEMPT_MARKS, UploadRowRejected, build_fitness_event, parse_time, whole
from models.identity import event_id_for, student_key
from models.pipeline import ProcessedMessages, classify_event
from models.types import SchoolId, Sex, StudentKey

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES_ZH",
    "EVENT_KINDS",
    "OPTIONAL_COLUMNS",
    "Action",
    "CheckedRow",
    "EventKind",
    "FileKind",
    "HeaderRejected",
    "RosterEntry",
    "RowRejected",
    "School",
    "Stage",
    "UrbanRural",
    "canonical_column",
    "check_header",
    "check_row",
    "expected_columns_text",
    "parse_roster_row",
    "parse_school_row",
    "roster_to_event",
    "row_to_event",
]

FileKind: TypeAlias = Literal["schools", "roster", "records", "vision", "bmi", "survey", "fitness"]
EventKind: TypeAlias = Literal["records", "vision", "bmi", "survey", "fitness"]
EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)
Action: TypeAlias = Literal["register", "update", "transfer", "leave"]
UrbanRural: TypeAlias = Literal["urban", "rural"]
Stage: TypeAlias = Literal["primary", "junior", "nine_year"]

#: The exact header of each import file.
COLUMNS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "schools": (
            "school_id", "name", "county_id", "county_name", "urban_rural", "stage", "boarding",
            "enrollment", "school_doctors",
        ),
        "roster": (
            "school_id", "student_number", "name", "sex", "birth_date", "grade", "enrolled_on",
            "boarding", "left_behind", "disability",
        ),
        "records": (
            "school_id", "student_number", "sex", "birth_date", "county_id", "grade", "action",
            "effective_on", "to_school_id", "boarding", "left_behind", "disability",
        ),
        "vision": (
            "school_id", "student_number", "sex", "birth_date", "measured_on", "ucva_right",
            "ucva_left", "se_right", "se_left", "wears_glasses", "screener",
        ),
        "bmi": (
            "school_id", "student_number", "sex", "birth_date", "measured_on", "height_cm",
            "weight_kg", "screener",
        ),
        "survey": (
            "school_id", "student_number", "sex", "birth_date", "answered_on", "instrument",
            "instrument_version", "answers",
        ),
        # One student's physical-fitness test (the class sheet's fitness columns): every result cell
        # may be blank (not measured) or 免测 (that item exempted); see `_fitness_row`.
        "fitness": (
            "school_id", "student_number", "sex", "grade", "measured_on", "height_cm", "weight_kg",
            *(info.field for info in ITEM_INFO.values()), "screener",
        ),
    }
)

#: Columns a file of that kind may add (blank or absent means unknown). In bmi files: bilateral
#: pitting oedema (blank: not recorded), and age_months for records that carry only an age (then
#: birth_date may be absent).
OPTIONAL_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"roster": ("class_name", "guardian_name"), "bmi": ("oedema", "age_months"),
     "fitness": ("attempt", "exemption_reason")}
)

#: The Chinese column heading of each column, as schools' own spreadsheets write them. A file may
#: use these or the English names (or mix them); ``canonical_column`` maps either to the English.
COLUMN_NAMES_ZH: Final[Mapping[str, str]] = MappingProxyType(
    {
        "school_id": "学校代码", "name": "姓名", "county_id": "区县代码", "county_name": "区县名称",
        "urban_rural": "城乡", "stage": "学段", "boarding": "寄宿", "enrollment": "在校生人数",
        "school_doctors": "校医人数", "student_number": "学籍号", "sex": "性别", "birth_date": "出生日期",
        "grade": "年级", "enrolled_on": "入学日期", "left_behind": "留守儿童", "disability": "残疾",
        "class_name": "班级", "guardian_name": "监护人姓名", "action": "变动类型", "effective_on": "生效日期",
        "to_school_id": "转入学校代码", "measured_on": "检查日期", "ucva_right": "右眼裸眼视力",
        "ucva_left": "左眼裸眼视力", "se_right": "右眼等效球镜", "se_left": "左眼等效球镜",
        "wears_glasses": "戴镜", "screener": "检查人员", "height_cm": "身高(cm)", "weight_kg": "体重(kg)",
        "answered_on": "答卷日期", "instrument": "量表", "instrument_version": "量表版本", "answers": "各题得分",
        "oedema": "双侧凹陷性水肿", "age_months": "月龄",
        "vital_capacity_ml": "肺活量(ml)", "run_50m_s": "50米跑(秒)", "sit_and_reach_cm": "坐位体前屈(cm)",
        "rope_skipping_count": "一分钟跳绳(次)", "sit_ups_count": "一分钟仰卧起坐(次)",
        "shuttle_run_50m_x8_s": "50米×8往返跑", "standing_long_jump_cm": "立定跳远(cm)",
        "pull_ups_count": "引体向上(次)", "run_800m_s": "800米跑", "run_1000m_s": "1000米跑",
        "attempt": "测试类型", "exemption_reason": "免测原因",
    }
)

# Other ways schools head the same columns (after dropping spaces and the unit in brackets).
_ZH_VARIANTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "学校编码": "school_id", "学校代号": "school_id", "学生姓名": "name", "全国学籍号": "student_number",
        "学号": "student_number", "出生年月日": "birth_date", "生日": "birth_date", "是否寄宿": "boarding",
        "是否留守儿童": "left_behind", "是否残疾": "disability", "班": "class_name", "班别": "class_name",
        "家长姓名": "guardian_name", "监护人": "guardian_name", "体检日期": "measured_on", "筛查日期": "measured_on",
        "测量日期": "measured_on", "身高": "height_cm", "体重": "weight_kg", "右眼视力": "ucva_right",
        "左眼视力": "ucva_left", "右眼裸眼": "ucva_right", "左眼裸眼": "ucva_left", "是否戴镜": "wears_glasses",
        "右眼球镜等效度": "se_right", "左眼球镜等效度": "se_left", "右眼等效球镜度": "se_right",
        "左眼等效球镜度": "se_left", "检测人员": "screener", "筛查人员": "screener", "填写日期": "answered_on",
    }
)
_BRACKETED_UNIT: Final = re.compile(r"[(（][^)）]*[)）]$")


def _zh_key(name: str) -> str:
    return _BRACKETED_UNIT.sub("", re.sub(r"\s+", "", name))


_COLUMN_BY_ZH: Final[Mapping[str, str]] = MappingProxyType(
    {**{_zh_key(zh): column for column, zh in COLUMN_NAMES_ZH.items()}, **_ZH_VARIANTS}
)


def canonical_column(name: str) -> str:
    """The English column name for a heading in English or Chinese; other headings unchanged.

    ``学籍号`` and ``student_number`` both give ``student_number``; ``身高（厘米）`` and ``身高(cm)``
    give ``height_cm``. Surrounding spaces and a byte-order mark are not silently dropped (the
    header check names them), except around a Chinese heading, where they carry no meaning.
    """
    known = _COLUMN_BY_ZH.get(_zh_key(name.removeprefix("\ufeff")))
    return known if known is not None else name


def expected_columns_text(kind: str) -> str:
    """``school_id (学校代码), student_number (学籍号), …`` for help texts and error messages."""
    required = ", ".join(f"{c} ({COLUMN_NAMES_ZH[c]})" for c in COLUMNS[kind])
    optional = OPTIONAL_COLUMNS.get(kind, ())
    if optional:
        required += "; optional: " + ", ".join(f"{c} ({COLUMN_NAMES_ZH[c]})" for c in optional)
    return required


# Cells whose content identifies a person: reasons describe them but never repeat them.
_PERSONAL_COLUMNS: Final = frozenset({"student_number", "name", "birth_date"})

_TRUE: Final = frozenset({"true", "1", "yes", "是"})
_FALSE: Final = frozenset({"false", "0", "no", "否"})
_SEXES: Final[Mapping[str, Sex]] = {"male": "male", "female": "female", "男": "male", "女": "female"}
_ACTIONS: Final[Mapping[str, Action]] = {action: action for action in get_args(Action)}
_URBAN_RURAL: Final[Mapping[str, UrbanRural]] = {value: value for value in get_args(UrbanRural)}
_STAGES: Final[Mapping[str, Stage]] = {value: value for value in get_args(Stage)}

# ISO dates, the 2015/3/7 and 2015.3.7 forms spreadsheets produce, 2015年3月7日, 20150307, and the
# "2015-03-07 00:00:00" that a date cell of an XLSX file becomes as text.
_DATE = re.compile(
    r"(\d{4})(?:[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{2})(\d{2}))"
    r"(?:[ T]00:00(?::00(?:\.0+)?)?)?"
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_ECHOABLE = re.compile(r"[!-~]{1,40}", re.ASCII)
_DIGIT_RUN = re.compile(r"\d{7}", re.ASCII)
_FORMULA_PREFIXES: Final = ("=", "+", "-", "@")


class RowRejected(ValueError):
    """One row that cannot become an event or a record; ``field`` is the CSV column."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class HeaderRejected(ValueError):
    """A file whose header is not exactly the expected columns: nothing in it is imported."""

    def __init__(
        self, kind: str, *, missing: tuple[str, ...] = (), unexpected: tuple[str, ...] = (),
        reason: str | None = None,
    ) -> None:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if unexpected:
            parts.append("unexpected " + ", ".join(repr(name) for name in unexpected))
        if reason:
            parts.append(reason)
        self.kind = kind
        self.missing = missing
        self.unexpected = unexpected
        self.reason = "; ".join(parts)
        super().__init__(f"{kind} file header: {self.reason}")


@dataclass(frozen=True, slots=True, kw_only=True)
class School:
    """One row of schools.csv."""

    school_id: SchoolId
    name: str
    county_id: str
    county_name: str
    urban_rural: UrbanRural
    stage: Stage
    boarding: bool
    enrollment: int | None
    school_doctors: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterEntry:
    """One pupil of roster.csv. Holds the name and number, so it stays at the edge."""

    student_key: StudentKey
    school_id: SchoolId
    student_number: str = field(repr=False)
    name: str = field(repr=False)
    sex: Sex
    birth_date: date
    grade: int
    enrolled_on: date
    boarding: bool
    left_behind: bool
    disability: bool
    class_name: str | None = None
    guardian_name: str | None = field(default=None, repr=False)


def check_header(kind: str, fieldnames: Sequence[str] | None) -> None:
    """Raise ``HeaderRejected`` unless ``fieldnames`` are ``COLUMNS[kind]`` plus any of
    ``OPTIONAL_COLUMNS[kind]`` (a bmi file with ``age_months`` may leave out ``birth_date``).

    ``fieldnames`` is ``csv.DictReader.fieldnames`` (None for an empty file). Order does not
    matter; a missing, unexpected or repeated column does.
    """
    expected = COLUMNS.get(kind)
    if expected is None:
        raise ValueError(f"unknown import kind {kind!r}; expected one of {', '.join(COLUMNS)}")
    if fieldnames is None:
        raise HeaderRejected(kind, reason="the file is empty")
    names: list[object] = list(fieldnames)
    if not all(isinstance(name, str) for name in names):
        raise HeaderRejected(kind, reason="the header must be a row of column names")
    header = [str(name) for name in names]
    repeated = sorted({name for name in header if header.count(name) > 1})
    optional = OPTIONAL_COLUMNS.get(kind, ())
    age_only = kind == "bmi" and "age_months" in header
    missing = tuple(name for name in expected if name not in header and not (age_only and name == "birth_date"))
    unexpected = tuple(dict.fromkeys(name for name in header if name not in expected and name not in optional))
    hint = None
    if any(name.startswith("\ufeff") for name in header):
        hint = "the first column starts with a byte-order mark: read the file as utf-8-sig"
    elif any(name != name.strip() for name in header):
        hint = "a column name has surrounding spaces"
    if repeated:
        hint = "; ".join(filter(None, [hint, "repeated " + ", ".join(repeated)]))
    if missing or unexpected or repeated:
        raise HeaderRejected(kind, missing=missing, unexpected=unexpected, reason=hint)


def _check_row(kind: str, row: Mapping[str, str]) -> None:
    # csv.DictReader files cells beyond the header under the key None.
    keys: Collection[object] = row.keys()
    if None in keys:
        raise RowRejected("row", "more cells than the header has columns")
    allowed = (*COLUMNS[kind], *OPTIONAL_COLUMNS.get(kind, ()))
    if not all(name in row for name in COLUMNS[kind]) or not all(name in allowed for name in row):
        check_header(kind, [name for name in row if isinstance(name, str)])


_T = TypeVar("_T")


class _Cells:
    """Typed access to the cells of one row; every failure names its column."""

    __slots__ = ("_row",)

    def __init__(self, row: Mapping[str, str]) -> None:
        self._row = row

    def _raw(self, column: str) -> str:
        value: object = self._row.get(column)
        if value is None:
            return ""
        # openpyxl hands over numbers and datetimes; their text forms parse below.
        text = value if isinstance(value, str) else str(value)
        return text.strip()

    def _shown(self, column: str, value: str) -> str:
        # Echo a bad cell only if it cannot be a name or an ID or phone number, nor run as a
        # spreadsheet formula where a report of rejections is opened.
        if column in _PERSONAL_COLUMNS or not _ECHOABLE.fullmatch(value) or _DIGIT_RUN.search(value):
            return f"the value ({len(value)} characters)"
        if value.startswith(_FORMULA_PREFIXES) and not _NUMBER.fullmatch(value):
            return f"the value ({len(value)} characters, starting like a formula)"
        return repr(value)

    def optional(self, column: str, parse: Callable[[str, str], _T]) -> _T | None:
        text = self._raw(column)
        return None if not text else parse(column, text)

    def required(self, column: str, parse: Callable[[str, str], _T]) -> _T:
        text = self._raw(column)
        if not text:
            raise RowRejected(column, "blank; a value is required")
        return parse(column, text)

    def text(self, column: str, text: str) -> str:
        return text

    def identifier(self, column: str, text: str) -> str:
        if len(text) > IDENTIFIER_MAX_LENGTH or not _IDENTIFIER.fullmatch(text):
            raise RowRejected(
                column,
                f"{self._shown(column, text)} is not a code of letters, digits and . _ : - "
                f"of at most {IDENTIFIER_MAX_LENGTH} characters (not a name or an ID number)",
            )
        return text

    def date(self, column: str, text: str) -> date:
        match = _DATE.fullmatch(text)
        if match is not None:
            year, month, day, compact_month, compact_day = match.groups()
            try:
                return date(int(year), int(month or compact_month), int(day or compact_day))
            except ValueError:
                pass
        raise RowRejected(column, f"{self._shown(column, text)} is not a date (YYYY-MM-DD)")

    def number(self, column: str, text: str) -> float:
        if not _NUMBER.fullmatch(text):
            raise RowRejected(column, f"{self._shown(column, text)} is not a number")
        return float(text)

    def integer(self, column: str, text: str) -> int:
        value = self.number(column, text)
        # A spreadsheet turns 3 into "3.0".
        if not value.is_integer():
            raise RowRejected(column, f"{self._shown(column, text)} is not a whole number")
        return int(value)

    def boolean(self, column: str, text: str) -> bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise RowRejected(
            column, f"{self._shown(column, text)} is not a yes/no value (true/false, 1/0, yes/no, 是/否)"
        )

    def sex(self, column: str, text: str) -> Sex:
        sex = _SEXES.get(text.lower())
        if sex is None:
            raise RowRejected(column, f"{self._shown(column, text)} is not male/female (男/女)")
        return sex

    def lookup(self, table: Mapping[str, _T]) -> Callable[[str, str], _T]:
        def parse(column: str, text: str) -> _T:
            value = table.get(text.lower())
            if value is None:
                raise RowRejected(
                    column, f"{self._shown(column, text)} is not one of {', '.join(table)}"
                )
            return value

        return parse


def _age_months(birth_date: date, measured_on: date, measured_column: str) -> float:
    age = months_between(birth_date, measured_on)
    if age <= 0:
        raise RowRejected(measured_column, f"{measured_on.isoformat()}: measured before birth")
    if age >= AGE_MONTHS_MAX:
        raise RowRejected(
            "birth_date",
            f"age {int(age // 12)} years on {measured_column} is implausible for a pupil",
        )
    return age


def _not_future(column: str, value: date, now: datetime) -> date:
    # The contract allows a day for time zones (a school's today can be UTC's tomorrow); so do we.
    if (value - now.date()).days > 1:
        raise RowRejected(column, f"{value.isoformat()} is in the future (today is {now.date().isoformat()})")
    return value


def _height_cm(cells: _Cells) -> float | None:
    value = cells.optional("height_cm", cells.number)
    if value is None:
        return None
    if 800 <= value <= 2300:
        raise RowRejected("height_cm", f"{value:g} looks like millimetres ({value / 10:g} cm); enter centimetres")
    if 0.8 <= value <= 2.3:
        raise RowRejected("height_cm", f"{value:g} looks like metres ({value * 100:g} cm); enter centimetres")
    return value


def _weight_kg(cells: _Cells) -> float | None:
    value = cells.optional("weight_kg", cells.number)
    if value is None:
        return None
    if 10_000 <= value <= 250_000:
        raise RowRejected("weight_kg", f"{value:g} looks like grams ({value / 1000:g} kg); enter kilograms")
    return value


def _key(cells: _Cells, secret: bytes) -> StudentKey:
    number = cells.required("student_number", cells.text)
    try:
        return student_key(secret, number)
    except ValueError as exc:
        raise RowRejected("student_number", str(exc)) from None


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def _flag(value: bool) -> str:
    return "1" if value else "0"


# Contract fields that are not columns of their own.
_COLUMN_OF_FIELD: Final[Mapping[str, str]] = {
    "student_key": "student_number",
    "age_months": "birth_date",
    "occurred_at": "now",
    "schema": "row",
    "event": "row",
}


def _build(model: type[BaseModel], values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = field_errors(exc, model)
        first = problems[0]
        reason = first.message
        for other in problems[1:3]:
            reason += f"; also {_COLUMN_OF_FIELD.get(other.field, other.field)}: {other.message}"
        raise RowRejected(_COLUMN_OF_FIELD.get(first.field, first.field), reason) from None


def _common(
    cells: _Cells, *, secret: bytes, submitted_by: str, now: datetime
) -> dict[str, Any]:
    return {
        "occurred_at": now,
        "school_id": cells.required("school_id", cells.identifier),
        "student_key": _key(cells, secret),
        "submitted_by": submitted_by,
    }


def _health_record(
    *,
    common: dict[str, Any],
    action: Action,
    effective_on: date,
    county_id: str,
    sex: Sex,
    birth_date: date,
    grade: int,
    boarding: bool,
    left_behind: bool,
    disability: bool,
    to_school_id: str | None,
) -> HealthRecord:
    # The roster's "register" and a records.csv "register" row with the same content are the same
    # event, so both derive the id as the "records" kind does.
    event_id = event_id_for(
        "records", common["school_id"], common["student_key"], effective_on.isoformat(), action,
        county_id, sex, birth_date.isoformat(), str(grade), _flag(boarding), _flag(left_behind),
        _flag(disability), to_school_id or "",
    )
    record: HealthRecord = _build(
        HealthRecord,
        {
            **common,
            "event_id": event_id,
            "action": action,
            "effective_on": effective_on,
            "county_id": county_id,
            "sex": sex,
            "birth_date": birth_date,
            "grade": grade,
            "boarding": boarding,
            "left_behind": left_behind,
            "disability": disability,
            "to_school_id": to_school_id,
        },
    )
    return record


def _records_row(cells: _Cells, common: dict[str, Any]) -> HealthRecord:
    return _health_record(
        common=common,
        action=cells.required("action", cells.lookup(_ACTIONS)),
        effective_on=_not_future("effective_on", cells.required("effective_on", cells.date),
                                 common["occurred_at"]),
        county_id=cells.required("county_id", cells.identifier),
        sex=cells.required("sex", cells.sex),
        birth_date=cells.required("birth_date", cells.date),
        grade=cells.required("grade", cells.integer),
        boarding=cells.required("boarding", cells.boolean),
        left_behind=cells.required("left_behind", cells.boolean),
        disability=cells.required("disability", cells.boolean),
        to_school_id=cells.optional("to_school_id", cells.identifier),
    )


def _ucva(cells: _Cells, column: str) -> float:
    value = cells.required(column, cells.number)
    if 0 < value <= 2.0:
        raise RowRejected(
            column, f"{value!r} looks like decimal acuity; expected 5-point notation 3.0..5.3"
        )
    return value


def _vision_row(cells: _Cells, common: dict[str, Any]) -> VisionScreening:
    sex = cells.required("sex", cells.sex)
    birth_date = cells.required("birth_date", cells.date)
    measured_on = _not_future("measured_on", cells.required("measured_on", cells.date), common["occurred_at"])
    age = _age_months(birth_date, measured_on, "measured_on")
    ucva_right = _ucva(cells, "ucva_right")
    ucva_left = _ucva(cells, "ucva_left")
    se_right = cells.optional("se_right", cells.number)
    se_left = cells.optional("se_left", cells.number)
    wears_glasses = cells.required("wears_glasses", cells.boolean)
    event_id = event_id_for(
        "vision", common["school_id"], common["student_key"], measured_on.isoformat(),
        repr(ucva_right), repr(ucva_left), "" if se_right is None else repr(se_right),
        "" if se_left is None else repr(se_left), _flag(wears_glasses),
    )
    event: VisionScreening = _build(
        VisionScreening,
        {
            **common,
            "event_id": event_id,
            "measured_on": measured_on,
            "sex": sex,
            "age_months": age,
            "ucva_right": ucva_right,
            "ucva_left": ucva_left,
            "se_right": se_right,
            "se_left": se_left,
            "wears_glasses": wears_glasses,
            "screener": cells.required("screener", cells.identifier),
        },
    )
    return event


def _bmi_age(cells: _Cells, measured_on: date) -> tuple[float, int | None, str]:
    """Decimal age in months, completed calendar months when known, and the event-id part."""
    birth_date = cells.optional("birth_date", cells.date)
    recorded_age = cells.optional("age_months", cells.number)
    if birth_date is not None and recorded_age is not None:
        raise RowRejected("age_months", "give birth_date or age_months, not both")
    if birth_date is not None:
        # Two decimals, as WHO's software takes the age (and as `schoolhealth classify` shows it).
        age = round(_age_months(birth_date, measured_on, "measured_on"), 2)
        return age, completed_months(birth_date, measured_on), ""
    if recorded_age is None:
        raise RowRejected("birth_date", "blank; a birth date (or, for a record with only an age, age_months) "
                                        "is required")
    if not 0 < recorded_age < AGE_MONTHS_MAX:
        raise RowRejected("age_months", f"{recorded_age!r} is not an age in months (0..{AGE_MONTHS_MAX})")
    return recorded_age, None, f"age:{recorded_age!r}"


def _bmi_row(cells: _Cells, common: dict[str, Any]) -> BmiScreening:
    sex = cells.required("sex", cells.sex)
    measured_on = _not_future("measured_on", cells.required("measured_on", cells.date), common["occurred_at"])
    age, completed, age_part = _bmi_age(cells, measured_on)
    height_cm = _height_cm(cells)
    weight_kg = _weight_kg(cells)
    if height_cm is None and weight_kg is None:
        raise RowRejected("weight_kg", "height_cm and weight_kg are both blank; at least one is required")
    oedema = cells.optional("oedema", cells.boolean)
    # The id of a row without the new cells is what it always was, so re-imports stay idempotent.
    extra = [part for part in (age_part, "" if oedema is None else f"oedema:{_flag(oedema)}") if part]
    event_id = event_id_for(
        "bmi", common["school_id"], common["student_key"], measured_on.isoformat(),
        "" if height_cm is None else repr(height_cm), "" if weight_kg is None else repr(weight_kg), *extra,
    )
    event: BmiScreening = _build(
        BmiScreening,
        {
            **common,
            "event_id": event_id,
            "measured_on": measured_on,
            "sex": sex,
            "age_months": age,
            "age_completed_months": completed,
            "height_cm": height_cm,
            "weight_kg": weight_kg,
            "oedema": oedema,
            "screener": cells.required("screener", cells.identifier),
        },
    )
    return event


_SIGNED_INTEGER: Final = re.compile(r"[+-]?\d+", re.ASCII)


def _answers(column: str, text: str) -> tuple[int, ...]:
    items = [item.strip() for item in text.split(";")]
    if items and not items[-1]:
        items.pop()  # a trailing semicolon
    answers = []
    for position, item in enumerate(items, start=1):
        if not _SIGNED_INTEGER.fullmatch(item):
            raise RowRejected(
                column, f"item {position}: {item!r} is not a whole number (expected e.g. 0;1;3)"
            )
        answers.append(int(item))
    return tuple(answers)


def _survey_row(cells: _Cells, common: dict[str, Any]) -> PsychSurvey:
    sex = cells.required("sex", cells.sex)
    birth_date = cells.required("birth_date", cells.date)
    answered_on = _not_future("answered_on", cells.required("answered_on", cells.date), common["occurred_at"])
    age = _age_months(birth_date, answered_on, "answered_on")
    instrument = cells.required("instrument", cells.identifier).lower()
    instrument_version = cells.optional("instrument_version", cells.identifier) or "1"
    answers = cells.required("answers", _answers)
    event_id = event_id_for(
        "survey", common["school_id"], common["student_key"], answered_on.isoformat(),
        instrument, instrument_version, ";".join(str(answer) for answer in answers),
    )
    event: PsychSurvey = _build(
        PsychSurvey,
        {
            **common,
            "event_id": event_id,
            "answered_on": answered_on,
            "sex": sex,
            "age_months": age,
            "instrument": instrument,
            "instrument_version": instrument_version,
            "answers": answers,
        },
    )
    return event


_ATTEMPTS: Final[Mapping[str, str]] = {"first": "first", "retest": "retest", "首测": "first", "补测": "retest"}
_EXEMPTION_REASONS: Final[Mapping[str, str]] = {
    "illness": "illness", "disability": "disability", "injury": "injury", "not_stated": "not_stated",
    "疾病": "illness", "残疾": "disability", "伤病": "injury", "受伤": "injury", "未说明": "not_stated",
}
_TIMED_FIELDS: Final = frozenset({"run_800m_s", "run_1000m_s", "shuttle_run_50m_x8_s"})
_ITEM_OF_FIELD: Final = {info.field: item for item, info in ITEM_INFO.items()}


def _fitness_row(cells: _Cells, common: dict[str, Any]) -> FitnessTest:
    """One student's fitness test. A blank result is not measured (never 0); ``免测`` exempts the
    item, and every item of the grade exempted is a whole exemption; an item the standard does
    not test for the student's grade and sex is refused by the contract with the grade's items."""
    sex = cells.required("sex", cells.sex)
    grade = cells.required("grade", cells.integer)
    if not 1 <= grade <= 12:
        raise RowRejected("grade", f"{grade} outside 1..12")
    measured_on = _not_future("measured_on", cells.required("measured_on", cells.date), common["occurred_at"])
    attempt = cells.optional("attempt", cells.lookup(_ATTEMPTS)) or "first"
    reason = cells.optional("exemption_reason", cells.lookup(_EXEMPTION_REASONS))
    values: dict[str, Any] = {}
    for name, value in (("height_cm", _height_cm(cells)), ("weight_kg", _weight_kg(cells))):
        if value is not None:
            values[name] = value
    exempted: list[str] = []
    for column, item in _ITEM_OF_FIELD.items():
        text = cells.optional(column, cells.text)
        if text is None:
            continue
        if text in EXEMPT_MARKS:
            exempted.append(item)
        elif column in _TIMED_FIELDS:
            try:
                values[column] = parse_time(column, text)
            except UploadRowRejected as error:
                raise RowRejected(column, error.reason) from None
        else:
            number = cells.number(column, text)
            values[column] = number if ITEM_INFO[item].unit == "s" else whole(number)
    if reason is not None and not exempted:
        raise RowRejected("exemption_reason", "given, but no item is marked 免测 (exempt)")
    bmi_measured = "height_cm" in values and "weight_kg" in values
    if not exempted and not bmi_measured and not any(column in values for column in _ITEM_OF_FIELD):
        raise RowRejected("row", "no test result (an item, or height and weight) and no item marked 免测")
    for exempted_item in exempted:
        if exempted_item not in items_for(sex, grade):
            raise RowRejected(ITEM_INFO[exempted_item].field,  # type: ignore[index]  # an Item from _ITEM_OF_FIELD
                              f"{exempted_item} is not tested in grade {grade} ({sex}); that grade's items are "
                              + ", ".join(items_for(sex, grade)))
    try:
        return build_fitness_event(
            key=common["student_key"], school_id=common["school_id"], measured_on=measured_on, attempt=attempt,
            sex=sex, grade=grade, screener=cells.required("screener", cells.identifier),
            submitted_by=common["submitted_by"], now=common["occurred_at"], values=values, exempted=exempted,
            exemption_reason=reason)
    except ValidationError as exc:
        problems = field_errors(exc, FitnessTest)
        raise RowRejected(_COLUMN_OF_FIELD.get(problems[0].field, problems[0].field), problems[0].message) from None


_ROW_BUILDERS: Final[Mapping[str, Callable[[_Cells, dict[str, Any]], Event]]] = {
    "records": _records_row,
    "vision": _vision_row,
    "bmi": _bmi_row,
    "survey": _survey_row,
    "fitness": _fitness_row,
}


def row_to_event(
    kind: EventKind, row: Mapping[str, str], *, secret: bytes, submitted_by: str, now: datetime
) -> Event:
    """Convert one row of records.csv, vision.csv, bmi.csv, survey.csv or a fitness row into its event.

    ``now`` (timezone-aware) becomes ``occurred_at``; dates after it are rejected. The event id
    is derived from the row's content, so re-importing a file gives the same ids. Raises
    ``RowRejected`` naming the column, or ``HeaderRejected`` if the row's columns are wrong.
    """
    builder = _ROW_BUILDERS.get(kind)
    if builder is None:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
    _require_aware(now)
    _check_row(kind, row)
    cells = _Cells(row)
    return builder(cells, _common(cells, secret=secret, submitted_by=submitted_by, now=now))



@dataclass(frozen=True, slots=True, kw_only=True)
class CheckedRow:
    """One row as the worker will take it: its event, and the event classified into `batch`."""

    event: Event
    batch: ProcessedMessages


def check_row(
    kind: EventKind, row: Mapping[str, str], *, secret: bytes, submitted_by: str, now: datetime
) -> CheckedRow:
    """Validate one row (`row_to_event`, which raises `RowRejected`/`HeaderRejected`), then classify
    its event as the worker will.

    A row that passes its contract always classifies: every contract bound lies inside the domain
    of the standard that judges it (tests/unit/models/test_classification_domain.py reads the bounds
    from the contracts). A ValueError from the standards here would be that invariant broken, a bug
    to surface, not a row to refuse, so it is not caught.
    """
    event = row_to_event(kind, row, secret=secret, submitted_by=submitted_by, now=now)
    batch = ProcessedMessages()
    classify_event(event, batch)
    return CheckedRow(event=event, batch=batch)


def _non_negative(cells: _Cells) -> Callable[[str, str], int]:
    def parse(column: str, text: str) -> int:
        value = cells.integer(column, text)
        if value < 0:
            raise RowRejected(column, f"{value} is negative")
        return value

    return parse


def parse_school_row(row: Mapping[str, str]) -> School:
    """Parse one row of schools.csv. ``enrollment`` and ``school_doctors`` may be blank."""
    _check_row("schools", row)
    cells = _Cells(row)
    return School(
        school_id=SchoolId(cells.required("school_id", cells.identifier)),
        name=cells.required("name", cells.text),
        county_id=cells.required("county_id", cells.identifier),
        county_name=cells.required("county_name", cells.text),
        urban_rural=cells.required("urban_rural", cells.lookup(_URBAN_RURAL)),
        stage=cells.required("stage", cells.lookup(_STAGES)),
        boarding=cells.required("boarding", cells.boolean),
        enrollment=cells.optional("enrollment", _non_negative(cells)),
        school_doctors=cells.optional("school_doctors", _non_negative(cells)),
    )


def parse_roster_row(row: Mapping[str, str], *, secret: bytes) -> RosterEntry:
    """Parse one row of roster.csv, deriving ``student_key`` from the student number.

    The entry keeps the name and number for the school's own lists; it never goes to Kafka.
    """
    _check_row("roster", row)
    cells = _Cells(row)
    key = _key(cells, secret)
    number = cells.required("student_number", cells.text).upper()
    birth_date = cells.required("birth_date", cells.date)
    enrolled_on = cells.required("enrolled_on", cells.date)
    age = months_between(birth_date, enrolled_on)
    if age <= 0:
        raise RowRejected("birth_date", "not before enrolled_on")
    if age >= AGE_MONTHS_MAX:
        raise RowRejected("birth_date", f"age {int(age // 12)} years on enrolled_on is implausible")
    grade = cells.required("grade", cells.integer)
    if not 1 <= grade <= 9:
        raise RowRejected("grade", f"{grade} outside 1..9")
    return RosterEntry(
        student_key=key,
        school_id=SchoolId(cells.required("school_id", cells.identifier)),
        student_number=number,
        name=cells.required("name", cells.text),
        sex=cells.required("sex", cells.sex),
        birth_date=birth_date,
        grade=grade,
        enrolled_on=enrolled_on,
        boarding=cells.required("boarding", cells.boolean),
        left_behind=cells.required("left_behind", cells.boolean),
        disability=cells.required("disability", cells.boolean),
        class_name=cells.optional("class_name", _class_name),
        guardian_name=cells.optional("guardian_name", cells.text),
    )


def _class_name(column: str, text: str) -> str:
    """A class within its grade: ``3``, ``3班``, ``(3)班`` and ``三班`` are all class 3."""
    cleaned = re.sub(r"[\s()（）班]", "", text)
    cleaned = str(_CHINESE_NUMERALS.get(cleaned, cleaned))
    if not cleaned or len(cleaned) > 12:
        raise RowRejected(column, f"{len(text)} characters is not a class name (e.g. 3 or 3班)")
    return cleaned.lstrip("0") or "0"


_CHINESE_NUMERALS: Final[Mapping[str, int]] = MappingProxyType(
    {n: i for i, n in enumerate("一二三四五六七八九十", start=1)}
    | {f"十{n}": 10 + i for i, n in enumerate("一二三四五六七八九", start=1)}
)


def roster_to_event(
    entry: RosterEntry, *, county_id: str, submitted_by: str, now: datetime
) -> HealthRecord:
    """The ``register`` health-record event for a roster entry, effective on ``enrolled_on``.

    ``county_id`` comes from the school (roster.csv has no county column). Its id equals that of
    a records.csv ``register`` row with the same content. Raises ``RowRejected``.
    """
    _require_aware(now)
    return _health_record(
        common={
            "occurred_at": now,
            "school_id": entry.school_id,
            "student_key": entry.student_key,
            "submitted_by": submitted_by,
        },
        action="register",
        effective_on=entry.enrolled_on,
        county_id=county_id,
        sex=entry.sex,
        birth_date=entry.birth_date,
        grade=entry.grade,
        boarding=entry.boarding,
        left_behind=entry.left_behind,
        disability=entry.disability,
        to_school_id=None,
    )
