"""The class screening sheet: which columns it has and how one row becomes screenings.

A row is one roster student; the doctor types measurements, and each screening kind whose cells
were filled becomes one row of that kind's import file (school, student number, sex and birth
date from the roster), submitted through the same path as a single screening. More columns (the
physical fitness items) are added by appending to ``SHEET_COLUMNS`` with their own kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

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


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterStudent:
    school_id: str
    student_number: str
    sex: str
    birth_date: date


def sheet_rows(student: RosterStudent, cells: dict[str, str], *, measured_on: date,
               screener: str) -> dict[str, dict[str, str]]:
    """The import rows, by kind, that the typed ``cells`` of one student make (kinds left blank: none).

    A checkbox alone (wears glasses) does not start a vision screening.
    """
    rows: dict[str, dict[str, str]] = {}
    for kind in dict.fromkeys(column.kind for column in SHEET_COLUMNS):
        own = [c for c in SHEET_COLUMNS if c.kind == kind]
        typed = {c.name: cells.get(c.name, "").strip() for c in own}
        if not any(typed[c.name] for c in own if 'type="checkbox"' not in c.attrs):
            continue
        base = {"school_id": student.school_id, "student_number": student.student_number, "sex": student.sex,
                "birth_date": student.birth_date.isoformat(), "measured_on": measured_on.isoformat(),
                "screener": screener}
        row = {column: base.get(column, "") for column in COLUMNS[kind]}
        for column in own:
            value = typed[column.name]
            if 'type="checkbox"' in column.attrs:
                value = "true" if value in ("true", "on", "1") else "false"
            row[column.name] = value
        rows[kind] = row
    return rows
