"""`streams.take.take_bounded` on a real faust stream (faust's agent test context, no broker):
batches end at a message count, at a byte budget, or after `within` seconds, and nothing is
acknowledged by the take itself. The real broker runs it in tests/integration/services/pipeline/test_pipeline.py."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust
import pytest

from streams.take import take_bounded


def _run(values: list[bytes], *, max_messages: int, max_bytes: int) -> tuple[list[list[int]], int]:
    """Put `values` through an agent that takes bounded batches; return the batches' value sizes
    and how many events the stream had acknowledged before the agent acked any itself."""
    batches: list[list[int]] = []
    acked_by_take: list[int] = []

    async def main() -> None:
        # Made inside the running loop, so the app uses it (and opens no loop of its own).
        app = faust.App("take-test", store="memory://", web_enabled=False, autodiscover=False)

        @app.agent(value_type=bytes, key_type=bytes)
        async def collect(stream: Any) -> None:
            async for batch in take_bounded(stream, max_messages=max_messages, max_bytes=max_bytes, within=0.05):
                acked_by_take.append(sum(1 for event in batch if event.message.acked))
                batches.append([len(event.value) for event in batch])
                for event in batch:
                    await stream.ack(event)

        async with collect.test_context() as agent:
            for value in values:
                await agent.put(value)
            for _ in range(200):
                if sum(map(len, batches)) == len(values):
                    break
                await asyncio.sleep(0.02)
        # Iterating a stream makes faust build its Kafka consumer's thread, with an event loop of
        # its own that is never started without a broker: close it, or it leaks past the test.
        app.consumer._thread.thread_loop.close()  # type: ignore[attr-defined]  # faust keeps it private

    asyncio.run(main())
    return batches, sum(acked_by_take)


def test_a_batch_ends_at_the_byte_budget_whatever_the_message_count() -> None:
    big, small = b"x" * 1000, b"y" * 10
    batches, acked = _run([big] * 12 + [small] * 25, max_messages=10, max_bytes=3000)
    assert sum(map(len, batches)) == 37
    # Big messages: the budget ends each batch at 3,000 bytes (never more than the budget plus one message).
    assert batches[:4] == [[1000] * 3] * 4
    # Small ones: the message count ends them; the rest goes after `within`.
    assert batches[4:] == [[10] * 10, [10] * 10, [10] * 5]
    assert all(sum(batch) < 3000 + 1000 for batch in batches)
    assert acked == 0, "the take acknowledged events itself"


def test_one_message_over_the_budget_is_a_batch_of_its_own() -> None:
    batches, _ = _run([b"a" * 10, b"b" * 5000, b"c" * 10], max_messages=40, max_bytes=1000)
    assert batches == [[10, 5000], [10]]


@pytest.mark.parametrize(("max_messages", "max_bytes"), [(0, 10), (10, 0)])
def test_bounds_must_be_positive(max_messages: int, max_bytes: int) -> None:
    async def first() -> None:
        await anext(take_bounded(cast(Any, None), max_messages=max_messages, max_bytes=max_bytes, within=1.0))

    with pytest.raises(ValueError, match="positive"):
        asyncio.run(first())
