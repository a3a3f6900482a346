"""Before/after of issue 18's read changes on a database kept by `schoolhealth bench scale --keep`.

    PYTHONPATH=. python bench/scale_reads_ab.py schoolhealth_bench_scale100000ts > RESULT.json

The alert panels' SQL against migration 0046's view definitions (recreated in a schema `former`)
and against the current views (0105); every panel before and after 0108's indexes (when the database
does not have them yet); `schoolhealth student` with and without 0107's prefix indexes and, on
TimescaleDB, without 0106's student-school list (its chunk list emptied, then restored). The
database is left as it was found, apart from 0108 applied.
"""

import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from services.cli.output import load_settings
from services.devtools.bench_scale import _panel_latencies, _student_lookups, expand_macros
from services.platform.migrate import migrate
from services.reporting.dashboards import JSON_DIR

ROOT = Path(__file__).resolve().parents[1]
db = sys.argv[1]
s = load_settings().model_copy(update={"pg_database": db})
out: dict[str, Any] = {}
with psycopg.connect(s.pg_dsn("admin"), autocommit=True) as conn:
    conn.execute("DROP SCHEMA IF EXISTS former CASCADE")
    conn.execute("CREATE SCHEMA former")
    text = (ROOT / "services/migrations/0046_alert_views_across.sql").read_text()
    for st in [x for x in text.split(";\n") if "CREATE OR REPLACE VIEW reporting.alert_" in x]:
        conn.execute(re.sub(r"CREATE OR REPLACE VIEW reporting\.", "CREATE VIEW former.", st).encode())
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA former TO {}").format(sql.Identifier(s.pg_grafana_user)))
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA former TO {}").format(sql.Identifier(s.pg_grafana_user)))
data = json.loads((JSON_DIR / "schoolhealth-alerts.json").read_text())
def alerts(schema: str, runs: int = 15) -> dict[str, dict[str, float]]:
    res: dict[str, dict[str, float]] = {}
    with psycopg.connect(s.pg_dsn("grafana"), autocommit=True) as conn:
        for panel in data["panels"]:
            q = expand_macros(panel["targets"][0]["rawSql"], {}, "2022-01-01T00:00:00Z", "2030-01-01T00:00:00Z")
            q = q.replace("reporting.alert_", f"{schema}.alert_")
            spent: list[float] = []
            for _ in range(runs):
                began = time.perf_counter()
                conn.execute(q).fetchall()
                spent.append(1000 * (time.perf_counter() - began))
            spent.sort()
            res[panel["title"]] = {"p50_ms": round(statistics.median(spent), 2),
                                   "p95_ms": round(spent[round(0.95 * (len(spent) - 1))], 2)}
    return res
out["alert_panels_former_0046"] = alerts("former")
out["alert_panels_0105"] = alerts("reporting")
def worst(found: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {k: v["p95_ms"] for k, v in sorted(found.items(), key=lambda kv: -kv[1]["p95_ms"])[:6]}
has0108 = False
with psycopg.connect(s.pg_dsn("admin")) as conn:
    has0108 = conn.execute(
        "SELECT 1 FROM pg_indexes WHERE indexname = 'live_indicators_metric_level'").fetchone() is not None
if not has0108:
    out["all_panels_before_0108_worst"] = worst(_panel_latencies(s))
    migrate(s)
out["all_panels_after_0108_worst"] = worst(_panel_latencies(s))
out["student_lookup_with_prefix_index"] = _student_lookups(s)
with psycopg.connect(s.pg_dsn("admin"), autocommit=True) as conn:
    conn.execute("DROP INDEX archive.students_key_prefix")
    conn.execute("DROP INDEX roster.roster_students_key_prefix")
try:
    out["student_lookup_without_prefix_index"] = _student_lookups(s)
finally:
    with psycopg.connect(s.pg_dsn("admin"), autocommit=True) as conn:
        conn.execute("CREATE INDEX students_key_prefix ON archive.students (student_key text_pattern_ops)")
        conn.execute("CREATE INDEX roster_students_key_prefix ON roster.students (student_key text_pattern_ops)")
        conn.execute("DROP SCHEMA former CASCADE")
with psycopg.connect(s.pg_dsn("admin"), autocommit=True) as conn:
    timescale = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None
    if timescale:
        conn.execute("CREATE TABLE public.saved_chunks AS TABLE archive.columnstore_chunks")
        conn.execute("DELETE FROM archive.columnstore_chunks")
if timescale:
    try:
        out["student_lookup_without_0106_narrowing"] = _student_lookups(s)
    finally:
        with psycopg.connect(s.pg_dsn("admin"), autocommit=True) as conn:
            conn.execute("INSERT INTO archive.columnstore_chunks SELECT * FROM public.saved_chunks")
            conn.execute("DROP TABLE public.saved_chunks")
    out["student_lookup_with_0106_again"] = _student_lookups(s)
print(json.dumps(out, indent=1, ensure_ascii=False))
