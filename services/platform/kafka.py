"""Thin typed Kafka producers for everything outside the faust wiring (`streams/` wires its own).

- `KafkaPublisher` (kafka-python, synchronous): bulk publishing from the importer, the fitness
  sheets and the upload pages; idempotent, acks=all, errors surface on `flush`.
- `EventProducer` (aiokafka, asynchronous): single events from the API and the web pages; it is
  started once per process (a start that fails is closed and retried at the next request),
  waits for the broker's acknowledgement and retries transient errors.

Both send raw bytes keyed by school, signed in as their service's principal
(`services.platform.kafka_security`); the codecs are `models.codecs`, the limits
`services.platform.kafka_limits`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.platform.kafka_limits import MESSAGE_MAX_BYTES, PRODUCER_BATCH_BYTES
from services.platform.kafka_security import client_options
from services.platform.settings import Settings


class KafkaPublisher:
    """kafka-python producer: synchronous, idempotent, acks=all. Errors surface on flush."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaProducer

        self._settings = settings
        self._producer = KafkaProducer(
            **client_options(settings, "importer"), acks="all", linger_ms=20,
            max_request_size=MESSAGE_MAX_BYTES, batch_size=PRODUCER_BATCH_BYTES,
        )
        self._futures: list[Any] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self._futures.append(self._producer.send(self._settings.topic(topic), key=key, value=value))
        if len(self._futures) >= 200:
            self.flush()

    def flush(self) -> None:
        self._producer.flush()
        for future in self._futures:
            future.get(timeout=60)  # raises if the broker refused the message
        self._futures.clear()

    def close(self) -> None:
        self.flush()
        self._producer.close()


class EventProducer:
    """aiokafka producer for one event at a time: idempotent, acks=all, no linger.

    `start` is idempotent and safe to call from concurrent requests; `stop` closes it. A repeat
    after a lost acknowledgement is harmless: the worker stores one event per id, and an exact
    repeat changes nothing.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = asyncio.Lock()
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**client_options(self._settings, "api", library="aiokafka"),
                                            acks="all", enable_idempotence=True, linger_ms=0)
                try:
                    await producer.start()
                except BaseException:
                    # A producer that failed to start still holds its client: close it, and let the
                    # next request try again with a new one.
                    await producer.stop()
                    raise
                self._producer = producer

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce one message to `topic` (already prefixed) and wait for the broker's acknowledgement,
        retrying transient broker errors with backoff (the caller bounds the whole wait)."""
        from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

        await self.start()
        delay = 0.2
        while True:
            try:
                await self._producer.send_and_wait(topic, key=key, value=value)
                return
            except KafkaError as error:
                if not (isinstance(error, (KafkaConnectionError, KafkaTimeoutError))
                        or getattr(error, "retriable", False)):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def stop(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None
