"""Alert operations views publish no count from 1 to 9 to the health office (nor to Grafana), and
no withheld count can be recovered as a total minus its published parts; a school's own staff
keep exact counts."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from services.access.users import add_user
from services.platform.settings import Settings
from tests.integration.services.alerts.test_alerts_escalation import apply, candidates
from tests.integration.services.alerts.test_alerts_flow import rows_as

pytestmark = pytest.mark.integration

COUNTS = ("urgent", "high", "medium", "low", "unacknowledged", "escalated", "open_total")


def test_the_office_sees_no_small_count_and_cannot_recover_one(isolated: Settings) -> None:
    now = datetime.now(UTC)
    # SA01: 3 urgent self-harm alerts; SB01: 12 of them.
    for n in range(3):
        apply(isolated, candidates(n, [0] * 8 + [2], school="SA01"), now)
    for n in range(100, 112):
        apply(isolated, candidates(n, [0] * 8 + [2], school="SB01"), now)
    office = add_user(isolated, "office", "health_office")
    counsellor = add_user(isolated, "c-a", "counsellor", schools=["SA01"])
    columns = ", ".join(COUNTS)
    seen = {r[0]: dict(zip(COUNTS, r[1:], strict=True))
            for r in rows_as(isolated, office, f"SELECT school_id, {columns} FROM alerts.school_summary")}
    assert set(seen) == {"SA01", "SB01"}
    for row in seen.values():
        assert not any(value is not None and 1 <= value <= 9 for value in row.values()), row
        parts = [row[p] for p in ("urgent", "high", "medium", "low")]
        # The attacker's difference: a total minus its published parts never yields a withheld part.
        assert not (row["open_total"] is not None and parts.count(None) == 1), row
    # The office gets totals only (breakdowns are county-level, in alert_queue), and SB01's 12 is
    # withheld too: with SA01's 3 the only withheld total of their county, the county's total in
    # alert_queue minus SB01's would give SA01's 3 (migration 0046, test_alert_views_attack.py).
    assert seen["SB01"]["urgent"] is None and seen["SB01"]["open_total"] is None
    own = rows_as(isolated, counsellor, "SELECT school_id, urgent, open_total FROM alerts.school_summary")
    assert own == [("SA01", 3, 3)]
    with psycopg.connect(isolated.pg_dsn("grafana")) as conn:
        queue = conn.execute("SELECT alerts, overdue FROM reporting.alert_queue").fetchall()
    assert queue and not any(v is not None and 1 <= v <= 9 for row in queue for v in row), queue
