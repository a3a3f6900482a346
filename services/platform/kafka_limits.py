"""Kafka's size limits, in one place: the broker, the topics, every producer and every consumer agree.

The largest message is a full batch envelope (`models.contracts.BATCH_MAX_BYTES`, 8 MiB); the broker
and topics accept a little more for Kafka's own framing, producers may send that much, and a
consumer fetches at least one full envelope per partition.
"""

from __future__ import annotations

from typing import Final

from models.contracts import BATCH_MAX_BYTES

#: The broker's `message.max.bytes`, each topic's `max.message.bytes` and every producer's
#: `max_request_size`: a full batch envelope with room for record framing.
MESSAGE_MAX_BYTES: Final = 10 * 1024 * 1024
#: What a consumer fetches per partition and request: one full batch envelope.
PARTITION_FETCH_BYTES: Final = BATCH_MAX_BYTES
#: How much a bulk producer (the importer, the benchmark) packs into one partition's batch.
PRODUCER_BATCH_BYTES: Final = 1024 * 1024
