"""The ingest agent: wiring only. Decoding, validation and classification live in `models/`,
the order in which a batch becomes durable in `services.pipeline.ingest.Checkpoint`.

faust acks events itself: `take_events` acks a batch in a `finally`, so a batch whose handler
raised would be committed at the next commit or at shutdown. The agent therefore takes batches
unacknowledged (`streams.take.take_bounded`, bounded in messages and bytes) and acks their events
only through the checkpoint's last step, after the dead letters, the archive transaction and the
alerts are durable. faust commits only offsets acked
without a gap, so a batch that did not finish holds back every later offset of its partitions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import faust
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from models.topics import DEAD_LETTERS, INPUT_TOPICS, INTERVENTION_ALERTS
from services.pipeline.ingest import BrokerUnavailable, Checkpoint, RawMessage, SendMessages
from services.platform.settings import Settings
from streams.take import take_bounded

log = logging.getLogger(__name__)


def _transient(error: BaseException) -> bool:
    return isinstance(error, (KafkaTimeoutError, KafkaConnectionError, asyncio.TimeoutError)) or (
        isinstance(error, KafkaError) and bool(getattr(error, "retriable", False)))


def producer_for(topic: faust.TopicT) -> SendMessages:
    """Produce (key, value) records on `topic` and wait for every acknowledgement.

    Translates transient broker errors into `BrokerUnavailable`, which the checkpoint retries.
    """

    async def send(records: Sequence[tuple[bytes | None, bytes]]) -> None:
        try:
            # Enqueue all, then wait for every acknowledgement: one round trip, not one per record.
            pending = [await topic.send(key=key, value=value) for key, value in records]
            await asyncio.gather(*pending)
        except Exception as error:
            if _transient(error):
                raise BrokerUnavailable(type(error).__name__) from error
            raise

    return send


def register_agents(app: faust.App, settings: Settings,
                    checkpoint_factory: Callable[[SendMessages, SendMessages], Checkpoint], *,
                    on_fatal: Callable[[BaseException], None]) -> Checkpoint:
    """Subscribe one agent to all input topics; each batch goes through one `Checkpoint`.

    `on_fatal` is called when a batch fails with an error that is not transient: the worker must
    stop, with a non-zero status, and the batch's offsets stay uncommitted.
    """
    inputs = app.topic(*(settings.topic(name) for name in INPUT_TOPICS), value_type=bytes, key_type=bytes)
    dead_letters = app.topic(settings.topic(DEAD_LETTERS), value_type=bytes, key_type=bytes)
    alerts = app.topic(settings.topic(INTERVENTION_ALERTS), value_type=bytes, key_type=bytes)
    checkpoint = checkpoint_factory(producer_for(dead_letters), producer_for(alerts))

    @app.agent(inputs, name="ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        async for events in take_bounded(stream, max_messages=settings.worker_batch_size,
                                         max_bytes=settings.worker_batch_bytes,
                                         within=settings.worker_batch_seconds):
            batch: Sequence[faust.types.EventT[bytes]] = events

            async def ack_batch(batch: Sequence[faust.types.EventT[bytes]] = batch) -> None:
                for event in batch:
                    await stream.ack(event)

            try:
                await checkpoint.run([
                    RawMessage(topic=event.message.topic, partition=event.message.partition,
                               offset=event.message.offset, value=event.value)
                    for event in batch
                ], ack_batch)
            except Exception as error:
                # A bug or a permanent broker error, not bad input (that is dead-lettered): nothing
                # of this batch is acked, and the worker stops with a non-zero status.
                log.exception("ingest failed; the batch stays uncommitted and the worker stops")
                on_fatal(error)
                return

    del ingest  # registered with the app by the decorator
    return checkpoint
