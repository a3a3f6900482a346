"""`schoolhealth worker`: migrations, topics, then the faust app with the ingest agent."""

from __future__ import annotations

import logging
import os

from services.archive import ArchiveWriter
from services.ingest import Ingestor
from services.metrics import register_refresh_timer
from services.migrate import migrate
from services.settings import Settings
from services.topics import create_topics


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

    debug = bool(os.environ.get("SCHOOLHEALTH_DEBUG"))
    logging.getLogger("services").setLevel(logging.DEBUG if debug else logging.INFO)
    Worker(app, loglevel="debug" if debug else loglevel, quiet=True).execute_from_commandline()
