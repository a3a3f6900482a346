"""The ingest agent: wiring only. Decoding, validation and classification live in `models/`,
the archive writes in `services.ingest`; the agent hands them micro-batches."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterable, Sequence

import faust

from models.topics import DEAD_LETTERS, INPUT_TOPICS, INTERVENTION_ALERTS
from services.ingest import Ingestor, RawMessage
from services.settings import Settings

log = logging.getLogger(__name__)


def register_agents(app: faust.App, settings: Settings, ingestor: Ingestor) -> None:
    """Subscribe one agent to all input topics and feed `ingestor` batches of raw messages."""
    inputs = app.topic(*(settings.topic(name) for name in INPUT_TOPICS), value_type=bytes, key_type=bytes)
    dead_letters = app.topic(settings.topic(DEAD_LETTERS), value_type=bytes, key_type=bytes)

    async def send_dead_letter(key: bytes | None, value: bytes) -> None:
        # Wait for the broker's acknowledgement: the batch is acked only after its dead letters are safe.
        await (await dead_letters.send(key=key, value=value))

    ingestor.send_dead_letter = send_dead_letter
    alerts = app.topic(settings.topic(INTERVENTION_ALERTS), value_type=bytes, key_type=bytes)

    async def send_alerts(messages: Sequence[tuple[bytes, bytes]]) -> None:
        # Enqueue all, then wait for every acknowledgement: one round trip, not one per alert.
        pending = [await alerts.send(key=key, value=value) for key, value in messages]
        await asyncio.gather(*pending)

    ingestor.send_alerts = send_alerts

    @app.agent(inputs, name="ingest")
    async def ingest(stream: AsyncIterable[faust.types.EventT[bytes]]) -> None:
        # take_events acks the batch's offsets only when the loop body has finished with it.
        async for events in stream.take_events(settings.worker_batch_size,  # type: ignore[attr-defined]
                                               within=settings.worker_batch_seconds):
            try:
                await ingestor.handle([
                    RawMessage(topic=event.message.topic, partition=event.message.partition,
                               offset=event.message.offset, value=event.value)
                    for event in events
                ])
            except Exception:
                # A bug, not bad input (bad input is dead-lettered): stop the whole worker without
                # acking this batch, so a supervisor restarts it instead of a silent, idle process.
                log.exception("ingest failed; stopping the worker so the batch is redelivered")
                os.kill(os.getpid(), signal.SIGTERM)
                raise

