"""The class screening sheet: which columns it has and how one row becomes screenings.

A row is one roster student; the doctor types measurements, and each screening kind whose cells
were filled becomes one row of that kind's import file (school, student number, sex and birth
date from the roster), submitted through the same path as a single screening.

The sheet has two forms: the screening sheet (``SHEET_COLUMNS``: height and weight, vision) and
the physical-fitness sheet (``fitness_columns(grade)``: height, weight and the items the national
standard tests in that grade, for either sex; a PE teacher or the school doctor types a result,
``免测`` for an exempted item, or nothing for an item not measured). A fitness row becomes one
``fitness`` row (`models.importing`), with the student's grade and the sheet's attempt (首测/补测).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from models.fitness import ITEM_INFO, items_for
from models.importing import COLUMNS


@dataclass(frozen=True, slots=True, kw_only=True)
class SheetColumn:
    name: str  # the import column it fills
    kind: str  # the import kind (bmi, vision, …) the column belongs to
    label: str  # message key of its heading
    attrs: str = ""  # HTML attributes of its input (type, step, range, inputmode)
    required_with_kind: bool = True  # must be filled once any cell of its kind is


NUMBER = 'type="text" inputmode="decimal" autocomplete="off" size="5"'
SHEET_COLUMNS: Final[tuple[SheetColumn, ...]] = (
    SheetColumn(name="height_cm", kind="bmi", label="field.height_cm", attrs=NUMBER),
    SheetColumn(name="weight_kg", kind="bmi", label="field.weight_kg", attrs=NUMBER),
    SheetColumn(name="ucva_right", kind="vision", label="sheet.ucva_right", attrs=NUMBER),
    SheetColumn(name="ucva_left", kind="vision", label="sheet.ucva_left", attrs=NUMBER),
    SheetColumn(name="se_right", kind="vision", label="sheet.se_right", attrs=NUMBER, required_with_kind=False),
    SheetColumn(name="se_left", kind="vision", label="sheet.se_left", attrs=NUMBER, required_with_kind=False),
    SheetColumn(name="wears_glasses", kind="vision", label="sheet.wears_glasses", attrs='type="checkbox"',
                required_with_kind=False),
)


# Results: decimals (50 m 8.5), whole numbers, times as m'ss (3'35) or seconds, or 免测.
RESULT = 'type="text" autocomplete="off" size="5"'
FITNESS_ATTEMPTS: Final = ("first", "retest")


def fitness_columns(grade: int) -> tuple[SheetColumn, ...]:
    """Height, weight and every item tested in ``grade`` (boys' and girls' items alike), in the
    standard's order; a cell of an item not tested for a student's sex is refused when saved."""
    tested = set(items_for("male", grade)) | set(items_for("female", grade))
    return (
        SheetColumn(name="height_cm", kind="fitness", label="field.height_cm", attrs=NUMBER, required_with_kind=False),
        SheetColumn(name="weight_kg", kind="fitness", label="field.weight_kg", attrs=NUMBER, required_with_kind=False),
        *(SheetColumn(name=info.field, kind="fitness", label=f"fitness.item.{item}", attrs=RESULT,
                      required_with_kind=False)
          for item, info in ITEM_INFO.items() if item in tested),
        SheetColumn(name="exemption_reason", kind="fitness", label="field.exemption_reason",
                    attrs='type="text" autocomplete="off" size="6" list="exemption-reasons"', required_with_kind=False),
    )


def fitness_column_applies(column: SheetColumn, sex: str | None, grade: int) -> bool:
    """Whether the student of ``sex`` is tested on this column's item (height, weight: always)."""
    for item, info in ITEM_INFO.items():
        if info.field == column.name:
            return sex not in ("male", "female") or item in items_for(sex, grade)  # type: ignore[arg-type]
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterStudent:
    school_id: str
    student_number: str
    sex: str
    birth_date: date


def sheet_rows(student: RosterStudent, cells: dict[str, str], *, measured_on: date, screener: str,
               columns: tuple[SheetColumn, ...] = SHEET_COLUMNS, grade: int | None = None,
               attempt: str = "first") -> dict[str, dict[str, str]]:
    """The import rows, by kind, that the typed ``cells`` of one student make (kinds left blank: none).

    A checkbox alone (wears glasses) does not start a vision screening. A fitness row carries the
    student's ``grade`` and the sheet's ``attempt``.
    """
    rows: dict[str, dict[str, str]] = {}
    for kind in dict.fromkeys(column.kind for column in columns):
        own = [c for c in columns if c.kind == kind]
        typed = {c.name: cells.get(c.name, "").strip() for c in own}
        if not any(typed[c.name] for c in own if 'type="checkbox"' not in c.attrs):
            continue
        base = {"school_id": student.school_id, "student_number": student.student_number, "sex": student.sex,
                "birth_date": student.birth_date.isoformat(), "measured_on": measured_on.isoformat(),
                "screener": screener, "grade": "" if grade is None else str(grade)}
        row = {column: base.get(column, "") for column in COLUMNS[kind]}
        if kind == "fitness":
            row["attempt"] = attempt
        for column in own:
            value = typed[column.name]
            if 'type="checkbox"' in column.attrs:
                value = "true" if value in ("true", "on", "1") else "false"
            row[column.name] = value
        rows[kind] = row
    return rows
