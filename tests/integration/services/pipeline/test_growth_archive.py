"""Partial, oedematous and WHO-flagged growth screenings through the archive and the metric views.

Real PostgreSQL: the events are classified by the worker's own pipeline function and written by
the archive writer; the rows, the prevalence observations and the data-quality rollups are read back.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from models.pipeline import ProcessedMessages, classify_event
from services.pipeline.archive_writer import write_once
from services.platform.settings import Settings
from services.students.archive_reader import print_student
from tests import factories
from tests.integration.rollups import OBSERVATIONS

pytestmark = pytest.mark.integration

DAY = factories.NOW.date()


def screenings() -> dict[str, Any]:
    later = (DAY - timedelta(days=1)).isoformat()
    earlier = (DAY - timedelta(days=20)).isoformat()
    return {
        # 60.8 kg at 160.0 cm is exactly 23.75: shown and compared as 23.8, WS/T 586 overweight at 17.
        "exact": factories.bmi(1, height_cm=160.0, weight_kg=60.8, age_months=17 * 12 + 1.0,
                               sex="female", age_completed_months=205),
        "height_only": factories.bmi(2, height_cm=128.0, weight_kg=None, age_months=100.0),
        "weight_only": factories.bmi(3, height_cm=None, weight_kg=26.0, age_months=100.0),
        "oedema": factories.bmi(4, height_cm=125.0, weight_kg=24.0, age_months=100.0, oedema=True),
        # BMI-for-age far beyond +5 SD: WHO's flag, and no category.
        "flagged": factories.bmi(5, height_cm=140.0, weight_kg=120.0, age_months=130.0),
        # One student: a full screening, then a later height-only one in the same school year.
        "full_then": factories.bmi(6, height_cm=140.0, weight_kg=45.0, age_months=130.0, measured_on=earlier),
        "height_later": factories.bmi(6, height_cm=141.0, weight_kg=None, age_months=130.7, measured_on=later,
                                      event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "test/issue-15/later"))),
    }


def _write(settings: Settings, events: dict[str, Any]) -> None:
    batch = ProcessedMessages()
    for event in events.values():
        classify_event(event, batch)
    assert not batch.rejected and len(batch.growth) == len(events)

    write_once(settings.pg_dsn("app"), batch)


def _enrol(settings: Settings, numbers: set[int]) -> None:
    """Health records enrolling the students in grade 5 before the school year's census day (the
    rollups count the student-years of the census only)."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        conn.execute("INSERT INTO archive.schools VALUES ('S001', '测试学校', 'C01', '测试县', 'urban', 'primary',"
                     " false, 300, 1) ON CONFLICT DO NOTHING")
    batch = ProcessedMessages()
    for n in numbers:
        classify_event(factories.record(n, occurred_at=datetime(2025, 9, 1, 1, 0, tzinfo=UTC)), batch)
    assert not batch.rejected
    write_once(settings.pg_dsn("app"), batch)


def test_partial_oedema_and_flagged_screenings_are_stored_and_counted_where_they_belong(isolated: Settings) -> None:
    events = screenings()
    _write(isolated, events)
    _enrol(isolated, set(range(1, 7)))
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        rows = {row[0]: row for row in conn.execute(
            "SELECT event_id, height_cm, weight_kg, bmi, bmi_rounded, bmi_for_age_z, height_for_age_z,"
            " weight_for_age_z, who_category, who_weight_for_age, wst586, wst456_stunting, oedema, flags,"
            " age_completed_months FROM archive.growth_current").fetchall()}
        assert len(rows) == len(events)

        def stored(name: str) -> tuple[Any, ...]:
            return rows[events[name].event_id]

        exact = stored("exact")
        assert exact[4] == Decimal("23.8") and exact[10] == "overweight" and exact[14] == 205
        height_only = stored("height_only")
        assert height_only[2] is None and height_only[3] is None and height_only[4] is None
        assert height_only[6] is not None and height_only[11] in ("normal", "stunting")
        assert height_only[8] == height_only[10] == "not_applicable"
        weight_only = stored("weight_only")
        assert weight_only[1] is None and weight_only[7] is not None and weight_only[9] == "not_underweight"
        oedema = stored("oedema")
        assert oedema[12] is True and oedema[5] is None and oedema[7] is None
        assert (oedema[8], oedema[9], oedema[10]) == ("severe_thinness", "severe_underweight", "not_applicable")
        assert oedema[6] is not None
        flagged = stored("flagged")
        assert flagged[13] == ["implausible_bmi_for_age_z"] and flagged[5] > 5
        assert flagged[8] == flagged[10] == "not_applicable"

        conn.execute("SELECT metrics.refresh_rollups()")
        observed = {(key, metric): positive for key, metric, positive in conn.execute(
            f"SELECT student_key, metric_id, positive FROM ({OBSERVATIONS}) o"
            " WHERE metric_id IN ('overweight_wst586', 'obesity_wst586', 'obesity_who', 'wasting')").fetchall()}
        # Flagged, height-only and weight-only screenings are in no prevalence; oedema counts in
        # WHO's as severe thinness (below -3 SD), and in no WS/T one ...
        for name in ("flagged", "height_only", "weight_only"):
            assert not any(key == events[name].student_key for key, _ in observed), name
        oedema_key = events["oedema"].student_key
        assert {metric for key, metric in observed if key == oedema_key} == {"obesity_who"}
        assert observed[oedema_key, "obesity_who"] is False
        # ... and a later height-only screening does not hide the year's full one.
        assert (events["full_then"].student_key, "overweight_wst586") in observed
        assert observed[events["exact"].student_key, "overweight_wst586"] is True

        # The flagged measurement counts in the data-quality rollup instead.
        flagged_today = conn.execute(
            "SELECT sum(flagged)::int, sum(measurements)::int FROM reporting.dq_measurements"
            " WHERE kind = 'growth'").fetchone()
        assert flagged_today == (1, len(events))
        digits = conn.execute("SELECT quantity, count(*) FILTER (WHERE last_digit IS NULL), sum(measurements)"
                              " FROM metrics.digit_preference GROUP BY quantity ORDER BY quantity").fetchall()
        height_count = sum(1 for e in events.values() if e.height_cm is not None)
        weight_count = sum(1 for e in events.values() if e.weight_kg is not None)
        assert digits == [("height_cm", 0, height_count), ("weight_kg", 0, weight_count)]

    lines: list[str] = []
    print_student(isolated, events["height_only"].student_key, out=lines.append)
    text = "\n".join(lines)
    assert "128.0 cm, - kg, BMI -" in text
    lines.clear()
    print_student(isolated, events["oedema"].student_key, out=lines.append)
    assert "bilateral pitting oedema" in "\n".join(lines)
