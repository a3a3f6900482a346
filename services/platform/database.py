"""The project's PostgreSQL roles and database, created idempotently with a superuser connection.

Used by `schoolhealth db init` (docker-compose), the local stack, the tests and the benchmarks;
the schema itself comes from the migrations (`services.platform.migrate`).
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from services.platform.settings import Settings


class DatabaseSetupError(RuntimeError):
    """The database could not be prepared; the message says why and what to change."""


def bootstrap_database(settings: Settings, superuser_dsn: str, *, timescaledb: bool) -> None:
    """Create the project's roles and database, idempotently (the local stack and docker-compose).

    `superuser_dsn` must name the `postgres` maintenance database.
    """
    s = settings
    roles = [
        (s.pg_admin_user, s.pg_admin_password.get_secret_value(), "CREATEROLE CREATEDB"),
        (s.pg_app_user, s.pg_app_password.get_secret_value(), ""),
        (s.pg_grafana_user, s.pg_grafana_password.get_secret_value(), ""),
    ]
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        for name, password, extra in roles:
            # Roles are cluster-wide: several databases bootstrapping at once (parallel test
            # sessions) may create or alter the same role concurrently; PostgreSQL then refuses
            # one of them ("tuple concurrently updated", or a duplicate), which a retry settles.
            for attempt in range(5):
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
                verb = "ALTER" if exists else "CREATE"
                try:
                    conn.execute(
                        sql.SQL("{} ROLE {} LOGIN NOSUPERUSER {} PASSWORD {}").format(
                            sql.SQL(verb), sql.Identifier(name), sql.SQL(extra), sql.Literal(password)
                        )
                    )
                    break
                except (psycopg.errors.InternalError_, psycopg.errors.DuplicateObject,
                        psycopg.errors.UniqueViolation) as error:
                    if attempt == 4 or (isinstance(error, psycopg.errors.InternalError_)
                                        and "concurrently" not in str(error)):
                        raise
                    time.sleep(0.1 * (attempt + 1))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (s.pg_database,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(s.pg_database), sql.Identifier(s.pg_admin_user)))
    database_dsn = psycopg.conninfo.make_conninfo(superuser_dsn, dbname=s.pg_database)
    with psycopg.connect(database_dsn, autocommit=True) as conn:
        # Only the owner may create objects; everyone else gets explicit grants in migrations.
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(s.pg_admin_user)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(s.pg_database)))
        for role in (s.pg_admin_user, s.pg_app_user, s.pg_grafana_user):
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(s.pg_database), sql.Identifier(role)))
        # The writers stage micro-batches in temporary tables; Grafana's role gets no TEMP.
        for role in (s.pg_admin_user, s.pg_app_user):
            conn.execute(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(s.pg_database), sql.Identifier(role)))
        if timescaledb:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            except psycopg.Error as error:
                reason = error.diag.message_primary
                raise DatabaseSetupError(
                    f"TimescaleDB is installed but could not be created in {s.pg_database} ({reason}): "
                    "the server needs shared_preload_libraries = 'timescaledb' and a restart "
                    "(`schoolhealth stack up` does both for its own cluster)") from error
