"""Live feeds against a user who opens too many: more feeds than PostgreSQL has connections, while
the worker and the alert service keep writing. One LISTEN connection per API process serves them
all; the cluster keeps its connections, the pipeline keeps archiving, the feeds keep delivering."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from kafka import KafkaProducer

from models.codecs import encode_event
from models.topics import PSYCH_SURVEYS
from services.access.users import add_user
from services.platform.settings import Settings
from tests import factories
from tests.integration.conftest import WorkerProcess, count, wait_for
from tests.integration.services.alerts.test_alerts_flow import AlertService
from tests.integration.web_client import api_process

pytestmark = pytest.mark.integration

PER_USER = 10  # services.alerts.feed_hub.MAX_FEEDS_PER_USER


def _cluster_connections(settings: Settings) -> tuple[int, int]:
    """Connections to this test's database, and the cluster's max_connections."""
    with psycopg.connect(settings.pg_dsn("admin"), connect_timeout=5) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),"
                           " current_setting('max_connections')::int").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_more_feeds_than_postgres_connections(
        isolated: Settings, start_worker: Callable[[], WorkerProcess], tmp_path: Path) -> None:
    settings = isolated
    used_before, max_connections = _cluster_connections(settings)
    feeds_wanted = max_connections + 20
    users = -(-feeds_wanted // PER_USER)
    tokens = [add_user(settings, f"c-{i:03d}", "counsellor", schools=["SA01"]) for i in range(users)]
    worker = start_worker()
    alerts = AlertService(settings, tmp_path / "alerts.log")
    stop = threading.Event()
    produced = [0]

    def keep_writing() -> None:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        try:
            while not stop.is_set():
                n = produced[0]
                event = factories.survey(n, school="SA01", answers=[2, 2, 2, 2, 2, 2, 2, 2, 2])
                producer.send(settings.topic(PSYCH_SURVEYS), key=b"SA01", value=encode_event(event))
                producer.flush()
                produced[0] += 1
                time.sleep(0.2)
        finally:
            producer.close()

    writer = threading.Thread(target=keep_writing, daemon=True)
    try:
        with api_process(settings, tmp_path / "api.log") as (url, _):
            async def run() -> tuple[int, int, list[int], int]:
                limits = httpx.Limits(max_connections=feeds_wanted + 50, max_keepalive_connections=0)
                timeout = httpx.Timeout(30.0, read=120.0)
                async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
                    connected = 0
                    received = [0] * feeds_wanted
                    streams = []

                    async def open_feed(index: int) -> None:
                        nonlocal connected
                        token = tokens[index // PER_USER]
                        request = client.build_request("GET", "/alerts/feed",
                                                       headers={"Authorization": f"Bearer {token}"})
                        response = await client.send(request, stream=True)
                        assert response.status_code == 200, await response.aread()
                        streams.append(response)
                        lines = response.aiter_lines()
                        async for line in lines:
                            if line.startswith(": connected"):
                                connected += 1
                                break
                        async for line in lines:
                            if line.startswith("data: "):
                                received[index] += 1
                                if received[index] >= 2:
                                    return

                    tasks = [asyncio.create_task(open_feed(i)) for i in range(feeds_wanted)]
                    deadline = time.monotonic() + 120
                    while connected < feeds_wanted and time.monotonic() < deadline:  # noqa: ASYNC110  (a count, not an event)
                        await asyncio.sleep(0.5)
                    # One more for a user who already has PER_USER open: refused, not a new connection.
                    extra = await client.get("/alerts/feed", headers={"Authorization": f"Bearer {tokens[0]}"})
                    in_use, _ = await asyncio.to_thread(_cluster_connections, settings)
                    writer.start()
                    await asyncio.wait(tasks, timeout=180)
                    for task in tasks:
                        if not task.done():
                            task.cancel()
                    for response in streams:
                        await response.aclose()
                    return connected, extra.status_code, received, in_use

            connected, extra_status, received, in_use = asyncio.run(run())
            assert connected == feeds_wanted
            assert extra_status == 429
            # The API holds its pool (8) and one listener, whatever the number of feeds.
            assert in_use - used_before < 40, f"{in_use - used_before} new connections for {feeds_wanted} feeds"
            assert sum(1 for n in received if n >= 2) == feeds_wanted, \
                f"{sum(1 for n in received if n == 0)} feeds received nothing"
            assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        stop.set()
        writer.join(timeout=30)
        wait_for(lambda: count(settings, "SELECT count(*) FROM archive.survey_results") == produced[0],
                 timeout=120, what="every written survey archived", workers=[worker])
    finally:
        stop.set()
        alerts.stop()
