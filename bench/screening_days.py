"""Screening days refreshed one by one, on a database kept by `schoolhealth bench scale --keep` or
`--phase seed`:

    PYTHONPATH=. python bench/screening_days.py DATABASE ROUNDS [full] > RESULT.json

The database is migrated and what is pending is refreshed first. With `full`, a timed full refresh
follows. Then each round writes one more screening day of the benchmark (1 % of the events, through
the archive writer) and times the incremental refresh that takes it in. A day's results differ from
the day before's (the pattern turns with the day), so each day has classifications to change.
Before migration 0117 this compared versions of the student mode (`incremental_ab.py`, last at
eac1697, whose results are in results/incremental_ab_*.json).
"""

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from services.cli.output import load_settings
from services.devtools.bench_scale import _refresh_figures, screening_day_refresh
from services.platform.migrate import migrate
from services.reporting.metrics import refresh_incremental, refresh_rollups


def main() -> None:
    database, rounds = sys.argv[1], int(sys.argv[2])
    settings = load_settings().model_copy(update={"pg_database": database})
    migrate(settings)
    out: dict[str, Any] = {"benchmark": "screening_days", "database": database, "rounds": [],
                           "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    began = time.perf_counter()
    pending = refresh_incremental(settings)
    out["pending_refresh"] = _refresh_figures(pending, time.perf_counter() - began) | {"mode": pending.mode}
    if "full" in sys.argv[3:]:
        began = time.perf_counter()
        out["full_refresh"] = _refresh_figures(refresh_rollups(settings), time.perf_counter() - began)
    for round_ in range(1, rounds + 1):
        out["rounds"].append({"round": round_} | screening_day_refresh(settings))
        print(json.dumps(out["rounds"][-1]), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
