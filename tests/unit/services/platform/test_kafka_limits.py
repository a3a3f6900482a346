"""Kafka's size limits have one home (`services.platform.kafka_limits`) and fit the contracts."""

from __future__ import annotations

import re

from models.contracts import BATCH_MAX_BYTES, EVENT_MAX_BYTES
from services.platform.kafka_limits import MESSAGE_MAX_BYTES, PARTITION_FETCH_BYTES, PRODUCER_BATCH_BYTES
from tests.paths import ROOT

# A Kafka size option given a number written in place, e.g. `max_request_size=10 * 1024 * 1024`.
_WRITTEN_IN_PLACE = re.compile(
    r"""(max_request_size|max_partition_fetch_bytes|max_fetch_size|max_batch_size|batch_size|"""
    r"""message\.max\.bytes|max\.message\.bytes)["']?\s*[:=]\s*(str\()?\s*\d""")


def test_the_limits_fit_a_full_batch_envelope() -> None:
    assert EVENT_MAX_BYTES < BATCH_MAX_BYTES < MESSAGE_MAX_BYTES
    assert PARTITION_FETCH_BYTES >= BATCH_MAX_BYTES
    assert PRODUCER_BATCH_BYTES <= MESSAGE_MAX_BYTES


def test_no_module_writes_its_own_kafka_size_limit() -> None:
    found = [f"{path.relative_to(ROOT)}:{number}"
             for folder in ("services", "streams") for path in sorted((ROOT / folder).rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if _WRITTEN_IN_PLACE.search(line)]
    assert found == []
