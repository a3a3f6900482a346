"""The worker's event loop choice (`Settings.worker_event_loop`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from services.platform.settings import Settings
from streams.worker import use_event_loop


@pytest.fixture
def restore_policy() -> Iterator[None]:
    before = asyncio.get_event_loop_policy()
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(before)


def _new_loop_type() -> type:
    loop = asyncio.new_event_loop()
    try:
        return type(loop)
    finally:
        loop.close()


def test_the_worker_runs_on_uvloop_by_default(restore_policy: None) -> None:
    # The field's default, whatever this machine's environment sets.
    use_event_loop(Settings.model_fields["worker_event_loop"].default)
    assert _new_loop_type() is uvloop.Loop


def test_asyncio_keeps_the_standard_library_loop(restore_policy: None) -> None:
    asyncio.set_event_loop_policy(None)
    use_event_loop("asyncio")
    assert not issubclass(_new_loop_type(), uvloop.Loop)


def test_an_unknown_loop_is_refused(restore_policy: None) -> None:
    with pytest.raises(ValueError, match="uvloop or asyncio"):
        use_event_loop("gevent")
