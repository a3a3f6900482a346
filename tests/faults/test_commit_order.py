"""The commit order on the real broker: a batch that did not finish is never committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.pipeline.audit import audit_delivery
from services.platform.settings import Settings
from tests.faults.harness import (
    assert_conserved,
    committed_offsets,
    produce_known_set,
    wait_for_lag_zero,
    worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_handler_exception_at_batch_k_commits_nothing_of_it_and_exits_non_zero(
        isolated: Settings, tmp_path: Path) -> None:
    settings = isolated.model_copy(update={"worker_batch_size": 3})
    known = produce_known_set(settings)
    failing = worker(settings, tmp_path / "failing.log", "--fail-write-at", "3")
    status = failing.wait(timeout=120)
    log = failing.log.read_text(errors="replace")
    assert status != 0, f"the worker exited {status} after a failed batch{failing.tail()}"
    assert "FAULT: archive write 3 raises" in log

    # Batches 1 and 2 are durable; batch 3 and everything after it are not committed.
    committed = committed_offsets(settings, settings.consumer_group)
    missing = [(audit.topic, position) for audit in audit_delivery(settings) for position in audit.missing_positions]
    assert missing, "the failed batch's events are in the archive: the fault did not happen"
    for topic, (partition, offset, _index) in missing:
        assert offset >= committed.get((topic, partition), 0), (
            f"{topic}[{partition}] committed at {committed.get((topic, partition))} past missing offset {offset}")

    restarted = worker(settings, tmp_path / "restarted.log")
    try:
        wait_for_lag_zero(settings, [restarted])
        assert_conserved(settings, known, label="handler exception at batch 3")
    finally:
        assert restarted.stop() == 0
