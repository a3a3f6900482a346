-- Incremental indicators (issue 18): the student-year rollups become tables, recomputed per
-- affected school year instead of refreshed whole.
--
-- metrics.student_years, observations, indicator_cells, fitness_observations, fitness_cells and
-- digit_preference were materialized views (0020, 0035, 0061, 0064): every refresh recomputed
-- every school year. They are now tables with the same names, columns and indexes, so every view,
-- panel, report and test that reads them is unchanged. `metrics.recompute_rollups(years)` deletes
-- and recomputes the rows of the given school years (NULL: all of them, after emptying the tables).
--
-- What to recompute is found from metrics.dirty_years, which the archive writer fills in each
-- batch's own transaction (services.pipeline.archive_writer), one row per school year touched:
--   * a screening or survey: the school year of its date, and the one of the event it supersedes;
--   * a health record (enrolment, transfer, leave, correction): every year from the student's first
--     record onwards (the census-day record of each later year, the sex, may change);
--   * a fitness test: every year from the student's first test onwards (graduation scores read the
--     stage's earlier years).
-- The refresh deletes the rows it sees and recomputes from a later snapshot, so a batch committed
-- meanwhile is either seen by both or left for the next refresh: nothing is missed, whatever the
-- order in which transactions commit (a high-water mark on a timestamp or sequence taken before
-- commit would miss a long transaction that commits after a refresh read the mark). Rows are
-- appended without a key, so concurrent writers never wait on each other.
--
-- The data-quality dailies (growth_daily, vision_daily) stay what they are: continuous aggregates
-- on TimescaleDB (incremental by their invalidation log), materialized views on plain PostgreSQL.

CREATE TABLE metrics.dirty_years (
    school_year  integer NOT NULL,
    -- true: this year and every later one
    onwards      boolean NOT NULL DEFAULT false,
    marked_at    timestamptz NOT NULL DEFAULT now()
);

-- What the last refresh saw of what is not an event (the schools: names, counties and staffing are
-- in every year's cells: when they change the next refresh is a full one), and when it ran.
CREATE TABLE metrics.refresh_state (
    singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    schools_digest      text NOT NULL,
    last_full_at        timestamptz NOT NULL,
    last_refresh_at     timestamptz NOT NULL,
    last_mode           text NOT NULL CHECK (last_mode IN ('full', 'incremental')),
    last_years          integer[] NOT NULL
);

-- What was archived before this migration is marked too: the first refresh recomputes it all.
INSERT INTO metrics.dirty_years (school_year, onwards)
SELECT min(y), true FROM (
    SELECT min(metrics.school_year(effective_on)) FROM archive.student_history
    UNION ALL SELECT min(metrics.school_year(measured_on)) FROM archive.vision_screenings
    UNION ALL SELECT min(metrics.school_year(measured_on)) FROM archive.growth_screenings
    UNION ALL SELECT min(metrics.school_year(answered_on)) FROM archive.survey_results
    UNION ALL SELECT min(metrics.school_year(measured_on)) FROM archive.fitness_results
) first_years (y)
HAVING min(y) IS NOT NULL;

CREATE TABLE metrics.student_years_t AS TABLE metrics.student_years WITH NO DATA;
CREATE TABLE metrics.observations_t AS TABLE metrics.observations WITH NO DATA;
CREATE TABLE metrics.indicator_cells_t AS TABLE metrics.indicator_cells WITH NO DATA;
CREATE TABLE metrics.fitness_observations_t AS TABLE metrics.fitness_observations WITH NO DATA;
CREATE TABLE metrics.fitness_cells_t AS TABLE metrics.fitness_cells WITH NO DATA;
CREATE TABLE metrics.digit_preference_t AS TABLE metrics.digit_preference WITH NO DATA;

DROP VIEW reporting.digit_preference;
DROP MATERIALIZED VIEW metrics.fitness_cells;
DROP MATERIALIZED VIEW metrics.fitness_observations;
DROP MATERIALIZED VIEW metrics.indicator_cells;
DROP MATERIALIZED VIEW metrics.observations;
DROP MATERIALIZED VIEW metrics.student_years;
DROP MATERIALIZED VIEW metrics.digit_preference;

ALTER TABLE metrics.student_years_t RENAME TO student_years;
ALTER TABLE metrics.observations_t RENAME TO observations;
ALTER TABLE metrics.indicator_cells_t RENAME TO indicator_cells;
ALTER TABLE metrics.fitness_observations_t RENAME TO fitness_observations;
ALTER TABLE metrics.fitness_cells_t RENAME TO fitness_cells;
ALTER TABLE metrics.digit_preference_t RENAME TO digit_preference;

CREATE UNIQUE INDEX student_years_key ON metrics.student_years (school_year, student_key);
CREATE INDEX observations_key ON metrics.observations (school_year, metric_id);
CREATE INDEX indicator_cells_year ON metrics.indicator_cells (school_year, metric_id);
CREATE INDEX fitness_observations_key ON metrics.fitness_observations (school_year, metric_id);
CREATE INDEX fitness_cells_year ON metrics.fitness_cells (school_year, metric_id);
CREATE INDEX digit_preference_year ON metrics.digit_preference (school_year);

CREATE VIEW reporting.digit_preference AS
SELECT d.school_year, d.school_id, s.county_id, d.screener, d.quantity, d.last_digit, d.measurements,
       d.measurements::double precision
           / sum(d.measurements) OVER (PARTITION BY d.school_year, d.school_id, d.screener, d.quantity) AS share
FROM metrics.digit_preference d LEFT JOIN archive.schools s USING (school_id);

-- Recompute the rollups of school years `years` (NULL: every year, the tables emptied first).
-- The same queries as the materialized views they replace (0020, 0035, 0064), restricted to the
-- years; the date bounds let the measurement indexes and chunk exclusion do the restricting.
CREATE FUNCTION metrics.recompute_rollups(p_years integer[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    all_years boolean := p_years IS NULL;
    first_day date;
    last_day date;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('schoolhealth.metrics.refresh'));
    IF NOT all_years AND cardinality(p_years) = 0 THEN
        RETURN;
    END IF;
    IF all_years THEN
        TRUNCATE metrics.fitness_cells, metrics.fitness_observations, metrics.indicator_cells,
                 metrics.observations, metrics.student_years, metrics.digit_preference;
        first_day := '-infinity';
        last_day := 'infinity';
    ELSE
        DELETE FROM metrics.fitness_cells WHERE school_year = ANY(p_years);
        DELETE FROM metrics.fitness_observations WHERE school_year = ANY(p_years);
        DELETE FROM metrics.indicator_cells WHERE school_year = ANY(p_years);
        DELETE FROM metrics.observations WHERE school_year = ANY(p_years);
        DELETE FROM metrics.student_years WHERE school_year = ANY(p_years);
        DELETE FROM metrics.digit_preference WHERE school_year = ANY(p_years);
        first_day := make_date((SELECT min(y) FROM unnest(p_years) y), 9, 1);
        last_day := make_date((SELECT max(y) FROM unnest(p_years) y) + 1, 8, 31);
    END IF;

    INSERT INTO metrics.student_years
    WITH census_years AS (
        SELECT y AS school_year
        FROM generate_series((SELECT min(metrics.school_year(effective_on)) FROM archive.student_history),
                             (SELECT max(metrics.school_year(effective_on)) FROM archive.student_history)) y
        WHERE all_years OR y = ANY(p_years)
    ), latest AS (
        SELECT y.school_year, h.*
        FROM census_years y
        CROSS JOIN LATERAL (
            SELECT DISTINCT ON (r.student_key)
                   r.student_key, r.action, r.grade AS record_grade, r.effective_on,
                   COALESCE(r.to_school_id, r.school_id) AS school_id, r.left_behind, r.disability
            FROM archive.student_history r
            WHERE r.effective_on <= make_date(y.school_year, 9, 30)
              AND NOT EXISTS (SELECT 1 FROM archive.student_history c WHERE c.supersedes = r.event_id)
            ORDER BY r.student_key, r.effective_on DESC, r.occurred_at DESC, r.event_id DESC
        ) h
    )
    SELECT l.school_year, l.student_key, l.school_id, s.county_id, s.urban_rural, st.sex,
           (l.record_grade + l.school_year - metrics.school_year(l.effective_on))::smallint AS grade,
           l.left_behind, l.disability
    FROM latest l
    JOIN archive.schools s ON s.school_id = l.school_id
    JOIN archive.students st ON st.student_key = l.student_key
    WHERE l.action <> 'leave'
      AND l.record_grade + l.school_year - metrics.school_year(l.effective_on) BETWEEN 1 AND 9;

    INSERT INTO metrics.observations
    WITH vision AS (
        SELECT DISTINCT ON (student_key, metrics.school_year(measured_on))
               student_key, metrics.school_year(measured_on) AS school_year, screening_myopia, impairment_student
        FROM archive.vision_current
        WHERE measured_on BETWEEN first_day AND last_day
          AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
        ORDER BY student_key, metrics.school_year(measured_on), measured_on DESC, occurred_at DESC, event_id DESC
    ), plausible_growth AS (
        SELECT student_key, metrics.school_year(measured_on) AS school_year, measured_on, occurred_at, event_id,
               wst586, who_category, wst456_wasting
        FROM archive.growth_current
        WHERE flags = '{}'
          AND measured_on BETWEEN first_day AND last_day
          AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
    ), wst586 AS (
        SELECT DISTINCT ON (student_key, school_year) student_key, school_year, wst586
        FROM plausible_growth WHERE wst586 <> 'not_applicable'
        ORDER BY student_key, school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), who AS (
        SELECT DISTINCT ON (student_key, school_year) student_key, school_year, who_category
        FROM plausible_growth WHERE who_category <> 'not_applicable'
        ORDER BY student_key, school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), wasting AS (
        SELECT DISTINCT ON (student_key, school_year) student_key, school_year, wst456_wasting
        FROM plausible_growth WHERE wst456_wasting <> 'not_applicable'
        ORDER BY student_key, school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), survey AS (
        SELECT DISTINCT ON (student_key, instrument, metrics.school_year(answered_on))
               student_key, instrument, metrics.school_year(answered_on) AS school_year, literate, positive_screen
        FROM archive.survey_current
        WHERE instrument IN ('hl-student', 'phq-a', 'gad-7')
          AND answered_on BETWEEN first_day AND last_day
          AND (all_years OR metrics.school_year(answered_on) = ANY(p_years))
        ORDER BY student_key, instrument, metrics.school_year(answered_on), answered_on DESC, occurred_at DESC, event_id DESC
    ), screened AS (
        SELECT y.school_year, y.student_key,
               EXISTS (SELECT 1 FROM archive.vision_current v WHERE v.student_key = y.student_key
                       AND v.measured_on BETWEEN make_date(y.school_year, 9, 1) AND make_date(y.school_year + 1, 8, 31))
           AND EXISTS (SELECT 1 FROM archive.growth_current g WHERE g.student_key = y.student_key
                       AND g.measured_on BETWEEN make_date(y.school_year, 9, 1) AND make_date(y.school_year + 1, 8, 31))
               AS both_screenings
        FROM metrics.student_years y
        WHERE all_years OR y.school_year = ANY(p_years)
    )
    SELECT school_year, student_key, 'myopia'::text AS metric_id, screening_myopia AS positive
        FROM vision WHERE screening_myopia IS NOT NULL
    UNION ALL
    SELECT school_year, student_key, 'visual_impairment', impairment_student IN ('mild', 'moderate', 'severe')
        FROM vision WHERE impairment_student <> 'not_applicable'
    UNION ALL
    SELECT school_year, student_key, 'overweight_wst586', wst586 = 'overweight' FROM wst586
    UNION ALL
    SELECT school_year, student_key, 'obesity_wst586', wst586 = 'obesity' FROM wst586
    UNION ALL
    SELECT school_year, student_key, 'overweight_who', who_category = 'overweight' FROM who
    UNION ALL
    SELECT school_year, student_key, 'obesity_who', who_category = 'obesity' FROM who
    UNION ALL
    SELECT school_year, student_key, 'wasting', wst456_wasting IN ('mild', 'moderate_severe') FROM wasting
    UNION ALL
    SELECT school_year, student_key, 'health_literacy', literate FROM survey WHERE instrument = 'hl-student' AND literate IS NOT NULL
    UNION ALL
    SELECT school_year, student_key, 'depression_positive', positive_screen
        FROM survey WHERE instrument = 'phq-a' AND positive_screen IS NOT NULL
    UNION ALL
    SELECT school_year, student_key, 'anxiety_positive', positive_screen
        FROM survey WHERE instrument = 'gad-7' AND positive_screen IS NOT NULL
    UNION ALL
    SELECT school_year, student_key, 'screening_coverage', both_screenings FROM screened;

    INSERT INTO metrics.indicator_cells
    SELECT o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
           y.left_behind, y.disability,
           count(*)::integer AS denominator,
           count(*) FILTER (WHERE o.positive)::integer AS numerator
    FROM metrics.observations o
    JOIN metrics.student_years y USING (school_year, student_key)
    WHERE all_years OR o.school_year = ANY(p_years)
    GROUP BY o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade, y.left_behind, y.disability;

    INSERT INTO metrics.fitness_observations
    WITH tests AS (
        SELECT school_year, student_key, status, band, item_scores FROM archive.fitness_year
        WHERE all_years OR school_year = ANY(p_years)
    ), graduates AS (
        SELECT school_year, student_key, band FROM archive.fitness_graduation
        WHERE status = 'complete' AND (all_years OR school_year = ANY(p_years))
    )
    SELECT school_year, student_key, 'fitness_pass'::text AS metric_id, band IN ('pass', 'good', 'excellent') AS positive
        FROM tests WHERE status = 'complete'
    UNION ALL
    SELECT school_year, student_key, 'fitness_good_or_above', band IN ('good', 'excellent')
        FROM tests WHERE status = 'complete'
    UNION ALL
    SELECT school_year, student_key, 'fitness_excellent', band = 'excellent'
        FROM tests WHERE status = 'complete'
    UNION ALL
    SELECT t.school_year, t.student_key, 'fitness_item_' || s.key, s.value::integer >= 60
        FROM tests t CROSS JOIN LATERAL jsonb_each_text(t.item_scores) s
    UNION ALL
    SELECT school_year, student_key, 'fitness_exempt', status = 'exempt'
        FROM tests
    UNION ALL
    SELECT school_year, student_key, 'fitness_graduation_pass', band IN ('pass', 'good', 'excellent')
        FROM graduates
    UNION ALL
    SELECT school_year, student_key, 'fitness_graduation_good_or_above', band IN ('good', 'excellent')
        FROM graduates
    UNION ALL
    SELECT school_year, student_key, 'fitness_graduation_excellent', band = 'excellent'
        FROM graduates;

    INSERT INTO metrics.fitness_cells
    SELECT o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
           y.left_behind, y.disability,
           count(*)::integer AS denominator,
           count(*) FILTER (WHERE o.positive)::integer AS numerator
    FROM metrics.fitness_observations o
    JOIN metrics.student_years y USING (school_year, student_key)
    WHERE all_years OR o.school_year = ANY(p_years)
    GROUP BY o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade, y.left_behind, y.disability;

    INSERT INTO metrics.digit_preference
    SELECT metrics.school_year(measured_on) AS school_year, school_id, screener, 'height_cm'::text AS quantity,
           ((height_cm * 10)::integer % 10)::smallint AS last_digit, count(*)::integer AS measurements
    FROM archive.growth_screenings
    WHERE height_cm IS NOT NULL AND measured_on BETWEEN first_day AND last_day
      AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
    GROUP BY 1, 2, 3, 4, 5
    UNION ALL
    SELECT metrics.school_year(measured_on), school_id, screener, 'weight_kg',
           ((weight_kg * 10)::integer % 10)::smallint, count(*)::integer
    FROM archive.growth_screenings
    WHERE weight_kg IS NOT NULL AND measured_on BETWEEN first_day AND last_day
      AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
    GROUP BY 1, 2, 3, 4, 5;
END
$fn$;

-- Every rollup, every year: what `schoolhealth refresh --full` and publication run (and what
-- callers of the old function, tests among them, expect). The plain-PostgreSQL dailies too.
CREATE OR REPLACE FUNCTION metrics.refresh_rollups() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('schoolhealth.metrics.refresh'));
    PERFORM metrics.recompute_rollups(NULL);
    PERFORM metrics.refresh_dailies();
END
$fn$;

-- The data-quality dailies where they are materialized views (plain PostgreSQL, or TimescaleDB
-- without its Community licence); continuous aggregates are refreshed by their owner (services).
CREATE FUNCTION metrics.refresh_dailies() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['growth_daily', 'vision_daily'] LOOP
        IF EXISTS (SELECT 1 FROM pg_matviews WHERE schemaname = 'metrics' AND matviewname = name) THEN
            EXECUTE format('REFRESH MATERIALIZED VIEW metrics.%I', name);
        END IF;
    END LOOP;
END
$fn$;

-- Fitness rollups are recomputed with the others now; kept for callers of 0061.
CREATE OR REPLACE FUNCTION metrics.refresh_fitness_rollups() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('schoolhealth.metrics.refresh'));
END
$fn$;

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    grafana text := current_setting('schoolhealth.grafana_role');
BEGIN
    EXECUTE format('GRANT SELECT ON metrics.student_years, metrics.observations, metrics.indicator_cells,'
                   ' metrics.fitness_observations, metrics.fitness_cells, metrics.digit_preference TO %I', app);
    EXECUTE format('GRANT SELECT ON reporting.digit_preference TO %I, %I', grafana, app);
    -- The writer marks, the refresh takes the marks and keeps its state.
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON metrics.dirty_years TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON metrics.refresh_state TO %I', app);
    EXECUTE 'REVOKE ALL ON FUNCTION metrics.recompute_rollups(integer[]), metrics.refresh_dailies() FROM PUBLIC';
    EXECUTE format('GRANT EXECUTE ON FUNCTION metrics.recompute_rollups(integer[]), metrics.refresh_dailies() TO %I', app);
END
$grants$;
