"""The rollup tables are unlogged (migration 0111): a PostgreSQL crash empties them. The next
refresh, though asked for an incremental one (the workers' timer), must find that out and rebuild
them whole, to exactly what they held; the indicators users see must survive the crash."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from models.synthetic import ProvinceSpec
from services.devtools.seed import import_directory
from services.devtools.synthetic_files import write_province
from services.platform.settings import Settings
from services.reporting.metrics import refresh_incremental, refresh_rollups
from tests import factories
from tests.faults.clusters import private_cluster
from tests.integration.archive_writes import write_classified

pytestmark = pytest.mark.faults

ROLLUPS = ("student_years", "indicator_cells", "fitness_observations", "fitness_cells",
           "digit_preference",
           "digit_preference_shares")


def _rollups(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        return {name: sorted(conn.execute(f"SELECT * FROM metrics.{name}").fetchall(), key=repr)
                for name in ROLLUPS}


def _live(settings: Settings) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        return sorted(conn.execute(
            "SELECT school_year, metric_id, level, area_id, breakdown, category, denominator, numerator,"
            " suppressed FROM metrics.live_indicators").fetchall(), key=repr)


def _crash(data: Path) -> None:
    """SIGKILL the postmaster and every process it started, as a power cut would: no shutdown
    checkpoint, so the next start runs crash recovery, which resets every unlogged table."""
    postmaster = int((data / "postmaster.pid").read_text().splitlines()[0])
    found = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False)
    doomed = [postmaster, *(int(pid) for pid in found.stdout.split())]
    for pid in doomed:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in doomed):
        assert time.monotonic() < deadline, "the killed cluster's processes did not exit"
        time.sleep(0.1)


def test_a_crash_empties_the_unlogged_rollups_and_the_next_refresh_rebuilds_them(
        stack: Settings, unique: str, tmp_path: Path) -> None:
    base = stack.model_copy(update={"pg_database": f"schoolhealth_crash_{unique}"})
    with private_cluster(base, topics=False) as (settings, cluster):
        write_province(ProvinceSpec(students=300, seed=111, school_years=(2024, 2025), counties=2), tmp_path)
        import_directory(settings, tmp_path)
        assert refresh_rollups(settings).mode == "full"
        # A day of screenings, refreshed incrementally on the unlogged tables.
        with psycopg.connect(settings.pg_dsn("admin")) as conn:
            pupils = conn.execute("SELECT student_key, school_id FROM metrics.student_years"
                                  " WHERE school_year = 2025 ORDER BY student_key LIMIT 40").fetchall()
        write_classified(settings, [
            factories.vision(900_000 + i, school, student_key=student, measured_on="2026-03-02",
                             occurred_at="2026-03-02T09:00:00+08:00", ucva_left=4.6)
            for i, (student, school) in enumerate(pupils)])
        assert refresh_incremental(settings).mode == "incremental"
        rollups, live = _rollups(settings), _live(settings)
        assert rollups["student_years"] and rollups["indicator_cells"] and live

        _crash(cluster.data)
        cluster.up()
        # The premise: recovery emptied the unlogged tables, and the sentinel with them; what users
        # see (live indicators, logged) is still there.
        assert all(not rows for rows in _rollups(settings).values())
        with psycopg.connect(settings.pg_dsn("admin")) as conn:
            assert conn.execute("SELECT count(*) FROM metrics.rollups_intact").fetchone() == (0,)
        assert _live(settings) == live

        rebuilt = refresh_incremental(settings)
        assert rebuilt.mode == "full", "an incremental refresh over emptied rollups would compute from nothing"
        assert _rollups(settings) == rollups
        assert _live(settings) == live
        # Intact again: the next round is incremental.
        assert refresh_incremental(settings).mode == "incremental"
