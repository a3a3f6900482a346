"""The HTTP API (FastAPI): alert queues, single screenings, a live feed. `create_api(settings)` builds it."""

from services.api.app import create_api

__all__ = ["create_api"]
