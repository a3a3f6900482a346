"""Schema migrations: numbered SQL files in `services/migrations/`, applied once each, in order.

They run as the owner role, each in its own transaction, under an advisory lock so that several
workers starting together apply them once. A file that changed after it was applied is an error:
migrations are append-only, with the exceptions in `_REVISED` below.

After the pending migrations, every run calls `archive.apply_timescaledb()` (migration 0025): it
does nothing on plain PostgreSQL and converts whatever is not converted yet where TimescaleDB is
installed, so a database whose cluster gains the extension later gets its hypertables, columnstore
and continuous aggregates at the next `schoolhealth migrate`, `stack up` or worker start.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from importlib import resources

import psycopg

from services.platform.settings import Settings

log = logging.getLogger(__name__)

_LOCK_ID = 0x5C400_1  # arbitrary, constant: "schoolhealth migrations"


# Earlier texts of migrations that issue 13 revised, accepted as applied. On plain PostgreSQL each
# made the same schema as its revision: the parts removed only acted where TimescaleDB was
# installed, and there the old 0001 failed (so no database holds its TimescaleDB result).
_REVISED: dict[str, frozenset[str]] = {
    "0001_archive": frozenset({"a58306b89488feae340ef04b64dfaf40c9a54a9fcce704f8a25dec9f74203091"}),
    "0020_metrics": frozenset({"c8d066f4f476dfcbe49ca8859ba7276e8a77b7ea8d006bcd2a34b2edc05e6734"}),
}


class MigrationError(RuntimeError):
    """A migration failed or an applied migration was edited."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    folder = resources.files("services.migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(version=f.name.removesuffix(".sql"), sql=f.read_text()) for f in files]


def _set_roles(conn: psycopg.Connection, settings: Settings) -> None:
    for name, value in (
        ("schoolhealth.app_role", settings.pg_app_user),
        ("schoolhealth.grafana_role", settings.pg_grafana_user),
        ("schoolhealth.owner_role", settings.pg_admin_user),
    ):
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def _apply_timescaledb(conn: psycopg.Connection, settings: Settings) -> None:
    exists = conn.execute("SELECT to_regprocedure('archive.apply_timescaledb()') IS NOT NULL").fetchone()
    if not (exists and exists[0]):
        return
    try:
        with conn.transaction():
            _set_roles(conn, settings)
            conn.execute("SELECT archive.apply_timescaledb()")
    except psycopg.Error as error:
        raise MigrationError(f"converting the archive to TimescaleDB failed: {error}") from error


def migrate(settings: Settings, dsn: str | None = None) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[str] = []
    with psycopg.connect(dsn or settings.pg_dsn("admin"), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS public.schema_migrations ("
                " version text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = conn.execute("SELECT version, checksum FROM public.schema_migrations").fetchall()
            done: dict[str, str] = dict(rows)
            for migration in available_migrations():
                if migration.version in done:
                    if done[migration.version] != migration.checksum and (
                            done[migration.version] not in _REVISED.get(migration.version, frozenset())):
                        raise MigrationError(
                            f"migration {migration.version} was edited after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                try:
                    with conn.transaction():
                        _set_roles(conn, settings)
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO public.schema_migrations (version, checksum) VALUES (%s, %s)",
                            (migration.version, migration.checksum),
                        )
                except psycopg.Error as error:
                    raise MigrationError(f"migration {migration.version} failed: {error}") from error
                applied_now.append(migration.version)
            _apply_timescaledb(conn, settings)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def migrate_with_retry(settings: Settings, *, attempts: int = 30, max_delay: float = 5.0) -> None:
    """Apply migrations, waiting (with backoff) while PostgreSQL is unreachable at start-up."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            migrate(settings)
            return
        except psycopg.OperationalError as error:
            if attempt == attempts:
                raise
            log.warning("database unavailable at start-up (%s); retrying in %.1fs",
                        str(error).splitlines()[0] if str(error) else type(error).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
