"""Screening models against the archive: training sets from SQL, training, the registry, scoring.

The pure parts (features, labels, split, metrics, model card) live in `models.screening`; this
adapter reads the archive into `StudentHistory` values, fits and calibrates scikit-learn models,
writes them with skops (never pickle), records and checks their sha256, keeps versions in
`ml.model_versions` and writes scores to `ml.risk_scores`.

Loading an artifact refuses any type outside `TRUSTED_TYPES`, a list reviewed by hand from
`skops.io.get_untrusted_types` on the artifacts this module writes; `trusted=True` is never used.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from models.identity import student_key
from models.school_year import school_year
from models.screening import (
    FEATURE_NAMES,
    TASKS,
    CounsellingOutcome,
    GrowthObservation,
    ModelCard,
    SampleSet,
    StatusObservation,
    StudentHistory,
    SurveyObservation,
    Task,
    VisionObservation,
    build_samples,
    calibration_bins,
    evaluate,
    subgroup_metrics,
    task,
    time_split,
)
from services.platform.settings import Settings

__all__ = [
    "TRUSTED_TYPES",
    "ActiveVersion",
    "ArtifactError",
    "Scorer",
    "activate_version",
    "active_versions",
    "dump_artifact",
    "iter_histories",
    "load_artifact",
    "read_truth",
    "register_version",
    "score_students",
    "train_all",
    "train_task",
]

log = logging.getLogger(__name__)

#: Types outside skops' defaults that our artifacts hold, reviewed: scikit-learn's calibration
#: wrappers and the gradient-boosting tree predictor, plain data holders with no code to run.
TRUSTED_TYPES: Final[tuple[str, ...]] = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

ALGORITHM: Final = (
    "scikit-learn HistGradientBoostingClassifier of depth-2 trees (300 iterations at most, learning rate "
    "0.05, at least 50 samples a leaf, L2 1.0, early stopping on a 10% validation split; missing values "
    "handled natively)"
)
CALIBRATION: Final = "CalibratedClassifierCV, Platt (sigmoid) scaling, 3-fold"
_HISTORY_BATCH: Final = 5000
_SCORING_LOCK: Final = 0x5C400_2  # arbitrary, constant: "schoolhealth scoring pass"

LIMITATIONS: Final[tuple[str, ...]] = (
    "Labels are the next screening's classification (acuity plus non-cycloplegic SE; BMI against WS/T 586; "
    "PHQ-A >= 10), not a clinical diagnosis; a screening error in the label year is learnt as truth.",
    "Only students with both screenings are labelled: those who left, transferred out of the province or "
    "missed a screening are not represented, and may differ.",
    "Special-group status is as recorded on the health record at the time; under-recording hides the "
    "students these groups are meant to protect.",
    "Depression labels take the counsellor's finding where a depression or self-harm alert of the label term "
    "was closed with one; such findings exist only for students whose answers raised an alert, so they mostly "
    "correct positive screens (and add self-harm answers below the cut-off), and they are as good as the "
    "assessment behind them. The card's label sources say how many labels came from each.",
    "A model trained on the synthetic province says nothing about real students; retrain on the real archive "
    "and read the subgroup table before use.",
    "Subgroups with few positives have unstable metrics; n/a means the AUC is undefined there.",
)


class ArtifactError(RuntimeError):
    """An artifact failed its sha256 check or holds types that are not on the reviewed list."""


# --- Artifacts ----------------------------------------------------------------------------------


def dump_artifact(model: object) -> tuple[bytes, str]:
    """The skops bytes of `model` and their sha256 hex."""
    import skops.io

    data: bytes = skops.io.dumps(model)
    return data, hashlib.sha256(data).hexdigest()


def load_artifact(data: bytes, *, expected_sha256: str) -> Any:
    """Load skops bytes after checking their sha256 and that every type is on the reviewed list."""
    import skops.io

    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise ArtifactError(f"artifact sha256 {digest} does not match the recorded {expected_sha256}")
    untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ArtifactError(f"artifact holds types that are not trusted: {', '.join(untrusted)}")
    return skops.io.loads(data, trusted=list(TRUSTED_TYPES))


# --- Reading the archive ------------------------------------------------------------------------


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]  # numeric/real columns


def load_urban_by_school(conn: psycopg.Connection[Any]) -> dict[str, bool]:
    return {sid: setting == "urban" for sid, setting in conn.execute(
        "SELECT school_id, urban_rural FROM archive.schools")}


def _histories_for(conn: psycopg.Connection[Any], keys: Sequence[str]) -> list[StudentHistory]:
    """The full history of each of `keys`, corrected rows only (the *_current views).

    The keys are joined (`IN (SELECT unnest(...))`), not filtered with `= ANY(...)`: on TimescaleDB's
    columnstore an `= ANY` of thousands of keys becomes a min/max test per key on every compressed
    batch (the demo's 4,000 students took minutes per query; the join, 0.6 s).
    """
    vision: dict[str, list[VisionObservation]] = defaultdict(list)
    growth: dict[str, list[GrowthObservation]] = defaultdict(list)
    surveys: dict[str, list[SurveyObservation]] = defaultdict(list)
    status: dict[str, list[StatusObservation]] = defaultdict(list)
    for row in conn.execute(
        "SELECT student_key, measured_on, school_id, ucva_right, ucva_left, se_right, se_left, wears_glasses,"
        " screening_myopia FROM archive.vision_current WHERE student_key IN (SELECT unnest(%s::text[]))"
        " ORDER BY measured_on",
        (list(keys),),
    ):
        vision[row[0]].append(VisionObservation(
            measured_on=row[1], school_id=row[2], ucva_right=float(row[3]), ucva_left=float(row[4]),
            se_right=_float(row[5]), se_left=_float(row[6]), wears_glasses=row[7], screening_myopia=row[8],
        ))
    for row in conn.execute(
        "SELECT student_key, measured_on, school_id, bmi_for_age_z, height_for_age_z, wst586"
        " FROM archive.growth_current WHERE student_key IN (SELECT unnest(%s::text[])) ORDER BY measured_on",
        (list(keys),),
    ):
        growth[row[0]].append(GrowthObservation(
            measured_on=row[1], school_id=row[2], bmi_z=_float(row[3]), height_z=_float(row[4]), wst586=row[5],
        ))
    for row in conn.execute(
        "SELECT student_key, answered_on, school_id, instrument, total, positive_screen, item_answers"
        " FROM archive.survey_current WHERE student_key IN (SELECT unnest(%s::text[]))"
        " AND instrument IN ('phq-a', 'gad-7')"
        " ORDER BY answered_on",
        (list(keys),),
    ):
        surveys[row[0]].append(SurveyObservation(
            answered_on=row[1], school_id=row[2], instrument=row[3], total=row[4], positive_screen=row[5],
            item_answers=None if row[6] is None else tuple(row[6]),
        ))
    for row in conn.execute(
        "SELECT h.student_key, h.effective_on, CASE WHEN h.action = 'transfer' THEN h.to_school_id"
        " ELSE h.school_id END, h.grade, h.boarding, h.left_behind, h.disability"
        " FROM archive.student_history h WHERE h.student_key = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM archive.student_history c WHERE c.supersedes = h.event_id)"
        " ORDER BY h.effective_on, h.occurred_at",
        (list(keys),),
    ):
        status[row[0]].append(StatusObservation(
            effective_on=row[1], school_id=row[2], grade=row[3], boarding=row[4], left_behind=row[5],
            disability=row[6],
        ))
    # Closed counselling alerts and what the counsellor found: labels for the depression model.
    counselling: dict[str, list[CounsellingOutcome]] = defaultdict(list)
    for row in conn.execute(
        "SELECT student_key, observed_on, concern, state, outcome FROM alerts.alerts"
        " WHERE student_key = ANY(%s) AND team = 'counselling' AND state IN ('resolved', 'referred')"
        " ORDER BY observed_on, alert_id",
        (list(keys),),
    ):
        counselling[row[0]].append(CounsellingOutcome(observed_on=row[1], concern=row[2], state=row[3],
                                                      outcome=row[4]))
    people = conn.execute(
        "SELECT student_key, sex, birth_date FROM archive.students WHERE student_key = ANY(%s) ORDER BY student_key",
        (list(keys),),
    ).fetchall()
    return [
        StudentHistory(
            student_key=key, sex=sex, birth_date=born, vision=tuple(vision[key]), growth=tuple(growth[key]),
            surveys=tuple(surveys[key]), status=tuple(status[key]), counselling=tuple(counselling[key]),
        )
        for key, sex, born in people
    ]


def iter_histories(
    conn: psycopg.Connection[Any], *, batch: int = _HISTORY_BATCH, active_only: bool = False
) -> Iterator[tuple[list[StudentHistory], dict[str, str]]]:
    """Histories in batches of `batch` students (keyset order), with each student's current school."""
    after = ""
    while True:
        rows = conn.execute(
            "SELECT student_key, school_id FROM archive.students WHERE student_key > %s"
            + (" AND status = 'active'" if active_only else "")
            + " ORDER BY student_key LIMIT %s",
            (after, batch),
        ).fetchall()
        if not rows:
            return
        after = rows[-1][0]
        yield _histories_for(conn, [key for key, _ in rows]), dict(rows)


def _archive_years(conn: psycopg.Connection[Any]) -> dict[str, int | None]:
    """The newest school year holding each kind of screening (None when there is none)."""
    row = conn.execute(
        "SELECT (SELECT max(measured_on) FROM archive.vision_screenings),"
        " (SELECT max(measured_on) FROM archive.growth_screenings),"
        " (SELECT max(answered_on) FROM archive.survey_results WHERE instrument = 'phq-a'),"
        " (SELECT min(measured_on) FROM archive.growth_screenings)"
    ).fetchone()
    assert row is not None
    vision, growth, phq, first = (None if d is None else school_year(d) for d in row)
    return {"myopia_onset": vision, "overweight": growth, "depression": phq, "first": first}


# --- Truth (the synthetic generator's true probabilities) ---------------------------------------


def read_truth(path: Path, secret: bytes) -> dict[str, dict[tuple[str, int], float]]:
    """truth.csv as {truth column: {(student_key, school year): probability}}; blanks left out."""
    columns = [t.truth_column for t in TASKS]
    result: dict[str, dict[tuple[str, int], float]] = {column: {} for column in columns}
    keys: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            number = row["student_number"]
            key = keys.get(number)
            if key is None:
                key = keys[number] = student_key(secret, number)
            year = int(row["school_year"])
            for column in columns:
                if row[column]:
                    result[column][(key, year)] = float(row[column])
    return result


# --- Training -----------------------------------------------------------------------------------


def _new_model(seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Shallow trees: on a few thousand students deeper ones (15 leaves) fit the training years
    # better and the test year worse (myopia test AUC 0.717 against 0.734 on the synthetic province).
    booster = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.05, max_depth=2, min_samples_leaf=50, l2_regularization=1.0,
        early_stopping=True, validation_fraction=0.1, random_state=seed,
    )
    return CalibratedClassifierCV(booster, method="sigmoid", cv=3)


def _one_thread() -> Any:
    # OpenMP threads in the gradient boosting spin against each other on a shared, busy machine
    # (measured: 17 s against 0.7 s for the same fit); the data are small enough for one core.
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _positive_probability(model: Any, features: np.ndarray) -> np.ndarray:
    with _one_thread():
        probabilities = model.predict_proba(features)
    column = list(model.classes_).index(True)
    return np.asarray(probabilities[:, column], dtype=np.float64)


@dataclass(slots=True, kw_only=True)
class TrainedModel:
    task: Task
    model: Any
    card: ModelCard
    artifact: bytes
    sha256: str
    path: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)


def train_task(
    task: Task,
    samples: SampleSet,
    *,
    version: str | None = None,
    truth: Mapping[tuple[str, int], float] | None = None,
    seed: int = 20251,
) -> TrainedModel:
    """Fit, calibrate and evaluate one model with the time-based split; the card carries the numbers.

    The version defaults to the UTC time and the artifact's sha256 prefix.
    """
    train_mask, test_mask = time_split(samples.origin_years)
    train, test = samples.subset(train_mask), samples.subset(test_mask)
    if train.labels.all() or not train.labels.any():
        raise ValueError(f"{task.name}: the training years hold only one outcome; nothing to learn")
    with _one_thread():
        model = _new_model(seed).fit(train.features, train.labels)
    train_scores = _positive_probability(model, train.features)
    test_scores = _positive_probability(model, test.features)

    true_risk = model_on_truth = None
    if truth is not None:
        known = [truth.get((key, int(year)), math.nan) for key, year in zip(test.student_keys, test.origin_years,
                                                                                 strict=True)]
        true_p = np.asarray(known, dtype=np.float64)
        has = ~np.isnan(true_p)
        if has.any():
            true_risk = evaluate(test.labels[has], true_p[has])
            model_on_truth = evaluate(test.labels[has], test_scores[has])

    artifact, digest = dump_artifact(model)
    card = ModelCard(
        name=task.name,
        version=version or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{digest[:8]}",
        title=task.title,
        label=task.label_text,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        algorithm=ALGORITHM,
        calibration_method=CALIBRATION,
        features=FEATURE_NAMES,
        train_years=tuple(sorted({int(y) for y in train.origin_years})),
        test_year=int(test.origin_years[0]),
        train=evaluate(train.labels, train_scores),
        test=evaluate(test.labels, test_scores),
        calibration=calibration_bins(test.labels, test_scores),
        subgroups=subgroup_metrics(test.labels, test_scores, test.groups),
        true_risk=true_risk,
        model_on_true_risk_rows=model_on_truth,
        sha256=digest,
        limitations=LIMITATIONS,
        label_sources=samples.label_source_counts(),  # the train and test rows together
    )
    return TrainedModel(task=task, model=model, card=card, artifact=artifact, sha256=digest)


def build_training_sets(settings: Settings) -> dict[str, SampleSet]:
    """Labelled samples of every task from the whole archive, every origin year that has a next year."""
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        urban = load_urban_by_school(conn)
        years = _archive_years(conn)
        parts: dict[str, list[SampleSet]] = {t.name: [] for t in TASKS}
        for histories, _ in iter_histories(conn):
            for t in TASKS:
                last, first = years[t.name], years["first"]
                if last is None or first is None:
                    continue
                parts[t.name].append(build_samples(histories, t, range(first, last), urban))
    return {name: _concatenate(sets) for name, sets in parts.items()}


def _concatenate(sets: Sequence[SampleSet]) -> SampleSet:
    if not sets:
        return SampleSet(features=np.empty((0, len(FEATURE_NAMES))), labels=np.empty(0, dtype=np.bool_),
                         student_keys=(), origin_years=np.empty(0, dtype=np.int64), groups={})
    return SampleSet(
        features=np.concatenate([s.features for s in sets]),
        labels=np.concatenate([s.labels for s in sets]),
        student_keys=tuple(k for s in sets for k in s.student_keys),
        origin_years=np.concatenate([s.origin_years for s in sets]),
        groups={name: tuple(v for s in sets for v in s.groups[name]) for name in sets[0].groups},
        label_sources=tuple(source for s in sets for source in s.label_sources),
    )


def train_all(
    settings: Settings, *, out_dir: Path, truth_csv: Path | None = None, activate: bool = True
) -> list[ModelCard]:
    """Train the three screening models from the archive, write artifacts and cards, register them.

    Each model is written to `out_dir` as `<name>-<version>.skops` with its card as `.md` and
    `.json`, stored in `ml.model_versions` and (by default) made the active version.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = read_truth(truth_csv, settings.student_key_secret.get_secret_value().encode()) if truth_csv else None
    sets = build_training_sets(settings)
    cards: list[ModelCard] = []
    for t in TASKS:
        samples = sets[t.name]
        if not len(samples):
            log.warning("no labelled samples for %s; not trained", t.name)
            continue
        trained = train_task(t, samples, truth=None if truth is None else truth[t.truth_column])
        card, version = trained.card, trained.card.version
        base = out_dir / f"{t.name}-{version}"
        path = base.with_suffix(".skops")
        path.write_bytes(trained.artifact)
        base.with_suffix(".md").write_text(card.to_markdown(), encoding="utf-8")
        base.with_suffix(".json").write_text(card.to_json(), encoding="utf-8")
        with psycopg.connect(settings.pg_dsn("app")) as conn:
            register_version(conn, card, trained.artifact, path=path)
            if activate:
                activate_version(conn, t.name, version)
        log.info("trained %s %s: test AUC %s", t.name, version, card.test.roc_auc)
        cards.append(card)
    return cards


# --- The registry -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveVersion:
    version_id: int
    name: str
    version: str
    sha256: str


def register_version(conn: psycopg.Connection[Any], card: ModelCard, artifact: bytes, *,
                     path: Path | None = None) -> int:
    """Store a trained version (inactive); returns its version_id. The sha256 is computed here."""
    digest = hashlib.sha256(artifact).hexdigest()
    if card.sha256 and card.sha256 != digest:
        raise ArtifactError(f"card says sha256 {card.sha256}, artifact is {digest}")
    row = conn.execute(
        "INSERT INTO ml.model_versions (name, version, sha256, artifact_path, artifact, metrics, card_markdown)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING version_id",
        (card.name, card.version, digest, None if path is None else str(path), artifact,
         Jsonb(json.loads(card.to_json())), card.to_markdown()),
    ).fetchone()
    assert row is not None
    return int(row[0])


def activate_version(conn: psycopg.Connection[Any], name: str, version: str) -> None:
    """Make `version` the one active version of `name` (one transaction: never zero or two active)."""
    with conn.transaction():
        found = conn.execute(
            "SELECT version_id FROM ml.model_versions WHERE name = %s AND version = %s FOR UPDATE", (name, version)
        ).fetchone()
        if found is None:
            raise LookupError(f"no version {version!r} of model {name!r}")
        conn.execute("UPDATE ml.model_versions SET active = false WHERE name = %s AND active", (name,))
        conn.execute("UPDATE ml.model_versions SET active = true, activated_at = now() WHERE version_id = %s",
                     (found[0],))


def active_versions(conn: psycopg.Connection[Any]) -> dict[str, ActiveVersion]:
    return {
        name: ActiveVersion(version_id=vid, name=name, version=version, sha256=sha)
        for vid, name, version, sha in conn.execute(
            "SELECT version_id, name, version, sha256 FROM ml.model_versions WHERE active")
    }


# --- Scoring ------------------------------------------------------------------------------------


class Scorer:
    """Scores current students in micro-batches with the active version of each model.

    Each pass first polls the active versions (id and sha256) and loads only what changed, so a
    version activated by `schoolhealth train` is used from the next pass on, without a restart.
    """

    def __init__(self, settings: Settings, *, batch_size: int = 2000) -> None:
        self._settings = settings
        self._batch_size = batch_size
        self._loaded: dict[str, tuple[ActiveVersion, Any]] = {}

    @property
    def loaded_versions(self) -> dict[str, str]:
        return {name: active.version for name, (active, _) in self._loaded.items()}

    def _refresh(self, conn: psycopg.Connection[Any]) -> None:
        active = active_versions(conn)
        for name in list(self._loaded):
            if name not in active:
                del self._loaded[name]
        for name, current in active.items():
            held = self._loaded.get(name)
            if held is not None and held[0].version_id == current.version_id and held[0].sha256 == current.sha256:
                continue
            row = conn.execute("SELECT artifact FROM ml.model_versions WHERE version_id = %s",
                               (current.version_id,)).fetchone()
            assert row is not None
            self._loaded[name] = (current, load_artifact(bytes(row[0]), expected_sha256=current.sha256))
            log.info("scoring %s with version %s", name, current.version)

    def run_pass(self, *, min_interval_seconds: float = 0.0) -> int:
        """One scoring pass over every active student; returns the number of scores written.

        Workers of one consumer group all run the timer; an advisory lock lets one of them score at
        a time, and a pass is skipped when the newest score is under `min_interval_seconds` old.
        """
        with psycopg.connect(self._settings.pg_dsn("app")) as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_SCORING_LOCK,)).fetchone()
            if not got or not got[0]:
                return 0
            try:
                if min_interval_seconds > 0:
                    fresh = conn.execute(
                        "SELECT EXISTS (SELECT 1 FROM ml.risk_scores"
                        " WHERE scored_at > now() - make_interval(secs => %s))",
                        (min_interval_seconds,),
                    ).fetchone()
                    conn.commit()
                    if fresh and fresh[0]:
                        return 0
                return self._score(conn)
            finally:
                conn.rollback()
                conn.execute("SELECT pg_advisory_unlock(%s)", (_SCORING_LOCK,))
                conn.commit()

    def _score(self, conn: psycopg.Connection[Any]) -> int:
        written = 0
        self._refresh(conn)
        if not self._loaded:
            return 0
        started = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]  # one row
        conn.commit()
        urban = load_urban_by_school(conn)
        years = _archive_years(conn)
        for histories, schools in iter_histories(conn, batch=self._batch_size, active_only=True):
            for name, (active, model) in self._loaded.items():
                year = years.get(name)
                if year is None:
                    continue
                samples = build_samples(histories, task(name), (year,), urban, labelled=False)
                if not len(samples):
                    continue
                scores = _positive_probability(model, samples.features)
                written += _write_scores(conn, name, active.version, keys=samples.student_keys, schools=schools,
                                         scores=scores, scored_at=started)
            conn.commit()
        for name in self._loaded:
            # Students no longer eligible (now myopic, overweight, left) keep no stale score.
            conn.execute("DELETE FROM ml.risk_scores WHERE model = %s AND scored_at < %s", (name, started))
        conn.commit()
        return written


def _write_scores(conn: psycopg.Connection[Any], model: str, version: str, *, keys: Sequence[str],
                  schools: Mapping[str, str], scores: np.ndarray, scored_at: datetime) -> int:
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS risk_scores_staging (LIKE ml.risk_scores INCLUDING DEFAULTS)"
        " ON COMMIT DELETE ROWS"
    )
    with conn.cursor().copy(
        "COPY risk_scores_staging (student_key, school_id, model, version, score, scored_at) FROM STDIN"
    ) as copy:
        for key, score in zip(keys, scores.tolist(), strict=True):
            copy.write_row((key, schools[key], model, version, min(max(score, 0.0), 1.0), scored_at))
    conn.execute(
        "INSERT INTO ml.risk_scores SELECT * FROM risk_scores_staging ON CONFLICT (student_key, model) DO UPDATE"
        " SET school_id = excluded.school_id, version = excluded.version, score = excluded.score,"
        " scored_at = excluded.scored_at"
    )
    conn.execute("DELETE FROM risk_scores_staging")
    return len(keys)


def score_students(settings: Settings) -> int:
    """Score every active student once with the active versions; returns the number of scores written."""
    return Scorer(settings).run_pass()

