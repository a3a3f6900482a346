"""The attacker of the alert operations views: the health office reads every school's row of
`alerts.school_summary` (GET /summary) and every cell of Grafana's `reporting.alert_queue`, then
tries to recover each withheld count from the published ones by linear algebra over both views at
once (differences along every breakdown, across the views, and any combination of them). It never
can, and no published count is from 1 to 9 (migration 0046)."""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest

from services.access.users import add_user
from services.platform.settings import Settings
from tests.integration.services.alerts.test_alerts_flow import rows_as

pytestmark = pytest.mark.integration

TEAMS = ("counselling", "school_doctor")
PRIORITIES = ("urgent", "high", "medium", "low")
STATES = ("open", "acknowledged", "in_progress")
LEVELS = (0, 1, 2)
CELLS = list(itertools.product(TEAMS, PRIORITIES, STATES, LEVELS))
# The columns of alerts.school_summary after school and county: which fine cells each one counts.
SUMMARY_MEASURES: dict[str, Callable[[str, str, str, int], bool]] = {
    "open_total": lambda team, priority, state, level: True,
    "urgent": lambda team, priority, state, level: priority == "urgent",
    "high": lambda team, priority, state, level: priority == "high",
    "medium": lambda team, priority, state, level: priority == "medium",
    "low": lambda team, priority, state, level: priority == "low",
    "unacknowledged": lambda team, priority, state, level: state == "open",
    "escalated": lambda team, priority, state, level: level > 0,
}


def _province(settings: Settings, seed: int) -> Counter[tuple[str, str, str, str, str, int]]:
    """Open alerts in 4 counties of 1 to 5 schools each: some schools with a handful, some with dozens,
    most alerts of a few common kinds (so many cells are large and the small ones stand out)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows = []
    for county in range(4):
        common = rng.sample(CELLS, 2)
        for school in range(rng.randint(1, 5)):
            for _ in range(rng.choice([2, 3, 5, 12, 25, 40, 60])):
                team, priority, state, level = common[rng.random() < 0.4] if rng.random() < 0.85 else rng.choice(CELLS)
                event = uuid.uuid4()
                rows.append((uuid.uuid4(), f"{rng.getrandbits(256):064x}", f"S{seed}{county}{school}",
                             f"C{seed}{county}", team, priority, state, level, now, now + timedelta(hours=1),
                             event))
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        conn.cursor().executemany(
            "INSERT INTO alerts.alerts (alert_id, student_key, school_id, county_id, concern, team, priority,"
            " rule_id, rule_version, state, escalation_level, opened_at, ack_deadline, escalate_at,"
            " acknowledged_at, first_event_id, last_event_id, observed_on, submitted_at, updated_at)"
            " VALUES (%s, %s, %s, %s, 'self_harm', %s, %s, 'r', 1, %s, %s, %s, %s, %s,"
            " CASE WHEN %s = 'open' THEN NULL ELSE %s END, %s, %s, CURRENT_DATE, %s, %s)",
            [(a, k, s, c, t, p, st, lv, o, d, d, st, o, e, e, o, o)
             for a, k, s, c, t, p, st, lv, o, d, e in rows])
    return Counter((s, c, t, p, st, lv) for _, _, s, c, t, p, st, lv, *_ in rows)


def _vector(index: Mapping[tuple[Any, ...], int], keys: Sequence[tuple[Any, ...]]) -> np.ndarray:
    v = np.zeros(len(index))
    for key in keys:
        v[index[key]] = 1.0
    return v


def _determined(equations: list[np.ndarray], target: np.ndarray) -> bool:
    """Whether `target`·x is fixed by the published equations (target in their row space)."""
    if not equations:
        return False
    matrix = np.vstack(equations)
    _, singular, vt = np.linalg.svd(matrix, full_matrices=False)
    basis = vt[singular > 1e-9 * max(singular.max(), 1.0)]
    residual = target - basis.T @ (basis @ target)
    return bool(np.linalg.norm(residual) < 1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_no_withheld_alert_count_is_recoverable_across_the_views(isolated: Settings, seed: int) -> None:
    truth = _province(isolated, seed)
    office = add_user(isolated, "office", "health_office")
    summary = rows_as(isolated, office, "SELECT school_id, county_id, open_total, urgent, high, medium, low,"
                                        " unacknowledged, escalated FROM alerts.school_summary")
    with psycopg.connect(isolated.pg_dsn("grafana")) as conn:
        queue = conn.execute("SELECT county_id, team, priority, state, escalation_level, alerts"
                             " FROM reporting.alert_queue").fetchall()

    # Nothing small is published.
    published_counts = [row[2] for row in summary] + [row[5] for row in queue]
    assert not [v for v in published_counts if v is not None and 1 <= v <= 9]

    schools_of: dict[str, list[str]] = defaultdict(list)
    for school, county, *_ in summary:
        schools_of[county].append(school)
    withheld_total = 0
    for county, schools in schools_of.items():
        # The attacker's unknowns: every fine cell (school, team, priority, state, level) of the county.
        index = {(school, *cell): i for i, (school, cell) in enumerate(itertools.product(schools, CELLS))}
        equations: list[np.ndarray] = []
        targets: list[tuple[str, np.ndarray]] = []

        for school, row_county, *values in summary:
            if row_county != county:
                continue
            for measure, value in zip(SUMMARY_MEASURES, values, strict=True):
                keys = [(school, *cell) for cell in CELLS if SUMMARY_MEASURES[measure](*cell)]
                v = _vector(index, keys)
                true = sum(truth[(school, county, *cell)] for _, *cell in keys)
                # Withheld: a suppressed total; a breakdown the office is not given, if it is small.
                if value is None and (measure == "open_total" or 1 <= true <= 9):
                    targets.append((f"school {school} {measure}", v))
                elif value is None:
                    continue
                else:
                    equations.append(v)
        listed = {}
        for row_county, team, priority, state, level, alerts in queue:
            if row_county == county:
                listed[(team, priority, state, level)] = alerts
        for cell in CELLS:
            v = _vector(index, [(school, *cell) for school in schools])
            if cell not in listed:
                equations.append(v)  # a combination not listed: known to be 0
            elif listed[cell] is None:
                targets.append((f"queue cell {county} {cell}", v))
            else:
                equations.append(v)
        recovered = [name for name, v in targets if _determined(equations, v)]
        assert recovered == [], f"recoverable by differences: {recovered}"
        withheld_total += len(targets)
    assert withheld_total > 0, "the synthetic province must have withheld counts"
    # The office gets each school's total only: the breakdowns are county-level, in alert_queue.
    assert all(value is None for row in summary for value in row[3:])
