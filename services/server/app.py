"""The FastAPI application factory. Nothing connects at import time; `create_api` builds an app
whose lifespan opens the connection pool (and, at the first submission, a Kafka producer).

It is the one place where the API (`services.api`) and the web pages (`services.web`) meet: both
are mounted here, and neither imports the other."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from services.access.session import api_role
from services.alerts.feed_hub import FeedHub
from services.api import routers as api_routers
from services.platform.clock import utc_now
from services.platform.kafka import EventProducer
from services.platform.settings import Settings
from services.server import guard


def create_api(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The API for `settings`; `clock` is what requests take as now (tests pass a fake one)."""
    from psycopg_pool import AsyncConnectionPool

    from services.web import router as web_router

    # Started at the first submission, not in the lifespan: the API serves queues without Kafka.
    producer = EventProducer(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(settings.pg_dsn("app"), min_size=1, max_size=8,
                                                             open=False, kwargs={"connect_timeout": 5})
        await pool.open()
        app.state.pool = pool
        hub = FeedHub(settings.pg_dsn("app"))
        await hub.start()
        app.state.feed_hub = hub

        async def sweep_uploads_forever() -> None:
            from services.web.pages import UPLOAD_SWEEP_SECONDS, sweep_uploads

            while True:
                await asyncio.sleep(getattr(app.state, "upload_sweep_seconds", UPLOAD_SWEEP_SECONDS))
                sweep_uploads(app.state)

        sweeper = asyncio.create_task(sweep_uploads_forever(), name="upload-sweeper")
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            from services.web.pages import sweep_uploads

            sweep_uploads(app.state, everything=True)
            await hub.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(title="schoolhealth", version="1", lifespan=lifespan,
                  description="Counsellors' and school doctors' alert queues, single screenings, live feed, "
                              "risk rankings of the screening models. "
                              "Every endpoint but /health needs `Authorization: Bearer <token>`.")
    app.state.settings = settings
    app.state.clock = clock
    app.state.producer = producer

    for router in api_routers:
        app.include_router(router)
    app.include_router(web_router)
    guard.install(app, api_role(settings))
    return app
