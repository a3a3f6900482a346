"""One fault per test, on real processes, the real broker and real PostgreSQL; the conservation
law (`schoolhealth audit delivery` as the oracle) after each. Every known set carries poison of
every kind, so each test also proves that poison is dead-lettered under its fault."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devtools.stack import Kafka, Postgres
from services.platform.settings import Settings
from services.platform.topics import create_topics
from tests.faults.clusters import free_port, private_cluster
from tests.faults.harness import (
    alert_service,
    assert_conserved,
    log_has,
    produce_known_set,
    scalar,
    wait_for_lag_zero,
    wait_until,
    worker,
)
from tests.processes import ChildProcess

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def small_batches(isolated: Settings) -> Settings:
    """Three messages per micro-batch: many batches from a small known set, so faults land mid-stream."""
    return isolated.model_copy(update={"worker_batch_size": 3})


def test_no_fault_poison_of_every_kind_is_dead_lettered(small_batches: Settings, tmp_path: Path) -> None:
    settings = small_batches
    known = produce_known_set(settings)
    processes = [worker(settings, tmp_path / "worker.log"), alert_service(settings, tmp_path / "alerts.log")]
    try:
        wait_for_lag_zero(settings, processes, alerts=True)
        assert_conserved(settings, known, alerts=True, label="no fault (poison of every kind)")
    finally:
        assert [p.stop() for p in processes] == [0, 0]


def test_dead_letter_producer_timeouts_are_retried(small_batches: Settings, tmp_path: Path) -> None:
    settings = small_batches
    known = produce_known_set(settings)
    process = worker(settings, tmp_path / "worker.log", "--dead-letter-timeouts", "3")
    try:
        wait_for_lag_zero(settings, [process])
        assert_conserved(settings, known, label="dead-letter producer timeout (3 times)")
        log = process.log.read_text()
        assert log.count("FAULT: dead-letters production times out") == 3
        assert "broker unavailable producing dead letters (KafkaTimeoutError)" in log
    finally:
        assert process.stop() == 0


def test_alert_producer_timeouts_are_retried(small_batches: Settings, tmp_path: Path) -> None:
    settings = small_batches
    known = produce_known_set(settings)
    processes = [worker(settings, tmp_path / "worker.log", "--alert-timeouts", "2"),
                 alert_service(settings, tmp_path / "alerts.log")]
    try:
        wait_for_lag_zero(settings, processes, alerts=True)
        assert_conserved(settings, known, alerts=True, label="alert producer timeout (2 times)")
        log = processes[0].log.read_text()
        assert log.count("FAULT: intervention-alerts production times out") == 2
        assert "broker unavailable producing alerts (KafkaTimeoutError)" in log
    finally:
        assert [p.stop() for p in processes] == [0, 0]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_worker_killed_mid_batch_then_restarted(small_batches: Settings, tmp_path: Path, sig: int) -> None:
    settings = small_batches
    known = produce_known_set(settings)
    slow = worker(settings, tmp_path / "slow.log", "--slow-write", "1.0")
    wait_until(log_has(slow, "FAULT: slow archive write 4"), timeout=90, what="the fourth batch", processes=[slow])
    status = slow.stop(sig)  # during the fourth batch's archive write
    assert status == (-signal.SIGKILL if sig == signal.SIGKILL else 0), status
    assert scalar(settings, "SELECT count(*) FROM archive.event_ids") < known.valid_total
    restarted = worker(settings, tmp_path / "restarted.log")
    try:
        wait_for_lag_zero(settings, [restarted])
        assert_conserved(settings, known, label=f"worker {signal.Signals(sig).name} mid-batch, then restarted")
    finally:
        assert restarted.stop() == 0


def test_alert_service_sigkill_then_restarted(small_batches: Settings, tmp_path: Path) -> None:
    settings = small_batches
    known = produce_known_set(settings)
    processes = [worker(settings, tmp_path / "worker.log")]
    first = alert_service(settings, tmp_path / "alerts-1.log")
    wait_until(lambda: scalar(settings, "SELECT count(*) FROM alerts.applied_events") > 0, timeout=90,
               what="the first alert", processes=[first, *processes])
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    processes.append(alert_service(settings, tmp_path / "alerts-2.log"))
    try:
        wait_for_lag_zero(settings, processes, alerts=True)
        assert_conserved(settings, known, alerts=True, label="alert service SIGKILL, then restarted")
    finally:
        assert [p.stop() for p in processes] == [0, 0]


def test_a_second_worker_joins_and_leaves_mid_stream(small_batches: Settings, tmp_path: Path) -> None:
    settings = small_batches
    known = produce_known_set(settings)
    first = worker(settings, tmp_path / "first.log", "--slow-write", "3.0")
    second: ChildProcess | None = None
    try:
        wait_until(log_has(first, "FAULT: slow archive write 2"), timeout=90, what="two batches", processes=[first])
        second = worker(settings, tmp_path / "second.log", "--slow-write", "3.0")
        wait_until(log_has(second, "FAULT: slow archive write 1"), timeout=120,
                   what="a batch on the second worker", processes=[first, second])
        assert second.stop() == 0  # leaves mid-batch: its partitions go back to the first worker
        second = None
        wait_for_lag_zero(settings, [first], timeout=180)
        assert_conserved(settings, known, label="a second worker joins and leaves mid-stream")
    finally:
        if second is not None:
            second.stop()
        assert first.stop() == 0


@pytest.fixture
def private_postgres(small_batches: Settings) -> Iterator[tuple[Settings, Postgres]]:
    """A throwaway PostgreSQL cluster of this test alone (the shared one is never stopped)."""
    with private_cluster(small_batches, topics=True) as pair:
        yield pair


def test_postgres_stopped_30_seconds(private_postgres: tuple[Settings, Postgres], tmp_path: Path) -> None:
    settings, cluster = private_postgres
    known = produce_known_set(settings)
    processes = [worker(settings, tmp_path / "worker.log", "--slow-write", "0.3"),
                 alert_service(settings, tmp_path / "alerts.log")]
    try:
        wait_until(log_has(processes[0], "FAULT: slow archive write 3"), timeout=90, what="three batches",
                   processes=processes)
        cluster.down()
        time.sleep(30)
        assert [p.alive() for p in processes] == [True, True], "".join(p.tail() for p in processes)
        cluster.up()
        wait_for_lag_zero(settings, processes, alerts=True, timeout=180)
        assert_conserved(settings, known, alerts=True, label="PostgreSQL stopped 30 s (private cluster)")
        assert "archive unavailable" in processes[0].log.read_text()
    finally:
        assert [p.stop() for p in processes] == [0, 0]



@pytest.fixture
def private_broker(small_batches: Settings) -> Iterator[tuple[Settings, Kafka]]:
    """A Kafka broker of this test alone, on its own ports (the shared one is never killed)."""
    home = Path(tempfile.mkdtemp(prefix="schoolhealth-kafka-"))
    (home / "kafka-libs").symlink_to(small_batches.state_dir / "kafka-libs")  # the jars already resolved
    settings = small_batches.model_copy(update={"state_dir": home, "kafka_port": free_port(),
                                                "kafka_controller_port": free_port(), "kafka_heap_mb": 384})
    broker = Kafka(settings)
    broker.up(timeout=120)
    try:
        create_topics(settings)
        yield settings, broker
    finally:
        broker.down()
        shutil.rmtree(home, ignore_errors=True)


def test_broker_sigkill_and_restart(private_broker: tuple[Settings, Kafka], tmp_path: Path) -> None:
    settings, broker = private_broker
    known = produce_known_set(settings)
    processes = [worker(settings, tmp_path / "worker.log", "--slow-write", "0.3"),
                 alert_service(settings, tmp_path / "alerts.log")]
    try:
        wait_until(log_has(processes[0], "FAULT: slow archive write 3"), timeout=120, what="three batches",
                   processes=processes)
        os.kill(int(broker.pid_file.read_text()), signal.SIGKILL)
        time.sleep(10)
        broker.up(timeout=120)
        for index, process in enumerate(processes):
            if not process.alive():  # a process that lost the broker may exit non-zero: its supervisor restarts it
                assert process.wait(timeout=5) != 0
                processes[index] = (worker(settings, tmp_path / "worker-2.log") if index == 0
                                    else alert_service(settings, tmp_path / "alerts-2.log"))
        wait_for_lag_zero(settings, processes, alerts=True, timeout=240)
        assert_conserved(settings, known, alerts=True, label="broker SIGKILL and restart (private broker)")
    finally:
        for process in processes:
            process.stop()


def test_api_producer_retries_while_the_broker_restarts(private_broker: tuple[Settings, Kafka]) -> None:
    """The API's producer (one screening per request) rides out a broker restart: the publish started
    while the broker is down waits, completes once the broker is back, and the event is on the topic.

    For an outage this short aiokafka's own retries carry the request (the test passes with
    `EventProducer.publish`'s loop disabled); the loop matters for errors aiokafka gives up on.
    The API bounds each request at 15 s and answers 503 after (test_submission_without_kafka)."""
    from kafka import KafkaConsumer

    from models.codecs import encode_event
    from models.topics import BMI_SCREENINGS
    from services.platform.kafka import EventProducer
    from tests import factories

    settings, broker = private_broker
    topic = settings.topic(BMI_SCREENINGS)
    first, second = factories.bmi(1), factories.bmi(2)

    async def scenario() -> float:
        producer = EventProducer(settings)
        try:
            await producer.publish(topic, b"S001", encode_event(first))
            os.kill(int(broker.pid_file.read_text()), signal.SIGKILL)
            pending = asyncio.ensure_future(asyncio.wait_for(
                producer.publish(topic, b"S001", encode_event(second)), timeout=60))
            await asyncio.sleep(5)
            assert not pending.done(), "the publish returned while the broker was down"
            started = time.monotonic()
            await asyncio.to_thread(broker.up, timeout=120)
            await pending
            return time.monotonic() - started
        finally:
            await producer.stop()

    asyncio.run(scenario())
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    try:
        ids = {json.loads(record.value)["event_id"] for record in consumer}
    finally:
        consumer.close()
    assert ids == {str(first.event_id), str(second.event_id)}
