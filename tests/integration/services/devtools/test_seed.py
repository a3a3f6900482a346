"""Seeding's publisher writes on a thread of its own: in order, everything by `close`, errors raised."""

from __future__ import annotations

import psycopg
import pytest

from models.codecs import encode_batch
from models.topics import VISION_SCREENINGS
from services.devtools.seed import ArchivePublisher
from services.platform.settings import Settings
from tests import factories

pytestmark = pytest.mark.integration


def _stored(settings: Settings) -> list[tuple[str, float]]:
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        rows = conn.execute("SELECT student_key, ucva_right FROM archive.vision_screenings ORDER BY 1").fetchall()
    return [(str(student), float(ucva)) for student, ucva in rows]


def test_every_batch_is_stored_by_close(isolated: Settings) -> None:
    publisher = ArchivePublisher(isolated, flush_events=2)
    events = [factories.vision(n) for n in range(7)]
    for n in range(0, 7, 2):
        # Batches of two events: each flush leaves one batch in flight while the next is classified.
        publisher.publish(VISION_SCREENINGS, b"S001", encode_batch(events[n:n + 2]))
    publisher.close()
    assert _stored(isolated) == sorted((factories.key(n), 5.0) for n in range(7))


def test_a_failed_write_is_raised_by_the_next_call_and_close_still_ends(isolated: Settings) -> None:
    publisher = ArchivePublisher(isolated, flush_events=1)
    first = factories.vision(1)
    publisher.publish(VISION_SCREENINGS, b"S001", encode_batch([first]))
    publisher.drain()
    # The same event id with other content: the writer refuses the batch (no dead-letter path here).
    clash = factories.vision(1, ucva_right=4.0)
    assert clash.event_id == first.event_id
    publisher.publish(VISION_SCREENINGS, b"S001", encode_batch([clash]))
    with pytest.raises(RuntimeError, match="already stored with other content"):
        publisher.drain()
    publisher.close()  # the writer's thread and connection end; nothing is left in flight
    assert _stored(isolated) == [(factories.key(1), 5.0)]


def test_close_raises_the_last_batch_failure(isolated: Settings) -> None:
    publisher = ArchivePublisher(isolated, flush_events=1)
    publisher.publish(VISION_SCREENINGS, b"S001", encode_batch([factories.vision(2)]))
    publisher.drain()
    publisher.publish(VISION_SCREENINGS, b"S001", encode_batch([factories.vision(2, ucva_right=4.1)]))
    with pytest.raises(RuntimeError, match="already stored with other content"):
        publisher.close()
    assert _stored(isolated) == [(factories.key(2), 5.0)]
