"""Server-rendered pages for school doctors and counsellors, mounted into the API app at `/web`.

Pages run every query through the API's per-request database session (`user_session`), so roles
and school scoping are enforced by PostgreSQL's row-level security exactly as for the API.
"""

from services.web.fitness_pages import router as _fitness_router
from services.web.pages import router

router.include_router(_fitness_router)

__all__ = ["router"]
