"""`python -m tests.faults.fault_worker [FAULT ...]`: a real `schoolhealth worker` with one injected fault.

Everything is the production worker (real broker, real database, the real checkpoint); only the
named seam fails on purpose:

- `--fail-write-at K`: the archive writer raises a programming error on its K-th batch (1-based),
  before writing anything;
- `--dead-letter-timeouts N`: the first N dead-letter productions fail with a broker timeout;
- `--alert-timeouts N`: the first N alert productions fail with a broker timeout;
- `--slow-write SECONDS`: every archive write waits this long first (to kill a worker mid-batch).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import KafkaTimeoutError

import streams.agents
from services.pipeline.archive_writer import ArchiveWriter, DeadLetter
from services.platform.settings import Settings
from streams.worker import run_worker

log = logging.getLogger("tests.faults")


class InjectedFault(RuntimeError):
    """The programming error a fault test injects."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-write-at", type=int, default=0)
    parser.add_argument("--dead-letter-timeouts", type=int, default=0)
    parser.add_argument("--alert-timeouts", type=int, default=0)
    parser.add_argument("--slow-write", type=float, default=0.0)
    args = parser.parse_args(argv)

    class FaultyWriter(ArchiveWriter):
        writes = 0

        async def write(self, batch: Any, dead_letters: Sequence[DeadLetter], **kwargs: Any) -> None:
            FaultyWriter.writes += 1
            if args.slow_write:
                print(f"FAULT: slow archive write {FaultyWriter.writes}", flush=True)
                await asyncio.sleep(args.slow_write)
            if FaultyWriter.writes == args.fail_write_at:
                print(f"FAULT: archive write {FaultyWriter.writes} raises", flush=True)
                raise InjectedFault(f"injected failure of archive write {FaultyWriter.writes}")
            await super().write(batch, dead_letters, **kwargs)

    real_producer_for = streams.agents.producer_for
    timeouts = {"dead-letters": args.dead_letter_timeouts, "intervention-alerts": args.alert_timeouts}

    def producer_for(topic: Any) -> Any:
        name = next((kind for kind in timeouts if topic.get_topic_name().endswith(kind)), None)
        real_send = topic.send

        async def faulty_send(**kwargs: Any) -> Any:
            if name is not None and timeouts[name] > 0:
                timeouts[name] -= 1
                print(f"FAULT: {name} production times out", flush=True)
                raise KafkaTimeoutError("injected producer timeout")
            return await real_send(**kwargs)

        topic.send = faulty_send
        return real_producer_for(topic)

    streams.agents.producer_for = producer_for
    run_worker(Settings(), archive_writer=FaultyWriter)


if __name__ == "__main__":
    main()
