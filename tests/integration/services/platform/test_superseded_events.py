"""The superseded events table (migration 0110): the *_current views anti-join it instead of their
whole table, so it must say exactly what the tables' `supersedes` columns say, whoever writes or
deletes, on both backends; and no role but the owner's triggers may write it."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import errors

from services.platform.settings import Settings
from tests import factories
from tests.integration.archive_writes import write_classified

pytestmark = pytest.mark.integration

TABLES = {"vision_screenings": "vision_current", "growth_screenings": "growth_current",
          "survey_results": "survey_current", "fitness_results": "fitness_current"}
MAKERS: dict[str, Callable[..., Any]] = {"vision_screenings": factories.vision, "growth_screenings": factories.bmi,
          "survey_results": factories.survey, "fitness_results": factories.fitness}


def _said_by_the_tables(conn: psycopg.Connection[Any]) -> set[tuple[str, Any]]:
    found: set[tuple[str, Any]] = set()
    for table in TABLES:
        found |= {(table, event_id) for (event_id,) in conn.execute(
            f"SELECT supersedes FROM archive.{table} WHERE supersedes IS NOT NULL").fetchall()}
    return found


def _current_by_anti_join(conn: psycopg.Connection[Any], table: str) -> set[Any]:
    # What "current" meant before 0110, computed from the table itself.
    return {event_id for (event_id,) in conn.execute(
        f"SELECT t.event_id FROM archive.{table} t"
        f" WHERE NOT EXISTS (SELECT 1 FROM archive.{table} c WHERE c.supersedes = t.event_id)").fetchall()}


def test_corrections_written_and_deleted_at_random_keep_the_table_and_views_exact(isolated: Settings) -> None:
    settings = isolated
    rng = random.Random(110)
    originals: dict[str, list[Any]] = {table: [] for table in TABLES}
    n = 0
    for table, make in MAKERS.items():
        events = [make(n + i, "S001") for i in range(12)]
        n += 12
        originals[table] = events
        write_classified(settings, events)
    # Rounds of corrections (some of one event twice, some of a correction), written through the
    # archive writer, each round then redelivered whole (at-least-once: nothing may double).
    corrections: dict[str, list[Any]] = {table: [] for table in TABLES}
    for _ in range(3):
        batch = []
        for table, make in MAKERS.items():
            for _ in range(rng.randint(1, 4)):
                target = rng.choice(originals[table] + corrections[table])
                correction = make(n, "S001", student_key=target.student_key, supersedes=str(target.event_id))
                n += 1
                corrections[table].append(correction)
                batch.append(correction)
        write_classified(settings, batch)
        write_classified(settings, batch)
        with psycopg.connect(settings.pg_dsn("admin")) as conn:
            stored = set(conn.execute("SELECT source, event_id FROM archive.superseded").fetchall())
            assert stored == _said_by_the_tables(conn)
            count = conn.execute("SELECT count(*) FROM archive.superseded").fetchone()
            assert count == (len(stored),)
            for table, view in TABLES.items():
                current = {event_id for (event_id,) in conn.execute(
                    f"SELECT event_id FROM archive.{view}").fetchall()}
                assert current == _current_by_anti_join(conn, table)

    # An operator's repair deletes corrections (and updates one): an event named by a correction
    # that is left stays superseded; one named by none is current again.
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        for table in TABLES:
            doomed = rng.sample(corrections[table], k=max(1, len(corrections[table]) // 2))
            conn.execute(f"DELETE FROM archive.{table} WHERE event_id = ANY(%s)",
                         ([event.event_id for event in doomed],))
        kept = corrections["vision_screenings"][0]
        conn.execute("UPDATE archive.vision_screenings SET supersedes = %s WHERE event_id = %s",
                     (originals["vision_screenings"][-1].event_id, kept.event_id))
        conn.commit()
        assert set(conn.execute("SELECT source, event_id FROM archive.superseded").fetchall()) \
            == _said_by_the_tables(conn)
        for table, view in TABLES.items():
            current = {event_id for (event_id,) in conn.execute(f"SELECT event_id FROM archive.{view}").fetchall()}
            assert current == _current_by_anti_join(conn, table)


def test_a_correction_supersedes_within_its_own_table_only(isolated: Settings) -> None:
    # Event ids are unique across families (the registry), but a vision row naming a growth event's
    # id must not hide that growth event: "current" is per table, as the anti-join was.
    settings = isolated
    growth = factories.bmi(1, "S001")
    write_classified(settings, [growth])
    stray = factories.vision(2, "S001", student_key=growth.student_key, supersedes=str(growth.event_id))
    write_classified(settings, [stray])
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        assert conn.execute("SELECT event_id FROM archive.growth_current").fetchall() == [(growth.event_id,)]
        assert conn.execute("SELECT source FROM archive.superseded").fetchall() == [("vision_screenings",)]


@pytest.mark.parametrize("statement", [
    "INSERT INTO archive.superseded (source, event_id) VALUES ('growth_screenings', gen_random_uuid())",
    "DELETE FROM archive.superseded",
    "SELECT count(*) FROM archive.superseded",
])
def test_the_app_role_cannot_touch_the_table_itself(isolated: Settings, statement: str) -> None:
    # A stolen app login could hide any measurement by inserting its id here, or bring corrected
    # ones back by deleting: only the owner's trigger function writes it.
    with psycopg.connect(isolated.pg_dsn("app")) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)
