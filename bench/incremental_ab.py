"""Before/after of the incremental refresh's student mode on a database kept by
`schoolhealth bench scale --keep` or `--phase seed`:

    PYTHONPATH=. python bench/incremental_ab.py DATABASE ROUNDS NEW OLD [full] > RESULT.json

NEW and OLD name versions of the student mode: 0114 (the marked pairs' rows read through their
indexes, metrics.recompute_students), 0113 (0112's: only the observation rows that change are
written, each statement reading its whole school year) or 0109 (the pairs' rows deleted and written
again). Each round writes one more screening day of the benchmark (1 % of the events, through the
archive writer) and times the incremental refresh that takes it in, alternately with NEW's functions
and with OLD's (recreated from their migration files for that round): new/old/new/old... The
database is left with the newest version (0114). With `full`, one full refresh with each version
comes first (OLD, then NEW). A day's results differ from the day before's (the pattern turns with
the day), so both versions have classifications to change.
"""

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from services.cli.output import load_settings
from services.devtools.bench_scale import _refresh_figures, screening_day_refresh
from services.platform.migrate import migrate
from services.platform.settings import Settings
from services.reporting.metrics import refresh_incremental, refresh_rollups

ROOT = Path(__file__).resolve().parents[1]


def function_text(migration: str, signature: str) -> str:
    """The `CREATE ... FUNCTION <signature>` statement of a migration file, as CREATE OR REPLACE."""
    text = (ROOT / "services/migrations" / migration).read_text(encoding="utf-8")
    start = text.index(f"FUNCTION {signature}")
    start = text.rindex("CREATE", 0, start)
    end = text.index("$fn$;", start) + len("$fn$;")
    return "CREATE OR REPLACE " + text[start:end].removeprefix("CREATE OR REPLACE ").removeprefix("CREATE ")


_0109 = "0109_incremental_by_student.sql"
_0112 = "0112_changed_observations_only.sql"
_0114 = "0114_student_mode_probes_by_student.sql"
_0116 = "0116_full_refresh_builds_the_observation_index_once.sql"
#: The functions that make each version's student mode, in the order they are created. 0112's
#: write_changed_rows(regclass, integer[]) is an overload of 0114's and stays beside it.
VERSIONS = {
    # 0116's recompute_rollups: 0114's, whose full mode builds the observations' index once.
    "0114": [function_text(_0116, "metrics.recompute_rollups(p_years"),
             function_text(_0114, "metrics.recompute_marked_students(")],
    "0113": [function_text(_0112, "metrics.write_changed_rows(p_target regclass, p_years"),
             function_text(_0112, "metrics.recompute_rollups(p_years"),
             function_text(_0109, "metrics.recompute_marked_students(")],
    "0109": [function_text(_0109, "metrics.recompute_rollups(p_years"),
             function_text(_0109, "metrics.recompute_marked_students(")],
}
NEWEST = "0114"


def install(settings: Settings, version: str) -> None:
    """Make `version`'s student mode the database's."""
    with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
        for statement in VERSIONS[version]:
            conn.execute(statement.encode())


def main() -> None:
    database, rounds, new, old = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if new not in VERSIONS or old not in VERSIONS:
        raise SystemExit(f"versions are {', '.join(VERSIONS)}, not {new} and {old}")
    settings = load_settings().model_copy(update={"pg_database": database})
    migrate(settings)
    out: dict[str, Any] = {"benchmark": "incremental_ab", "database": database, "new": new, "old": old, "rounds": [],
                           "started_at": datetime.now(UTC).isoformat()}
    # Whatever is pending first (after a seed: the first, full, refresh), so that the rounds measure only their day.
    began = time.perf_counter()
    out["pending_refresh"] = _refresh_figures(refresh_incremental(settings), time.perf_counter() - began)
    try:
        if "full" in sys.argv[5:]:
            out["full_refresh"] = {}
            for version in (old, new):
                install(settings, version)
                began = time.perf_counter()
                out["full_refresh"][version] = _refresh_figures(refresh_rollups(settings), time.perf_counter() - began)
                print(json.dumps({version: out["full_refresh"][version]}), file=sys.stderr)
        for n in range(rounds):
            version = new if n % 2 == 0 else old
            install(settings, version)
            out["rounds"].append({"recompute_rollups_of": version} | screening_day_refresh(settings))
            print(json.dumps(out["rounds"][-1]), file=sys.stderr)
    finally:
        install(settings, NEWEST)
    out["finished_at"] = datetime.now(UTC).isoformat()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
