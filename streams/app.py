"""The faust application, built from settings (nothing is created at import time).

At-least-once processing: faust's exactly-once mode is not trustworthy (duplicates at rebalance),
so the archive writes are idempotent instead. The web server is off: its table endpoints would
serve data. Topics are created by `schoolhealth topics create`, never declared by faust.
"""

from __future__ import annotations

import faust

from services.platform.kafka_limits import MESSAGE_MAX_BYTES, PARTITION_FETCH_BYTES
from services.platform.kafka_security import faust_credentials
from services.platform.settings import Settings

STREAM_BUFFER_MESSAGES = 8


def broker_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """The worker's SASL sign-in (its own principal), or None on the loopback stack's PLAINTEXT."""
    credentials: faust.SASLCredentials | None = faust_credentials(settings)
    return credentials


def create_app(settings: Settings) -> faust.App:
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=broker_credentials(settings),
        web_enabled=False,
        processing_guarantee="at_least_once",
        topic_allow_declare=False,
        topic_disable_leader=True,
        store="memory://",
        autodiscover=False,
        datadir=str(settings.state_dir / "faust" / settings.consumer_group),
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # faust would wait, at shutdown and at each rebalance, for every message it handed out to
        # be acked, and a batch that failed is never acked: the worker would hang instead of
        # exiting. Not waiting is safe: only finished batches are ever acked (streams.agents), so
        # faust commits nothing else; a batch still in flight at a rebalance is delivered again.
        stream_wait_empty=False,
        producer_acks=-1,
        producer_max_request_size=MESSAGE_MAX_BYTES,
        consumer_max_fetch_size=PARTITION_FETCH_BYTES,
        # Messages faust buffers ahead of the agent, in a count (faust has no byte bound). The raw
        # bytes a worker holds are then bounded whatever the envelope size: the batch in hand at most
        # `worker_batch_bytes` plus one message (`streams.take`), this buffer at most 8 messages of at
        # most MESSAGE_MAX_BYTES, and aiokafka's prefetch one fetch response (50 MiB): about 145 MiB
        # with the defaults. The take drains the buffer as fast as it fills while no batch is being
        # written, so a short buffer costs no throughput (faust's default, 4,096 messages, could hold
        # gigabytes of envelopes; 80, before, up to 800 MiB).
        stream_buffer_maxsize=STREAM_BUFFER_MESSAGES,
        value_serializer="raw",
        key_serializer="raw",
    )
