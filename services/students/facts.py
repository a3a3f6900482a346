"""What a page says about a student: name, school name, current grade and class, age, guardian.

Read under the caller's row-level security (roster names only for the schools they serve). The
grade is the one of today's school year (`models.school_year`), from whichever of the roster and
the health records stated it last, never the grade at registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from models.school_year import age_years, current_grade
from services.access.session import Session

_FACTS = """
SELECT k.key AS student_key, r.name, r.class_name, r.guardian_name, coalesce(r.sex, s.sex) AS sex,
       coalesce(r.birth_date, s.birth_date) AS birth_date, r.grade AS roster_grade, r.enrolled_on,
       h.grade AS record_grade, h.effective_on, coalesce(s.school_id, r.school_id) AS school_id,
       sc.name AS school_name, s.status
FROM unnest(%(keys)s::text[]) AS k(key)
LEFT JOIN roster.students r ON r.student_key = k.key
LEFT JOIN archive.students s ON s.student_key = k.key
LEFT JOIN LATERAL (SELECT h.grade, h.effective_on FROM archive.student_history h
                   WHERE h.student_key = k.key AND h.action <> 'leave'
                   ORDER BY h.effective_on DESC, h.occurred_at DESC LIMIT 1) h ON true
LEFT JOIN archive.schools sc ON sc.school_id = coalesce(s.school_id, r.school_id)
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class StudentFacts:
    student_key: str
    name: str | None
    school_id: str | None
    school_name: str | None
    grade: int | None
    class_name: str | None
    age: int | None
    sex: str | None
    birth_date: date | None
    guardian_name: str | None
    status: str | None


def _grade(row: dict[str, Any], today: date) -> int | None:
    stated: list[tuple[date, int]] = []
    if row["roster_grade"] is not None:
        stated.append((row["enrolled_on"] or date.min, int(row["roster_grade"])))
    if row["record_grade"] is not None:
        stated.append((row["effective_on"], int(row["record_grade"])))
    if not stated:
        return None
    on, grade = max(stated)
    return current_grade(grade, None if on == date.min else on, today)


def facts_from_row(row: dict[str, Any], today: date) -> StudentFacts:
    birth = row["birth_date"]
    return StudentFacts(
        student_key=row["student_key"], name=row["name"], school_id=row["school_id"], school_name=row["school_name"],
        grade=_grade(row, today), class_name=row["class_name"], age=age_years(birth, today) if birth else None,
        sex=row["sex"], birth_date=birth, guardian_name=row["guardian_name"], status=row["status"])


async def student_facts(session: Session, keys: list[str], today: date) -> dict[str, StudentFacts]:
    """Facts of each student in ``keys`` that the caller may see (others: only the key, all else None)."""
    unique = list(dict.fromkeys(keys))
    if not unique:
        return {}
    rows = await session.fetch(_FACTS, {"keys": unique})
    return {row["student_key"]: facts_from_row(row, today) for row in rows}


async def school_names(session: Session, school_ids: list[str]) -> dict[str, str]:
    rows = await session.fetch("SELECT school_id, name FROM archive.schools WHERE school_id = ANY(%s)",
                               (list(set(school_ids)),))
    return {row["school_id"]: row["name"] for row in rows}
