"""The periodic scoring pass: wiring only. `services.screening_models.service.Scorer` does the work."""

from __future__ import annotations

import asyncio
import logging

import faust

from services.platform.settings import Settings
from services.screening_models.service import ArtifactError, Scorer

log = logging.getLogger(__name__)


def register_scoring(app: faust.App, settings: Settings) -> None:
    """Score current students every `scoring_interval_seconds`, one worker of the group at a time.

    The pass is synchronous (psycopg, scikit-learn), so it runs in a thread and never blocks the
    ingest agents. The scorer polls the active model versions at the start of each pass, so a
    newly activated version is used from the next pass on, without restarting the worker.
    """
    scorer = Scorer(settings)

    # Not `on_leader`: the app runs with the leader topic disabled, so no worker would ever be the
    # leader. The scorer's advisory lock and freshness check keep workers from scoring together.
    @app.timer(interval=settings.scoring_interval_seconds)  # type: ignore[untyped-decorator]  # faust
    async def score_current_students() -> None:
        try:
            written = await asyncio.to_thread(
                scorer.run_pass, min_interval_seconds=settings.scoring_interval_seconds * 0.9
            )
        except ArtifactError:
            # A tampered or untrusted artifact is refused; ingest goes on, the scores go stale.
            log.exception("screening model refused; scores not updated")
            return
        except Exception:
            log.exception("scoring pass failed; retrying at the next interval")
            return
        log.info("scoring pass wrote %d scores with %s", written, scorer.loaded_versions)
