"""The periodic scoring pass: wiring only. `services.screening.Scorer` does the work."""

from __future__ import annotations

import asyncio
import logging

import faust

from services.screening import ArtifactError, Scorer
from services.settings import Settings

log = logging.getLogger(__name__)


def register_scoring(app: faust.App, settings: Settings) -> None:
    """Score current students every `scoring_interval_seconds` on the group leader only.

    The pass is synchronous (psycopg, scikit-learn), so it runs in a thread and never blocks the
    ingest agents. The scorer polls the active model versions at the start of each pass, so a
    newly activated version is used from the next pass on, without restarting the worker.
    """
    scorer = Scorer(settings)

    @app.timer(interval=settings.scoring_interval_seconds, on_leader=True)  # type: ignore[untyped-decorator]  # faust
    async def score_current_students() -> None:
        try:
            written = await asyncio.to_thread(scorer.run_pass)
        except ArtifactError:
            # A tampered or untrusted artifact is refused; ingest goes on, the scores go stale.
            log.exception("screening model refused; scores not updated")
            return
        except Exception:
            log.exception("scoring pass failed; retrying at the next interval")
            return
        log.info("scoring pass wrote %d scores with %s", written, scorer.loaded_versions)
