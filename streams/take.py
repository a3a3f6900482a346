"""Micro-batches of a faust stream bounded in messages and in bytes, never acknowledged here.

faust's `noack_take` ends a batch at a number of messages only. The contract lets one message be
up to 8 MiB (5,000 events in an envelope), so 40 messages could hold 320 MiB. Here a batch also
ends as soon as the values it holds reach `max_bytes`: it holds at most `max_bytes` plus one
message, whatever the envelope size. Events are handed over unacknowledged (the checkpoint acks
them after its last step) and, like `noack_take`, the stream's own acks are off while it runs.

It relies on faust's stream processors and its passive consumption (`Stream._enable_passive`,
faust-streaming as pinned in constraints.txt); `tests/unit/streams/test_take.py` runs it on a real
faust stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import faust

log = logging.getLogger(__name__)


async def take_bounded(stream: faust.StreamT[bytes], *, max_messages: int, max_bytes: int,
                       within: float) -> AsyncIterator[list[Any]]:
    """Yield lists of the stream's events (`faust.EventT`), unacknowledged.

    A list is yielded when it holds `max_messages` messages, when its values hold `max_bytes`
    bytes or more, or `within` seconds after the previous one if it holds anything. While the
    consumer of this generator works on a list, the stream waits: nothing more is read into memory.
    """
    if max_messages < 1 or max_bytes < 1 or within <= 0:
        raise ValueError("max_messages, max_bytes and within must be positive")
    # The stream as the mode Service it is (waits that end when it stops) and faust's internals;
    # `StreamT` declares neither.
    service: Any = stream
    held: list[Any] = []
    held_bytes = 0
    full = asyncio.Event()
    taken = asyncio.Event()
    reading: asyncio.Future[None] | None = None

    async def hold(value: bytes) -> bytes:
        nonlocal held_bytes, reading
        try:
            pending = reading
            if pending is not None:  # the list is being worked on: wait until it is handed back
                try:
                    await pending
                finally:
                    if reading is pending:
                        reading = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("the stream has no current event to hold")
            held.append(event)
            held_bytes += len(value) if isinstance(value, bytes | bytearray) else 0
            if len(held) >= max_messages or held_bytes >= max_bytes:
                full.set()
                taken.clear()
                await service.wait(taken)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("could not hold a message for the next batch")
            await stream.crash(error)
        return value

    acks_before = stream.enable_acks
    stream.enable_acks = False
    stream.add_processor(hold)
    service._enable_passive(aiter(stream.channel))  # faust's passive reader, as its own takes use it
    try:
        while not stream.should_stop:
            await service.wait_for_stopped(full, timeout=within)
            if not held:
                continue
            reading = asyncio.get_running_loop().create_future()
            try:
                yield list(held)
            finally:
                held.clear()
                held_bytes = 0
                if not reading.done():
                    reading.set_result(None)
                full.clear()
                taken.set()
    finally:
        stream.enable_acks = acks_before
        service._processors.remove(hold)
