"""`schoolhealth worker`: migrations, topics, then the faust app with the ingest agent."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import subprocess
from collections.abc import Sequence

from services.archive import ArchiveWriter
from services.ingest import Ingestor
from services.metrics import register_refresh_timer
from services.migrate import migrate
from services.settings import Settings
from services.topics import create_topics

log = logging.getLogger(__name__)


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], *, timeout: float = 60.0) -> None:
    """SIGTERM worker-like child processes (they commit and leave the group), SIGKILL stragglers."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def _fixed_mmap_threshold(size: int = 128 * 1024) -> None:
    """Keep glibc from raising its mmap threshold after each freed Kafka message.

    By default freeing a 200 KB message raises the threshold, so later messages come from the
    heap, which fragments and grows with the backlog; with a fixed threshold large buffers are
    mapped and unmapped, and the worker's memory stays flat.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, size)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        log.debug("mallopt unavailable; default allocator thresholds")


def run_worker(settings: Settings, *, loglevel: str = "warning") -> None:
    """Run one worker process until SIGTERM/SIGINT (a consumer-group member; start one per core)."""
    from faust import Worker

    from streams.agents import register_agents
    from streams.app import create_app
    from streams.scoring import register_scoring

    migrate(settings)
    create_topics(settings)
    app = create_app(settings)
    writer = ArchiveWriter(settings.pg_dsn("app"))
    ingestor = Ingestor(settings, writer)
    register_agents(app, settings, ingestor)
    register_scoring(app, settings)
    register_refresh_timer(app, settings)

    async def close_archive(sender: object, *args: object, **kwargs: object) -> None:
        await writer.close_quietly()

    app.on_before_shutdown.connect(close_archive)  # type: ignore[arg-type]  # mode's signal stub is narrower

    # A micro-batch allocates tens of thousands of objects that all live until it is written;
    # with the default thresholds the cyclic collector rescans them many times per batch.
    # Start-up objects are frozen out of its scans, and it runs every 50,000 allocations.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    _fixed_mmap_threshold()
    debug = bool(os.environ.get("SCHOOLHEALTH_DEBUG"))
    logging.getLogger("services").setLevel(logging.DEBUG if debug else logging.INFO)
    Worker(app, loglevel="debug" if debug else loglevel, quiet=True).execute_from_commandline()
