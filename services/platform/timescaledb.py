"""TimescaleDB's jobs on demand, where the project database has the extension (migration 0025).

Background jobs fail on some PostgreSQL minors (Debian's 15.20: "cannot drop portal"), so what a
policy would do on its schedule can also be done now, as the owner: here, putting the closed school
years of the archive into the columnstore.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from services.platform.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnstoreResult:
    chunks_in_columnstore: int
    chunks: int


def columnstore_closed_school_years(settings: Settings) -> ColumnstoreResult | None:
    """Run the closed-school-year columnstore job now; None where the database has no such job
    (plain PostgreSQL, or TimescaleDB without its Community licence)."""
    with psycopg.connect(settings.pg_dsn("admin"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
            return None
        job = conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_schema = 'archive'"
                           " AND proc_name = 'columnstore_closed_school_years'").fetchone()
        if job is None:
            return None
        conn.execute("CALL run_job(%s)", (job[0],))
        row = conn.execute("SELECT count(*) FILTER (WHERE is_compressed), count(*)"
                           " FROM timescaledb_information.chunks WHERE hypertable_schema = 'archive'").fetchone()
    assert row is not None
    return ColumnstoreResult(chunks_in_columnstore=int(row[0]), chunks=int(row[1]))
