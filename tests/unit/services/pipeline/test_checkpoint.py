"""The checkpoint's order, with small fakes of its ports (the real broker is in tests/faults)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from models.codecs import encode_batch, encode_event
from models.pipeline import ProcessedMessages
from services.pipeline.archive_writer import DeadLetter
from services.pipeline.ingest import Backoff, BrokerUnavailable, Checkpoint, RawMessage
from services.platform.settings import Settings
from tests import factories

SELF_HARM = [0, 0, 0, 0, 0, 0, 0, 0, 2]


class Recorder:
    """Records every step in order; `fail` names a step that raises (once or always)."""

    def __init__(self, fail: str | None = None, *, transient: int = 0) -> None:
        self.steps: list[str] = []
        self.fail = fail
        self.transient = transient  # if > 0, `fail` times out this many times, then succeeds

    def _step(self, name: str) -> None:
        self.steps.append(name)
        if name != self.fail:
            return
        if not self.transient:
            raise RuntimeError(f"{name} failed")
        self.transient -= 1
        if not self.transient:
            self.fail = None
        raise BrokerUnavailable("KafkaTimeoutError")

    async def dead_letters(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        self._step("dead letters")

    async def alerts(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        self._step("alerts")

    async def write(self, batch: ProcessedMessages, dead_letters: Sequence[DeadLetter], **_: Any) -> None:
        self._step("archive")

    async def commit(self) -> None:
        self._step("commit offsets")


def _checkpoint(recorder: Recorder, **settings: Any) -> Checkpoint:
    async def no_sleep(_: float) -> None:
        return None

    return Checkpoint(Settings(**settings), recorder, send_dead_letters=recorder.dead_letters,
                      send_alerts=recorder.alerts, backoff=Backoff(first=0.0), sleep=no_sleep)


def _messages() -> list[RawMessage]:
    return [
        RawMessage(topic="psych-surveys", partition=0, offset=0,
                   value=encode_event(factories.survey(1, answers=SELF_HARM))),
        RawMessage(topic="psych-surveys", partition=0, offset=1, value=b"{not json"),
        RawMessage(topic="bmi-screenings", partition=1, offset=7,
                   value=encode_batch([factories.bmi(n) for n in range(3)])),
    ]


def test_dead_letters_then_archive_then_alerts_then_offsets() -> None:
    recorder = Recorder()
    asyncio.run(_checkpoint(recorder).run(_messages(), recorder.commit))
    assert recorder.steps == ["dead letters", "archive", "alerts", "commit offsets"]


@pytest.mark.parametrize("step", ["dead letters", "archive", "alerts"])
def test_a_failed_step_never_commits_the_offsets(step: str) -> None:
    recorder = Recorder(fail=step)
    with pytest.raises(RuntimeError, match=step):
        asyncio.run(_checkpoint(recorder).run(_messages(), recorder.commit))
    assert "commit offsets" not in recorder.steps
    assert recorder.steps[-1] == step


def test_a_cancelled_batch_never_commits_the_offsets() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        started = asyncio.Event()

        async def slow_write(batch: ProcessedMessages, dead_letters: Sequence[DeadLetter], **_: Any) -> None:
            recorder.steps.append("archive")
            started.set()
            await asyncio.sleep(60)

        recorder.write = slow_write  # type: ignore[method-assign]
        task = asyncio.create_task(_checkpoint(recorder).run(_messages(), recorder.commit))
        await started.wait()
        task.cancel()  # SIGTERM during a batch, or a rebalance
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert recorder.steps == ["dead letters", "archive"]


@pytest.mark.parametrize("step", ["dead letters", "alerts"])
def test_transient_broker_errors_are_retried_then_the_batch_commits(step: str) -> None:
    recorder = Recorder(fail=step, transient=3)
    checkpoint = _checkpoint(recorder)
    asyncio.run(checkpoint.run(_messages(), recorder.commit))
    assert recorder.steps.count(step) == 4 and recorder.steps[-1] == "commit offsets"
    assert checkpoint.broker_retries == 3


def test_memory_is_bounded_in_events_not_messages() -> None:
    # One 500-event envelope per message: with at most 1,000 events per part, four messages are
    # made durable in two parts, and the offsets are committed once, after both.
    recorder = Recorder()
    messages = [RawMessage(topic="bmi-screenings", partition=0, offset=i,
                           value=encode_batch([factories.bmi(i * 500 + n) for n in range(500)])) for i in range(4)]
    asyncio.run(_checkpoint(recorder, worker_batch_events=1_000).run(messages, recorder.commit))
    assert recorder.steps == ["archive", "archive", "commit offsets"]


def test_memory_is_bounded_in_bytes() -> None:
    recorder = Recorder()
    messages = [RawMessage(topic="bmi-screenings", partition=0, offset=i, value=b"x" * 600) for i in range(4)]
    asyncio.run(_checkpoint(recorder, worker_batch_bytes=1_000).run(messages, recorder.commit))
    assert recorder.steps == ["dead letters", "archive", "dead letters", "archive", "commit offsets"]
