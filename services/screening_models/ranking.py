"""Students to review first: the screening models' risk scores, for the people who act on them
(the API's `GET /risk` and the web pages' review-first list).

A counsellor gets the depression model's ranking for the schools they serve, a school doctor the
myopia-onset and overweight rankings; row-level security on `ml.risk_scores` enforces it (a model
the caller's role does not act on answers with an empty list). Reading depression scores is a
read of psychological data and is audited. The scores prioritise review; they are not diagnoses.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from models.alerts import OPEN_STATES_SQL
from services.access.session import Session
from services.students.facts import student_facts

RISK_ROLES = ("counsellor", "school_doctor", "county_officer", "admin")
MODEL_TEAMS = {"depression": "counselling", "myopia_onset": "school_doctor", "overweight": "school_doctor"}
# The team each role acts for; county officers and admins see every team's models.
_ROLE_TEAMS = {"counsellor": "counselling", "school_doctor": "school_doctor"}


def models_for(role: str) -> list[str]:
    """The models whose rankings a role acts on, in a fixed order (row-level security still decides rows)."""
    team = _ROLE_TEAMS.get(role)
    return [name for name, model_team in MODEL_TEAMS.items() if team is None or model_team == team]


async def ranked_rows(session: Session, model: str, *, today: date, school_id: str | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
    """The ranking the caller may see (row-level security), highest risk first, its reads audited.

    Row-level security decides the rows. Its policy filters every score of the province one by one
    (a sequential scan, growing with the province), so the query also names the schools that
    policy can let through (those the caller serves or leads): the same rows, found through the
    (school, model, score) index. An admin sees every school: no such list.
    """
    schools = await session.policy_schools()
    # The names and open alerts of the `limit` highest only, not of every score before the LIMIT.
    rows = await session.fetch(
        "SELECT r.student_key, r.school_id, r.model, r.version, r.score, r.scored_at, ro.name,"
        " (SELECT count(*) FROM alerts.alerts a WHERE a.student_key = r.student_key AND a.team = %(team)s"
        f"   AND a.state IN ({OPEN_STATES_SQL}))::int AS open_alerts"
        " FROM (SELECT student_key, school_id, model, version, score, scored_at FROM ml.risk_scores"
        "       WHERE model = %(model)s AND (%(school)s::text IS NULL OR school_id = %(school)s)"
        "         AND (%(schools)s::text[] IS NULL OR school_id = ANY(%(schools)s::text[]))"
        "       ORDER BY score DESC, student_key LIMIT %(limit)s) r"
        " LEFT JOIN roster.students ro ON ro.student_key = r.student_key"
        " ORDER BY r.score DESC, r.student_key",
        {"model": model, "team": MODEL_TEAMS[model], "school": school_id, "schools": schools, "limit": limit})
    if model == "depression":
        await session.audit_psych_reads([(row["student_key"], row["school_id"], None) for row in rows], "risk_scores")
    facts = await student_facts(session, [row["student_key"] for row in rows], today)
    for position, row in enumerate(rows, start=1):
        row["rank"] = position
        known = facts.get(row["student_key"])
        row["grade"] = known.grade if known else None
        row["class_name"] = known.class_name if known else None
        row["school_name"] = known.school_name if known else None
    return rows
