"""Small builders of valid synthetic events for tests (no real person behind any of them)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from models.contracts import BmiScreening, FitnessTest, HealthRecord, PsychSurvey, VisionScreening

NOW = datetime(2025, 10, 15, 9, 0, tzinfo=UTC)


def key(n: int | str) -> str:
    return hashlib.sha256(f"synthetic-student-{n}".encode()).hexdigest()


def _base(n: int, school: str, family: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"test/{family}/{school}/{n}/{extra.get('_salt', '')}")),
        "schema": {"family": family, "version": 1},
        "occurred_at": NOW.isoformat(),
        "school_id": school,
        "student_key": key(n),
        "submitted_by": "importer",  # the operator's identity: every school (migration 0044)
    }


def bmi(n: int, school: str = "S001", *, height_cm: float | None = 140.0, weight_kg: float | None = 35.0,
        age_months: float = 130.0, **overrides: Any) -> BmiScreening:
    data = _base(n, school, "bmi-screening") | {
        "measured_on": (NOW.date() - timedelta(days=n % 30)).isoformat(), "sex": "male" if n % 2 else "female",
        "age_months": age_months, "height_cm": height_cm, "weight_kg": weight_kg, "screener": "screener-1",
    }
    return BmiScreening.model_validate_json(json.dumps(data | overrides))


def vision(n: int, school: str = "S001", *, ucva_right: float = 5.0, ucva_left: float = 4.8,
           se_right: float | None = -0.25, se_left: float | None = -1.25, **overrides: Any) -> VisionScreening:
    data = _base(n, school, "vision-screening") | {
        "measured_on": NOW.date().isoformat(), "sex": "female", "age_months": 126.0,
        "ucva_right": ucva_right, "ucva_left": ucva_left, "se_right": se_right, "se_left": se_left,
        "wears_glasses": False, "screener": "screener-2",
    }
    return VisionScreening.model_validate_json(json.dumps(data | overrides))


def survey(n: int, school: str = "S001", *, instrument: str = "phq-a", answers: list[int] | None = None,
           **overrides: Any) -> PsychSurvey:
    data = _base(n, school, "psych-survey") | {
        "answered_on": NOW.date().isoformat(), "sex": "male", "age_months": 160.0,
        "instrument": instrument, "instrument_version": "1",
        "answers": answers if answers is not None else [1, 1, 0, 1, 0, 0, 1, 0, 0],
    }
    return PsychSurvey.model_validate_json(json.dumps(data | overrides))


def record(n: int, school: str = "S001", *, action: str = "register", occurred_at: datetime = NOW,
           **overrides: Any) -> HealthRecord:
    data = _base(n, school, "health-record") | {
        "occurred_at": occurred_at.isoformat(),
        "action": action, "effective_on": occurred_at.date().isoformat(), "county_id": "C01", "sex": "female",
        "birth_date": date(2014, 3, 1).isoformat(), "grade": 5, "boarding": False, "left_behind": False,
        "disability": False,
    }
    data["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"test/record/{school}/{n}/{action}/{occurred_at}"))
    return HealthRecord.model_validate_json(json.dumps(data | overrides))


def fitness(n: int, school: str = "S001", *, sex: str = "male", grade: int = 8, **overrides: Any) -> FitnessTest:
    """A complete grade-8 test by default (boys: pull-ups and 1000 m; girls: sit-ups and 800 m)."""
    data = _base(n, school, "fitness-test") | {
        "measured_on": NOW.date().isoformat(), "sex": sex, "grade": grade, "screener": "pe-teacher-1",
        "height_cm": 160.0, "weight_kg": 50.0, "vital_capacity_ml": 3000, "run_50m_s": 8.0,
        "sit_and_reach_cm": 10.0, "standing_long_jump_cm": 210,
    }
    data |= ({"pull_ups_count": 12, "run_1000m_s": 226.0} if sex == "male"
             else {"sit_ups_count": 40, "run_800m_s": 220.0})
    return FitnessTest.model_validate_json(json.dumps(data | overrides))
