-- Physical-fitness tests scored by the national standard (国家学生体质健康标准, 2014 revision).
-- One row per fitness-test event: the results as measured (NULL = not measured, never 0), the
-- item scores, BMI, standard score, bonus, total and band, and the table version that scored it.
-- Append-only like the other measurements: corrections supersede, fitness_current hides them.

CREATE TABLE archive.fitness_results (
    event_id                uuid NOT NULL,
    measured_on             date NOT NULL,
    occurred_at             timestamptz NOT NULL,
    student_key             text NOT NULL,
    school_id               text NOT NULL,
    submitted_by            text NOT NULL,
    supersedes              uuid,
    screener                text NOT NULL,
    sex                     text NOT NULL CHECK (sex IN ('male', 'female')),
    grade                   smallint NOT NULL CHECK (grade BETWEEN 1 AND 12),
    attempt                 text NOT NULL CHECK (attempt IN ('first', 'retest')),
    exempt                  boolean NOT NULL,
    exemption_reason        text,
    exempt_items            text[] NOT NULL DEFAULT '{}',
    height_cm               numeric(5, 1),
    weight_kg               numeric(5, 1),
    vital_capacity_ml       integer,
    run_50m_s               numeric(4, 1),
    sit_and_reach_cm        numeric(4, 1),
    rope_skipping_count     smallint,
    sit_ups_count           smallint,
    shuttle_run_50m_x8_s    numeric(5, 1),
    standing_long_jump_cm   smallint,
    pull_ups_count          smallint,
    run_800m_s              numeric(5, 1),
    run_1000m_s             numeric(5, 1),
    -- Scores (NULL where the item was not measured).
    bmi                     numeric(4, 1),
    bmi_category            text,
    bmi_score               smallint,
    item_scores             jsonb NOT NULL,          -- {"run_50m": 78, ...}
    item_bonus              jsonb NOT NULL,          -- {"run_1000m": 1, ...} (items with bonus only)
    status                  text NOT NULL CHECK (status IN ('complete', 'incomplete', 'exempt')),
    missing_items           text[] NOT NULL DEFAULT '{}',
    failed_items            text[] NOT NULL DEFAULT '{}',
    standard_score          numeric(5, 2),
    bonus                   smallint NOT NULL,
    total                   numeric(5, 2),
    band                    text CHECK (band IN ('excellent', 'good', 'pass', 'fail')),
    document_only_tables    text[] NOT NULL DEFAULT '{}',
    table_version           text NOT NULL,
    reference               text NOT NULL,
    ingested_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, measured_on)
);
CREATE INDEX fitness_student ON archive.fitness_results USING hash (student_key);
CREATE INDEX fitness_school ON archive.fitness_results (school_id, measured_on);
CREATE INDEX fitness_supersedes ON archive.fitness_results (supersedes) WHERE supersedes IS NOT NULL;

CREATE VIEW archive.fitness_current AS
    SELECT f.* FROM archive.fitness_results f
    WHERE NOT EXISTS (SELECT 1 FROM archive.fitness_results c WHERE c.supersedes = f.event_id);

-- The year's result per student (rules.csv "retest"): the earliest first test, or the earliest
-- retest after it when the first test was rated fail. School years start on 1 September.
CREATE VIEW archive.fitness_year AS
WITH tests AS (
    SELECT f.*, CASE WHEN extract(month FROM measured_on) >= 9 THEN extract(year FROM measured_on)
                     ELSE extract(year FROM measured_on) - 1 END::int AS school_year
    FROM archive.fitness_current f
), firsts AS (
    SELECT DISTINCT ON (student_key, school_year) *
    FROM tests WHERE attempt = 'first'
    ORDER BY student_key, school_year, measured_on, occurred_at, event_id
), retests AS (
    SELECT DISTINCT ON (r.student_key, r.school_year) r.*
    FROM tests r JOIN firsts f ON f.student_key = r.student_key AND f.school_year = r.school_year
    WHERE r.attempt = 'retest' AND f.band = 'fail' AND r.measured_on >= f.measured_on
    ORDER BY r.student_key, r.school_year, r.measured_on, r.occurred_at, r.event_id
), orphan_retests AS (
    SELECT DISTINCT ON (student_key, school_year) *
    FROM tests t WHERE attempt = 'retest'
      AND NOT EXISTS (SELECT 1 FROM firsts f WHERE f.student_key = t.student_key AND f.school_year = t.school_year)
    ORDER BY student_key, school_year, measured_on, occurred_at, event_id
)
SELECT * FROM retests
UNION ALL
SELECT f.* FROM firsts f
WHERE NOT EXISTS (SELECT 1 FROM retests r WHERE r.student_key = f.student_key AND r.school_year = f.school_year)
UNION ALL
SELECT * FROM orphan_retests;

DO $fitness$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    EXECUTE format('GRANT SELECT, INSERT ON archive.fitness_results TO %I', app);
    EXECUTE format('GRANT SELECT ON archive.fitness_current, archive.fitness_year TO %I', app);
    EXECUTE format('GRANT SELECT ON archive.fitness_results, archive.fitness_current, archive.fitness_year TO %I', api);
    ALTER VIEW archive.fitness_current SET (security_invoker = true);
    ALTER VIEW archive.fitness_year SET (security_invoker = true);
    ALTER TABLE archive.fitness_results ENABLE ROW LEVEL SECURITY;
    EXECUTE format('CREATE POLICY app_all ON archive.fitness_results TO %I USING (true) WITH CHECK (true)', app);
    -- School doctors (who follow up with the PE teacher) and school leads of the school.
    EXECUTE format($p$CREATE POLICY api_read ON archive.fitness_results FOR SELECT TO %I USING (
        (SELECT auth.sees_all())
        OR ('school_doctor' IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR school_id IN (SELECT auth.lead_schools()))$p$, api);

    -- TimescaleDB where installed: a hypertable by test date (no columnstore, which TimescaleDB
    -- refuses together with row-level security). Plain PostgreSQL keeps the same table.
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('archive.fitness_results', by_range('measured_on', INTERVAL '1 year'),
                                  migrate_data => true);
    END IF;
END
$fitness$;
