-- Screening models (issue 5): trained versions with their artifact, metrics and model card, and
-- the latest risk score of each student per model. At most one active version per model name;
-- the scorer polls the active version each pass, so activating a version needs no restart.

CREATE SCHEMA IF NOT EXISTS ml;

CREATE TABLE ml.model_versions (
    version_id     bigserial PRIMARY KEY,
    name           text NOT NULL CHECK (name IN ('myopia_onset', 'overweight', 'depression')),
    version        text NOT NULL,
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    artifact_path  text,
    -- The skops bytes themselves, so every worker can load the version without a shared disk.
    artifact       bytea NOT NULL,
    metrics        jsonb NOT NULL,
    card_markdown  text NOT NULL,
    active         boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    activated_at   timestamptz,
    UNIQUE (name, version)
);
CREATE UNIQUE INDEX model_versions_one_active ON ml.model_versions (name) WHERE active;

-- Latest score per student and model (a scoring pass replaces it). Scores rank students for
-- review; they are not diagnoses.
CREATE TABLE ml.risk_scores (
    student_key  text NOT NULL CHECK (student_key ~ '^[0-9a-f]{64}$'),
    school_id    text NOT NULL,
    model        text NOT NULL,
    version      text NOT NULL,
    score        real NOT NULL CHECK (score BETWEEN 0 AND 1),
    scored_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (student_key, model)
);
CREATE INDEX risk_scores_school ON ml.risk_scores (school_id, model, score DESC);

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA ml TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON ml.model_versions TO %I', app);
    -- Only the active flag changes after registration; artifacts and metrics are immutable.
    EXECUTE format('GRANT UPDATE (active, activated_at) ON ml.model_versions TO %I', app);
    EXECUTE format('GRANT USAGE ON SEQUENCE ml.model_versions_version_id_seq TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ml.risk_scores TO %I', app);
END
$grants$;
