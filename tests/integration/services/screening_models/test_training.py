"""Training the screening models on a seeded synthetic province, registering and scoring with them."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from models.screening import MODEL_CARD_SECTIONS, TASKS
from services.devtools.seed import seed_archive
from services.platform.settings import Settings
from tests.integration.conftest import WorkerProcess, wait_for

pytestmark = pytest.mark.integration


def test_train_register_score_and_switch_versions_without_restart(isolated: Settings, tmp_path: Path) -> None:
    from services.screening_models.service import (
        ArtifactError,
        Scorer,
        activate_version,
        register_version,
        score_students,
        train_all,
    )

    started = time.monotonic()
    stats = seed_archive(isolated, students=3000, out_dir=tmp_path / "province")
    cards = train_all(isolated, out_dir=tmp_path / "models", truth_csv=stats.truth_csv)
    assert time.monotonic() - started < 90

    assert [card.name for card in cards] == [t.name for t in TASKS]
    for card in cards:
        assert card.test.n >= 300 and card.test.positives >= 30, card.name
        assert card.test.roc_auc is not None and card.test.roc_auc > 0.65, (card.name, card.test.roc_auc)
        assert card.test.pr_auc is not None and card.test.pr_auc > card.test.prevalence + 0.05, card.name
        assert card.test.brier is not None and card.test.brier < card.test.prevalence * (1 - card.test.prevalence)
        # The true risk is the ceiling; a model beating it by more than noise would mean leakage.
        assert card.auc_gap is not None and -0.03 < card.auc_gap < 0.15, (card.name, card.auc_gap)
        assert card.train_years and max(card.train_years) < card.test_year
        markdown = (tmp_path / "models" / f"{card.name}-{card.version}.md").read_text()
        for section in MODEL_CARD_SECTIONS:
            assert f"## {section}\n" in markdown, (card.name, section)
        assert "not a diagnosis" in markdown
        assert {s.group for s in card.subgroups} >= {"sex", "urban_rural", "left_behind", "boarding", "disability"}
        artifact = (tmp_path / "models" / f"{card.name}-{card.version}.skops").read_bytes()
        assert hashlib.sha256(artifact).hexdigest() == card.sha256

    with psycopg.connect(isolated.pg_dsn("app")) as conn:
        rows = conn.execute("SELECT name, version FROM ml.model_versions WHERE active").fetchall()
    active: dict[str, str] = dict(rows)
    assert active == {card.name: card.version for card in cards}

    scorer = Scorer(isolated, batch_size=700)
    written = scorer.run_pass()
    assert written > 1000
    with psycopg.connect(isolated.pg_dsn("app")) as conn:
        rows = conn.execute("SELECT model, version, count(*) FROM ml.risk_scores GROUP BY 1, 2").fetchall()
        active_students = conn.execute("SELECT count(*) FROM archive.students WHERE status = 'active'").fetchone()
    assert {(model, version) for model, version, _ in rows} == set(active.items())
    assert all(n <= active_students[0] for _, _, n in rows)  # type: ignore[index]
    assert sum(n for _, _, n in rows) == written

    # A new version of the overweight model, activated while the scorer lives on.
    overweight = next(card for card in cards if card.name == "overweight")
    artifact = (tmp_path / "models" / f"overweight-{overweight.version}.skops").read_bytes()
    newer = replace(overweight, version=f"{overweight.version}-retrained")
    with psycopg.connect(isolated.pg_dsn("app")) as conn:
        register_version(conn, newer, artifact)
        activate_version(conn, "overweight", newer.version)
        conn.commit()
        assert conn.execute("SELECT count(*) FROM ml.model_versions WHERE active").fetchone() == (3,)
    scorer.run_pass()
    assert scorer.loaded_versions["overweight"] == newer.version
    with psycopg.connect(isolated.pg_dsn("app")) as conn:
        versions = conn.execute("SELECT DISTINCT version FROM ml.risk_scores WHERE model = 'overweight'").fetchall()
    assert versions == [(newer.version,)]

    # The worker's timer scores too, and switches to a version activated while it runs.
    fast = isolated.model_copy(update={"scoring_interval_seconds": 1.0})
    worker = WorkerProcess(fast, tmp_path / "worker.log")
    try:
        with psycopg.connect(isolated.pg_dsn("app")) as conn:
            before = conn.execute("SELECT max(scored_at) FROM ml.risk_scores").fetchone()[0]  # type: ignore[index]

        def scored_after(moment: object, model: str = "depression", version: str | None = None) -> bool:
            with psycopg.connect(isolated.pg_dsn("app")) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM ml.risk_scores WHERE model = %s AND scored_at > %s"
                    " AND (%s::text IS NULL OR version = %s)", (model, moment, version, version),
                ).fetchone()
            return bool(row and row[0] > 0)

        wait_for(lambda: scored_after(before), timeout=90, what="the worker's first scoring pass", workers=[worker])
        depression = next(card for card in cards if card.name == "depression")
        again = replace(depression, version=f"{depression.version}-again")
        with psycopg.connect(isolated.pg_dsn("app")) as conn:
            register_version(conn, again, (tmp_path / "models" / f"depression-{depression.version}.skops").read_bytes())
            activate_version(conn, "depression", again.version)
        wait_for(lambda: scored_after(before, version=again.version), timeout=30,
                 what="the worker scoring with the newly activated version", workers=[worker])
        assert worker.alive()
    finally:
        worker.kill()

    # An artifact altered in the database after registration is refused, not loaded.
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        conn.execute(
            "UPDATE ml.model_versions SET artifact = artifact || '\\x00'::bytea WHERE name = 'depression' AND active"
        )
    with pytest.raises(ArtifactError, match="sha256"):
        score_students(isolated)
