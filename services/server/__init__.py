"""The HTTP server: one FastAPI app serving the API (`services.api`) and the web pages
(`services.web`), with its lifespan (pool, feed hub, producer), request guard and a thread runner."""

from services.server.app import create_api

__all__ = ["create_api"]
