"""The school doctor's follow-up list, read and written under the caller's row-level security.

The list is computed from the archive each time (each student's latest vision and growth
screening, `models.follow_up` deciding which results need action), so it can never be empty while
the archive holds such results; `followup.cases` only adds what the doctor has done about them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.follow_up import (
    STATES,
    Finding,
    State,
    default_next_check,
    fitness_findings,
    growth_findings,
    vision_findings,
)
from services.access.session import Session
from services.students.facts import StudentFacts, student_facts

# Each student's latest screening of each kind whose result needs action (in SQL, so a school of
# thousands is one query); models.follow_up names the findings of each row in Python.
_NEEDING_ACTION = """
WITH v AS (
    SELECT DISTINCT ON (student_key) student_key, school_id, event_id, measured_on, screening_myopia,
           impairment_student, ucva_right, ucva_left, se_right, se_left, wears_glasses
    FROM archive.vision_current
    WHERE (%(school)s::text IS NULL OR school_id = %(school)s)
    ORDER BY student_key, measured_on DESC, ingested_at DESC
), g AS (
    SELECT DISTINCT ON (student_key) student_key, school_id, event_id, measured_on, height_cm, weight_kg, bmi,
           wst586, wst456_wasting, wst456_stunting
    FROM archive.growth_current
    WHERE (%(school)s::text IS NULL OR school_id = %(school)s)
    ORDER BY student_key, measured_on DESC, ingested_at DESC
), ft AS (
    SELECT DISTINCT ON (student_key) student_key, school_id, event_id, measured_on, height_cm, weight_kg, bmi,
           band, total, failed_items, grade, attempt
    FROM archive.fitness_current
    WHERE (%(school)s::text IS NULL OR school_id = %(school)s)
    ORDER BY student_key, measured_on DESC, ingested_at DESC
), found AS (
    SELECT 'vision' AS kind, student_key, school_id, event_id, measured_on,
           jsonb_build_object('screening_myopia', screening_myopia, 'impairment', impairment_student,
                              'ucva_right', ucva_right, 'ucva_left', ucva_left, 'se_right', se_right,
                              'se_left', se_left, 'wears_glasses', wears_glasses) AS result
    FROM v WHERE screening_myopia OR impairment_student IN ('mild', 'moderate', 'severe')
    UNION ALL
    SELECT 'growth', student_key, school_id, event_id, measured_on,
           jsonb_build_object('wst586', wst586, 'wasting', wst456_wasting, 'stunting', wst456_stunting,
                              'height_cm', height_cm, 'weight_kg', weight_kg, 'bmi', round(bmi::numeric, 1))
    FROM g WHERE wst586 IN ('overweight', 'obesity') OR wst456_wasting IN ('mild', 'moderate_severe')
                 OR wst456_stunting = 'stunting'
    UNION ALL
    SELECT 'fitness', student_key, school_id, event_id, measured_on,
           jsonb_build_object('band', band, 'total', total, 'failed_items', failed_items, 'grade', grade,
                              'attempt', attempt, 'height_cm', height_cm, 'weight_kg', weight_kg, 'bmi', bmi)
    FROM ft WHERE band = 'fail' OR cardinality(failed_items) > 0
)
SELECT f.kind, f.student_key, f.school_id, f.event_id, f.measured_on, f.result,
       coalesce(c.state, 'to_notify') AS state, c.next_check_on, c.updated_at, c.updated_by, c.note
FROM found f
LEFT JOIN archive.students s ON s.student_key = f.student_key
LEFT JOIN followup.cases c ON c.student_key = f.student_key AND c.screening_event_id = f.event_id
WHERE coalesce(s.status, 'active') = 'active'
  AND (%(kind)s::text IS NULL OR f.kind = %(kind)s)
"""


@dataclass(slots=True, kw_only=True)
class FollowUpRow:
    kind: str
    student_key: str
    school_id: str
    event_id: uuid.UUID
    measured_on: date
    result: dict[str, Any]
    findings: list[Finding]
    state: State
    next_check_on: date
    next_check_set: bool
    updated_at: Any
    updated_by: str | None
    note: str | None
    facts: StudentFacts | None = None
    overdue: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _findings(kind: str, result: dict[str, Any]) -> list[Finding]:
    if kind == "vision":
        return vision_findings(result.get("screening_myopia"), result.get("impairment"))
    if kind == "fitness":
        return fitness_findings(result.get("band"), result.get("failed_items"))
    return growth_findings(result.get("wst586"), result.get("wasting"), result.get("stunting"))


async def follow_up_rows(
    session: Session, today: date, *, school: str | None = None, kind: str | None = None,
    finding: str | None = None, state: str | None = None, grade: int | None = None, class_name: str | None = None,
    student_key: str | None = None,
) -> list[FollowUpRow]:
    """Students of the caller's schools whose latest screening needs action, with what was done.

    Ordered by grade, class and name, as a doctor works through a school; closed cases last.
    """
    rows = await session.fetch(_NEEDING_ACTION + (" AND f.student_key = %(student)s" if student_key else ""),
                               {"school": school, "kind": kind, "student": student_key})
    facts = await student_facts(session, [row["student_key"] for row in rows], today)
    result: list[FollowUpRow] = []
    for row in rows:
        found = _findings(row["kind"], row["result"])
        if finding and finding not in found:
            continue
        if state and row["state"] != state:
            continue
        known = facts.get(row["student_key"])
        if grade is not None and (known is None or known.grade != grade):
            continue
        if class_name and (known is None or known.class_name != class_name):
            continue
        next_check = row["next_check_on"] or default_next_check(found, row["measured_on"])
        result.append(FollowUpRow(
            kind=row["kind"], student_key=row["student_key"], school_id=row["school_id"], event_id=row["event_id"],
            measured_on=row["measured_on"], result=row["result"], findings=found, state=row["state"],
            next_check_on=next_check, next_check_set=row["next_check_on"] is not None,
            updated_at=row["updated_at"], updated_by=row["updated_by"], note=row["note"], facts=known,
            overdue=row["state"] != "closed" and next_check < today))

    def order(item: FollowUpRow) -> tuple[Any, ...]:
        f = item.facts
        return (item.state == "closed", item.school_id, f.grade if f and f.grade else 99,
                (f.class_name or "").zfill(4) if f else "", (f.name or "") if f else "", item.kind)

    return sorted(result, key=order)


class StepRefused(ValueError):
    """A step that cannot be recorded: unknown state, or a screening the caller cannot see."""


async def record_step(
    session: Session, *, student_key: str, event_id: uuid.UUID, state: str, next_check_on: date | None,
    note: str | None,
) -> None:
    """Record a follow-up step for one screening result the caller can see (row-level security)."""
    if state not in STATES:
        raise StepRefused(f"unknown state {state!r}")
    screening = None
    for kind, view in (("vision", "archive.vision_current"), ("growth", "archive.growth_current"),
                       ("fitness", "archive.fitness_current")):
        found = await session.fetch_one(
            f"SELECT school_id, measured_on FROM {view} WHERE student_key = %s AND event_id = %s",
            (student_key, event_id))
        if found:
            screening = (kind, found)
            break
    if screening is None:
        raise StepRefused("no such screening among your schools")
    kind, found = screening
    values = {"student": student_key, "event": event_id, "kind": kind, "school": found["school_id"],
              "measured": found["measured_on"], "state": state, "next": next_check_on, "note": note,
              "actor": session.user_id}
    await session.fetch(
        "INSERT INTO followup.cases (student_key, screening_event_id, kind, school_id, measured_on, state,"
        " next_check_on, note, updated_by) VALUES (%(student)s, %(event)s, %(kind)s, %(school)s, %(measured)s,"
        " %(state)s, %(next)s, %(note)s, %(actor)s)"
        " ON CONFLICT (student_key, screening_event_id) DO UPDATE SET state = EXCLUDED.state,"
        " next_check_on = coalesce(EXCLUDED.next_check_on, followup.cases.next_check_on),"
        " note = coalesce(EXCLUDED.note, followup.cases.note), updated_at = now(), updated_by = EXCLUDED.updated_by"
        " RETURNING state", values)
    await session.fetch(
        "INSERT INTO followup.steps (student_key, screening_event_id, school_id, state, next_check_on, note, actor)"
        " VALUES (%(student)s, %(event)s, %(school)s, %(state)s, %(next)s, %(note)s, %(actor)s) RETURNING id",
        values)
