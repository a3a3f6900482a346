"""Server-rendered pages for school doctors and counsellors, mounted into the API app at `/web`.

Pages run every query through the API's per-request database session (`user_session`), so roles
and school scoping are enforced by PostgreSQL's row-level security exactly as for the API.
"""

from services.web.pages import router

__all__ = ["router"]
