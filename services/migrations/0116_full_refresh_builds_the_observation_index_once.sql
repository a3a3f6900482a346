-- The full refresh builds the observation rows' index once, after the rows (issue 18).
--
-- A full refresh empties metrics.observations and writes every school year's rows again: about 39
-- million at a million students. The table's index on (school_year, student_key) (0109, which the
-- student mode reads) was kept through that INSERT, so each row went into a B-tree of random
-- 64-character keys one by one. Measured on the 1M bench database (plain PostgreSQL 15, the
-- observations INSERT alone, as the owner, in a rolled-back transaction, both beside a CI run):
-- 435.3 s with the index kept, 247.4 s without it; the index then built in one sort in 87.7 s (1 GB of
-- maintenance_work_mem): 335.0 s against 435.3 s for the rows and their index.
-- So the full mode drops the index after its TRUNCATE and creates it again, with the same name and
-- columns, once the rows are in (and before the ANALYZE and the cells, which do not use it). It
-- is all one transaction: a reader of the table (only the refresh reads it, under the refresh
-- lock) waits for the commit as it did for the TRUNCATE. The year and student modes keep the
-- index and are unchanged.
--
-- The function is 0114's recompute_rollups with those two steps in its full mode.

SET LOCAL check_function_bodies = off;

CREATE OR REPLACE FUNCTION metrics.recompute_rollups(p_years integer[], p_by_student boolean DEFAULT false) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    all_years boolean := p_years IS NULL;
    first_day date;
    last_day date;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('schoolhealth.metrics.refresh'));
    IF p_by_student AND NOT all_years THEN
        -- The student mode (0114).
        PERFORM metrics.recompute_students(p_years);
        RETURN;
    END IF;
    IF NOT all_years AND cardinality(p_years) = 0 THEN
        RETURN;
    END IF;
    -- The row functions name this table (their student mode): it exists, here empty.
    CREATE TEMP TABLE IF NOT EXISTS dirty_pairs (student_key text NOT NULL, school_year integer NOT NULL,
                                                 PRIMARY KEY (school_year, student_key)) ON COMMIT DROP;
    TRUNCATE dirty_pairs;
    IF all_years THEN
        TRUNCATE metrics.fitness_cells, metrics.fitness_observations, metrics.indicator_cells,
                 metrics.observations, metrics.student_years, metrics.digit_preference;
        -- Built once after the rows are in (0116), not row by row while they go in.
        DROP INDEX metrics.observations_student;
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

    IF all_years THEN
        -- The tables were emptied: without fresh statistics the next statements are planned for
        -- empty tables (a merge join over an index and sorts instead of hash joins: 3 times slower).
        ANALYZE metrics.student_years;
    END IF;

    INSERT INTO metrics.observations
    SELECT * FROM metrics.observation_rows(all_years, false, p_years, first_day, last_day);

    IF all_years THEN
        -- 0109's index, sorted once (in memory at a million students: about 40 million keys).
        PERFORM set_config('maintenance_work_mem', '1GB', true);
        CREATE INDEX observations_student ON metrics.observations (school_year, student_key);
        ANALYZE metrics.observations;
    END IF;
    INSERT INTO metrics.indicator_cells
    SELECT o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
           y.left_behind, y.disability,
           count(*)::integer AS denominator,
           count(*) FILTER (WHERE o.positive)::integer AS numerator
    FROM metrics.observations o
    JOIN metrics.student_years y USING (school_year, student_key)
    WHERE (all_years OR (o.school_year = ANY(p_years) AND y.school_year = ANY(p_years)))
    GROUP BY o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade, y.left_behind, y.disability;

    INSERT INTO metrics.fitness_observations
    SELECT * FROM metrics.fitness_observation_rows(all_years, false, p_years);

    IF all_years THEN
        ANALYZE metrics.fitness_observations;
    END IF;

    INSERT INTO metrics.fitness_cells
    SELECT o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
           y.left_behind, y.disability,
           count(*)::integer AS denominator,
           count(*) FILTER (WHERE o.positive)::integer AS numerator
    FROM metrics.fitness_observations o
    JOIN metrics.student_years y USING (school_year, student_key)
    WHERE (all_years OR (o.school_year = ANY(p_years) AND y.school_year = ANY(p_years)))
    GROUP BY o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade, y.left_behind, y.disability;

    INSERT INTO metrics.digit_preference
    SELECT metrics.school_year(measured_on) AS school_year, school_id, screener, 'height_cm'::text AS quantity,
           ((height_cm * 10)::integer % 10)::smallint AS last_digit, count(*)::integer AS measurements
    FROM archive.growth_screenings g
    WHERE height_cm IS NOT NULL AND measured_on BETWEEN first_day AND last_day
      AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
    GROUP BY 1, 2, 3, 4, 5
    UNION ALL
    SELECT metrics.school_year(measured_on), school_id, screener, 'weight_kg',
           ((weight_kg * 10)::integer % 10)::smallint, count(*)::integer
    FROM archive.growth_screenings g
    WHERE weight_kg IS NOT NULL AND measured_on BETWEEN first_day AND last_day
      AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
    GROUP BY 1, 2, 3, 4, 5;
END
$fn$;
