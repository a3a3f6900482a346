"""Before/after of migration 0112 (the incremental refresh writes only the observation rows that
change) on a database kept by `schoolhealth bench scale --keep` or `--phase seed`:

    PYTHONPATH=. python bench/incremental_ab.py schoolhealth_bench_scale300000 ROUNDS [full] > RESULT.json

Each round writes one more screening day of the benchmark (1 % of the events, through the archive
writer) and times the incremental refresh that takes it in, alternately with 0112's
`metrics.recompute_rollups` and with 0109's (recreated from its migration file for that round):
after/before/after/before... The other 0112 functions stay; 0109's text does not call them. The
database is left with 0112's function. With `full`, one full refresh with each version comes first
(0109, then 0112): both run the same SELECTs, 0112's through the inlined SQL functions. A day's
results differ from the day before's (the pattern turns with the day), so both versions have
classifications to change.
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


def function_text(migration: str) -> str:
    """The `CREATE ... FUNCTION metrics.recompute_rollups` statement of a migration file, as CREATE OR REPLACE."""
    text = (ROOT / "services/migrations" / migration).read_text(encoding="utf-8")
    start = text.index("FUNCTION metrics.recompute_rollups(p_years")
    start = text.rindex("CREATE", 0, start)
    end = text.index("$fn$;", start) + len("$fn$;")
    return "CREATE OR REPLACE " + text[start:end].removeprefix("CREATE OR REPLACE ").removeprefix("CREATE ")


VERSIONS = {"0112": function_text("0112_changed_observations_only.sql"),
            "0109": function_text("0109_incremental_by_student.sql")}


def install(settings: Settings, version: str) -> None:
    """Make `version`'s recompute_rollups the database's."""
    with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
        conn.execute(VERSIONS[version].encode())


def main() -> None:
    database, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4
    settings = load_settings().model_copy(update={"pg_database": database})
    migrate(settings)
    out: dict[str, Any] = {"benchmark": "incremental_ab", "database": database, "rounds": [],
                           "started_at": datetime.now(UTC).isoformat()}
    # Whatever is pending first (after a seed: the first, full, refresh), so that the rounds measure only their day.
    began = time.perf_counter()
    out["pending_refresh"] = _refresh_figures(refresh_incremental(settings), time.perf_counter() - began)
    try:
        if "full" in sys.argv[3:]:
            out["full_refresh"] = {}
            for version in ("0109", "0112"):
                install(settings, version)
                began = time.perf_counter()
                out["full_refresh"][version] = _refresh_figures(refresh_rollups(settings), time.perf_counter() - began)
                print(json.dumps({version: out["full_refresh"][version]}), file=sys.stderr)
        for n in range(rounds):
            version = "0112" if n % 2 == 0 else "0109"
            install(settings, version)
            out["rounds"].append({"recompute_rollups_of": version} | screening_day_refresh(settings))
            print(json.dumps(out["rounds"][-1]), file=sys.stderr)
    finally:
        install(settings, "0112")
    out["finished_at"] = datetime.now(UTC).isoformat()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
