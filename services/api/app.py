"""The FastAPI application factory. Nothing connects at import time; `create_api` builds an app
whose lifespan opens the connection pool (and, at the first submission, a Kafka producer)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel

from models.rules import rules_table
from services.alerts import utc_now
from services.api import alerts, guard, risk, screenings
from services.api.feed_hub import FeedHub
from services.api.session import TokenHash, api_role, user_session
from services.settings import Settings


class Me(BaseModel):
    user_id: str
    role: str
    schools: list[str]


def create_api(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The API for `settings`; `clock` is what requests take as now (tests pass a fake one)."""
    from aiokafka import AIOKafkaProducer
    from psycopg_pool import AsyncConnectionPool

    from services.web import router as web_router

    producer_lock = asyncio.Lock()
    started: list[AIOKafkaProducer] = []

    async def producer() -> AIOKafkaProducer:
        async with producer_lock:
            if not started:
                kafka = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                         enable_idempotence=True, linger_ms=0)
                await kafka.start()
                started.append(kafka)
            return started[0]

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
            for kafka in started:
                await kafka.stop()
            await pool.close()

    app = FastAPI(title="schoolhealth", version="1", lifespan=lifespan,
                  description="Counsellors' and school doctors' alert queues, single screenings, live feed, "
                              "risk rankings of the screening models. "
                              "Every endpoint but /health needs `Authorization: Bearer <token>`.")
    app.state.settings = settings
    app.state.clock = clock
    app.state.producer = producer

    @app.get("/health", tags=["ops"], summary="liveness and database reachability (no authentication)")
    async def health(request: Request) -> dict[str, str]:
        async with request.app.state.pool.connection() as conn:
            await conn.execute("SELECT 1")
        return {"status": "ok"}

    @app.get("/me", response_model=Me, tags=["users"])
    async def me(request: Request, token: TokenHash) -> Me:
        async with user_session(request, token) as session:
            rows = await session.fetch("SELECT auth.visible_schools() AS school_id ORDER BY 1")
            return Me(user_id=session.user_id, role=session.role, schools=[r["school_id"] for r in rows])

    @app.get("/rules", tags=["alerts"], summary="the alert rules in force, with versions")
    async def rules(request: Request, token: TokenHash) -> list[dict[str, Any]]:
        async with user_session(request, token):
            return list(rules_table())

    @app.get("/summary", tags=["alerts"], summary="open alerts per school (counts only, no individual record)")
    async def summary(request: Request, token: TokenHash) -> list[dict[str, Any]]:
        async with user_session(request, token) as session:
            session.require("health_office", "county_officer", "admin", "counsellor", "school_doctor")
            return await session.fetch("SELECT * FROM alerts.school_summary ORDER BY school_id")

    app.include_router(alerts.router)
    app.include_router(screenings.router)
    app.include_router(risk.router)
    app.include_router(web_router)
    guard.install(app, api_role(settings))
    return app
