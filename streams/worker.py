"""`schoolhealth worker`: migrations, topics, then the faust app with the ingest agent."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import threading
from collections.abc import Callable

from services.pipeline.archive_writer import ArchiveWriter
from services.pipeline.ingest import Checkpoint
from services.platform.migrate import migrate_with_retry
from services.platform.settings import Settings
from services.platform.topics import create_topics
from services.reporting.metrics import register_refresh_timer

log = logging.getLogger(__name__)


def _fixed_mmap_threshold(size: int = 128 * 1024) -> None:
    """Keep glibc from raising its mmap threshold after each freed Kafka message.

    By default freeing a 200 KB message raises the threshold, so later messages come from the
    heap, which fragments and grows with the backlog; with a fixed threshold large buffers are
    mapped and unmapped, and the worker's memory stays flat. Measured end to end (bench/README.md,
    quiet A/B of 3 December): peak RSS 284-290 MiB with it, 303-312 without, same throughput.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, size)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        log.debug("mallopt unavailable; default allocator thresholds")


def use_event_loop(choice: str) -> None:
    """Make every event loop the worker creates from here on (faust's, and its consumer thread's)
    an `uvloop` one, or leave asyncio's default for `asyncio`."""
    if choice == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # what faust's `--loop uvloop` does
    elif choice != "asyncio":
        raise ValueError(f"event loop must be uvloop or asyncio, not {choice!r}")


def run_worker(settings: Settings, *, loglevel: str = "warning",
               archive_writer: Callable[[str], ArchiveWriter] = ArchiveWriter) -> None:
    """Run one worker process until SIGTERM/SIGINT (a consumer-group member; start one per core).

    Exits with status 1, its failing batch uncommitted, when a batch fails with an error that is
    not transient (transient broker and database errors are retried). `archive_writer` builds the
    writer from a DSN (the fault suite passes one that fails on purpose).
    """
    from faust import Worker

    from streams.agents import register_agents
    from streams.app import create_app
    from streams.scoring import register_scoring

    use_event_loop(settings.worker_event_loop)
    migrate_with_retry(settings)
    if not settings.kafka_sasl:
        # With SASL the worker's principal may not create topics: `schoolhealth topics create`,
        # signed in as the admin, creates them with the ACLs (the compose `kafka-init` step).
        create_topics(settings)
    app = create_app(settings)
    writer = archive_writer(settings.pg_dsn("app"))
    failures: list[BaseException] = []

    def on_fatal(error: BaseException) -> None:
        # Stop through faust's own shutdown (it leaves the group and commits only acked offsets,
        # which exclude the failed batch); the status is set below once it has finished.
        failures.append(error)
        os.kill(os.getpid(), signal.SIGTERM)
        # Should the shutdown hang, exit anyway: nothing unfinished was acked, so nothing is lost.
        watchdog = threading.Timer(60.0, os._exit, args=(1,))
        watchdog.daemon = True
        watchdog.start()

    register_agents(app, settings, lambda dead_letters, alerts: Checkpoint(
        settings, writer, send_dead_letters=dead_letters, send_alerts=alerts), on_fatal=on_fatal)
    register_scoring(app, settings)
    register_refresh_timer(app, settings)

    async def close_archive(sender: object, *args: object, **kwargs: object) -> None:
        await writer.close_quietly()

    app.on_before_shutdown.connect(close_archive)  # type: ignore[arg-type]  # mode's signal stub is narrower

    # A micro-batch allocates tens of thousands of objects that all live until it is written;
    # with the default thresholds the cyclic collector rescans them many times per batch.
    # Start-up objects are frozen out of its scans, and it runs every 50,000 allocations.
    # End to end without this: 21.6 % fewer events/s (bench/README.md, quiet A/B of 3 December).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    _fixed_mmap_threshold()
    debug = bool(os.environ.get("SCHOOLHEALTH_DEBUG"))
    logging.getLogger("services").setLevel(logging.DEBUG if debug else logging.INFO)
    status: int | str | None = 0
    try:
        Worker(app, loglevel="debug" if debug else loglevel, quiet=True).execute_from_commandline()
    except SystemExit as exit_:
        status = exit_.code
    if failures:
        log.error("worker stopped after a failed batch (%s); exiting with status 1", type(failures[0]).__name__)
        raise SystemExit(1)
    raise SystemExit(status)

