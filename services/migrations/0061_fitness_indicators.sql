-- Fitness indicators (national standard, 2014): observations and fine cells like metrics.observations
-- and metrics.indicator_cells (0020), in views of their own so that 0020's views stay untouched;
-- services.metrics reads both cell tables. The year's result per student is archive.fitness_year
-- (the retest rule); rates are over students with a complete test (no missing or exempted item),
-- per-item pass rates over students with that item measured. Wholly exempted students (免测) are in
-- no denominator.

CREATE MATERIALIZED VIEW metrics.fitness_observations AS
WITH tests AS (
    SELECT school_year, student_key, status, band, item_scores FROM archive.fitness_year
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
WITH NO DATA;
CREATE INDEX fitness_observations_key ON metrics.fitness_observations (school_year, metric_id);

CREATE MATERIALIZED VIEW metrics.fitness_cells AS
SELECT o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
       y.left_behind, y.disability,
       count(*)::integer AS denominator,
       count(*) FILTER (WHERE o.positive)::integer AS numerator
FROM metrics.fitness_observations o
JOIN metrics.student_years y USING (school_year, student_key)
GROUP BY o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade, y.left_behind, y.disability
WITH NO DATA;
CREATE INDEX fitness_cells_year ON metrics.fitness_cells (school_year, metric_id);

CREATE FUNCTION metrics.refresh_fitness_rollups() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    -- After metrics.refresh_rollups() (student_years), under the same lock.
    PERFORM pg_advisory_xact_lock(hashtext('schoolhealth.metrics.refresh'));
    REFRESH MATERIALIZED VIEW metrics.fitness_observations;
    REFRESH MATERIALIZED VIEW metrics.fitness_cells;
END
$fn$;

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
BEGIN
    EXECUTE format('GRANT SELECT ON metrics.fitness_observations, metrics.fitness_cells TO %I', app);
    EXECUTE format('REVOKE ALL ON FUNCTION metrics.refresh_fitness_rollups() FROM PUBLIC');
    EXECUTE format('GRANT EXECUTE ON FUNCTION metrics.refresh_fitness_rollups() TO %I', app);
END
$grants$;
