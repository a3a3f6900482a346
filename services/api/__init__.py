"""The HTTP API (FastAPI routers, HTTP only): alert queues, single screenings, a live feed, risk
rankings. Each route calls a domain package; `services.server.create_api` mounts `routers`."""

from services.api import alert_routes, core_routes, risk_routes, screening_routes

routers = [core_routes.router, alert_routes.router, screening_routes.router, risk_routes.router]

__all__ = ["routers"]
