-- The incremental refresh reads the marked students' rows through their indexes (issue 18).
--
-- 0109's student mode ran the full refresh's statements with one more condition, "the pair is
-- marked", so each of them still read its whole school year and kept the marked pairs' rows: at a
-- million students a 1 % screening day marks about 125,000 of a year's million student-years, and
-- auto_explain of one such refresh (the 1M bench database, 0113) showed the observation rows'
-- SELECT 37.8 s (every vision, growth and survey row of the year, vision and growth twice), the
-- stored observation rows read back for the comparison (0112) 17 s (a bitmap scan of the year's
-- 9.75 million rows), the cells 9.6 s (the year's observations again, filtered by the cells'
-- students), the census 6.5 s (every health record, with two more whole scans for the census
-- years' bounds) and the digit preference 8.8 s (the year's growth screenings).
--
-- Now the student mode is a function of its own, metrics.recompute_students, whose statements start
-- from the marked pairs and reach each pair's rows through an index: a LATERAL subquery per pair,
-- kept from being flattened into a join by OFFSET 0 (PostgreSQL then runs it as a parameterised
-- index scan; flattened, the planner prefers hashing the whole year, its row estimates for a
-- temporary table's pairs being a guess):
--   * census: the pair's latest health record through student_history (student_key, occurred_at),
--     corrected or not through a new partial index on student_history (supersedes); the census
--     years' bounds from min/max(effective_on) (metrics.school_year is monotonic), one scan
--     without a function per row;
--   * observation rows (metrics.pair_observation_rows): each pair's vision, growth and survey rows
--     of its school year through the student_key hash indexes, each table read once (the coverage
--     reuses them); the rules and sorts are 0113's;
--   * the digit-preference cells through growth_screenings (school_id, measured_on), counted per
--     pair of last digits first.
-- The stored observation rows are still found as 0112 found them (see write_changed_rows), but
-- once: the cells are no longer recounted over every student of the marked students' schools (at
-- a million students, about as many student-years as the pairs, ten rows each, read again): a cell
-- is a count of observation rows of its student-years, so each pair's former rows leave the cells
-- of its former student-year and its new rows join those of its new one (apply_cell_changes): the
-- work is the pairs', whatever the size of their schools. Before and after a transfer, a pair's
-- two schools' cells change, as before.
-- The rows and cells are those 0112 computed (each rule is per student, each LATERAL reads
-- exactly the rows of its pair's school year that 0112's filters kept, and the cells stay the
-- counts of the rows: tests/integration/services/reporting/test_incremental_rollups.py compares
-- every incremental refresh with a full one). metrics.recompute_rollups keeps the full and the
-- year modes, unchanged; called with p_by_student it hands over to the new function.

SET LOCAL check_function_bodies = off;

-- A health record that corrects another: the census skips corrected records, now per student.
CREATE INDEX student_history_supersedes ON archive.student_history (supersedes) WHERE supersedes IS NOT NULL;

-- The observation rows of the pairs in pg_temp.dirty_pairs, each read through its student's index.
CREATE FUNCTION metrics.pair_observation_rows() RETURNS SETOF metrics.observations LANGUAGE sql STABLE AS $body$
    WITH vision_rows AS MATERIALIZED (
        SELECT p.school_year, v.student_key, v.measured_on, v.occurred_at, v.event_id, v.screening_myopia,
               v.impairment_student
        FROM pg_temp.dirty_pairs p
        CROSS JOIN LATERAL (
            SELECT v.student_key, v.measured_on, v.occurred_at, v.event_id, v.screening_myopia, v.impairment_student
            FROM archive.vision_current v
            WHERE v.student_key = p.student_key
              AND v.measured_on BETWEEN make_date(p.school_year, 9, 1) AND make_date(p.school_year + 1, 8, 31)
            OFFSET 0) v
    ), growth_rows AS MATERIALIZED (
        SELECT p.school_year, g.student_key, g.measured_on, g.occurred_at, g.event_id, g.flags, g.wst586,
               g.who_category, g.wst456_wasting
        FROM pg_temp.dirty_pairs p
        CROSS JOIN LATERAL (
            SELECT g.student_key, g.measured_on, g.occurred_at, g.event_id, g.flags, g.wst586, g.who_category,
                   g.wst456_wasting
            FROM archive.growth_current g
            WHERE g.student_key = p.student_key
              AND g.measured_on BETWEEN make_date(p.school_year, 9, 1) AND make_date(p.school_year + 1, 8, 31)
            OFFSET 0) g
    ), vision AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year)
               student_key, school_year, screening_myopia, impairment_student
        FROM vision_rows
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), plausible_growth AS (
        SELECT * FROM growth_rows WHERE flags = '{}'
    ), wst586 AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, wst586
        FROM plausible_growth WHERE wst586 <> 'not_applicable'
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), who AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, who_category
        FROM plausible_growth WHERE who_category <> 'not_applicable'
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), wasting AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, wst456_wasting
        FROM plausible_growth WHERE wst456_wasting <> 'not_applicable'
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), survey AS (
        SELECT DISTINCT ON (s.student_key COLLATE "C", s.instrument COLLATE "C", p.school_year)
               s.student_key, s.instrument, p.school_year, s.literate, s.positive_screen
        FROM pg_temp.dirty_pairs p
        CROSS JOIN LATERAL (
            SELECT s.student_key, s.instrument, s.answered_on, s.occurred_at, s.event_id, s.literate, s.positive_screen
            FROM archive.survey_current s
            WHERE s.student_key = p.student_key
              AND s.instrument IN ('hl-student', 'phq-a', 'gad-7')
              AND s.answered_on BETWEEN make_date(p.school_year, 9, 1) AND make_date(p.school_year + 1, 8, 31)
            OFFSET 0) s
        ORDER BY s.student_key COLLATE "C", s.instrument COLLATE "C", p.school_year, s.answered_on DESC,
                 s.occurred_at DESC, s.event_id DESC
    ), screened AS (
        -- Both screenings in the school year (any growth screening counts, plausible or not: 0095).
        SELECT y.school_year, y.student_key,
               (EXISTS (SELECT 1 FROM vision_rows v WHERE v.student_key = y.student_key AND v.school_year = y.school_year)
                AND EXISTS (SELECT 1 FROM growth_rows g WHERE g.student_key = y.student_key
                                                         AND g.school_year = y.school_year)) AS both_screenings
        FROM pg_temp.dirty_pairs p
        JOIN metrics.student_years y ON y.school_year = p.school_year AND y.student_key = p.student_key
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
$body$;

-- 0112's comparison, the pairs' stored rows kept in pg_temp.stored_rows for the cells' update
-- below. They are found by a join the planner chooses, as in 0112: a student's ten observation rows
-- lie on ten pages (the full refresh writes them metric by metric), and at a million students a
-- probe per pair through (school_year, student_key) took 4 s more than a bitmap scan of the year
-- (71.6 s against 67.6 s for the whole refresh, auto_explain on the 1M bench database).
DROP FUNCTION metrics.write_changed_rows(regclass, integer[]);
CREATE FUNCTION metrics.write_changed_rows(p_target regclass) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    ANALYZE fresh_rows;
    CREATE TEMP TABLE IF NOT EXISTS stored_rows (row_id tid, school_year integer, student_key text,
                                                 metric_id text, positive boolean) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS changed_rows (row_id tid, school_year integer, student_key text,
                                                  metric_id text, positive boolean) ON COMMIT DROP;
    TRUNCATE stored_rows, changed_rows;
    EXECUTE format($q$
        INSERT INTO stored_rows
        SELECT t.ctid, t.school_year, t.student_key, t.metric_id, t.positive
        FROM %s t JOIN dirty_pairs p ON p.school_year = t.school_year AND p.student_key = t.student_key
        WHERE t.school_year = ANY($1)$q$, p_target)
        USING ARRAY(SELECT DISTINCT school_year FROM dirty_pairs);
    ANALYZE stored_rows;
    -- row_id: a stored row to delete; student_key: a fresh row to insert; a changed value, both.
    INSERT INTO changed_rows
    SELECT o.row_id, n.school_year, n.student_key, n.metric_id, n.positive
    FROM stored_rows o
    FULL JOIN fresh_rows n
      ON n.school_year = o.school_year AND n.student_key = o.student_key AND n.metric_id = o.metric_id
    WHERE o.row_id IS NULL OR n.student_key IS NULL OR o.positive IS DISTINCT FROM n.positive;
    EXECUTE format('DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT row_id FROM changed_rows WHERE row_id IS NOT NULL))',
                   p_target);
    EXECUTE format('INSERT INTO %s (school_year, student_key, metric_id, positive)'
                   ' SELECT school_year, student_key, metric_id, positive FROM changed_rows'
                   ' WHERE student_key IS NOT NULL', p_target);
END
$fn$;

-- Bring `p_cells` (metrics.indicator_cells or metrics.fitness_cells) up to date with the pairs'
-- change, without reading any other student's rows: a cell is a count of the observation rows of
-- its student-years, so each pair takes its former rows (pg_temp.stored_rows) out of the cells of
-- its former student-year (pg_temp.former_years) and puts its new rows (pg_temp.fresh_rows) into
-- the cells of its new one (pg_temp.new_years). The cells of each (school year, metric, school)
-- with a change are taken out and grouped again with the changes (GROUP BY: NULL-safe keys); a
-- cell left without students goes, as in a full refresh.
CREATE FUNCTION metrics.apply_cell_changes(p_cells regclass) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS cell_changes (LIKE metrics.indicator_cells) ON COMMIT DROP;
    TRUNCATE cell_changes;
    INSERT INTO cell_changes
    SELECT school_year, metric_id, school_id, county_id, urban_rural, sex, grade, left_behind, disability,
           sum(students)::integer, sum(positives)::integer
    FROM (SELECT y.school_year, n.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
                 y.left_behind, y.disability, 1 AS students, (n.positive IS TRUE)::integer AS positives
          FROM fresh_rows n JOIN new_years y ON y.school_year = n.school_year AND y.student_key = n.student_key
          UNION ALL
          SELECT y.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
                 y.left_behind, y.disability, -1, -(o.positive IS TRUE)::integer
          FROM stored_rows o JOIN former_years y ON y.school_year = o.school_year AND y.student_key = o.student_key) c
    GROUP BY school_year, metric_id, school_id, county_id, urban_rural, sex, grade, left_behind, disability
    HAVING sum(students) <> 0 OR sum(positives) <> 0;
    ANALYZE cell_changes;
    EXECUTE format($q$
        WITH taken AS (
            DELETE FROM %1$s c
            WHERE (c.school_year, c.metric_id, c.school_id) IN (SELECT school_year, metric_id, school_id FROM cell_changes)
            RETURNING c.*
        )
        INSERT INTO %1$s
        SELECT school_year, metric_id, school_id, county_id, urban_rural, sex, grade, left_behind, disability,
               sum(denominator)::integer, sum(numerator)::integer
        FROM (SELECT * FROM taken UNION ALL SELECT * FROM cell_changes) c
        GROUP BY school_year, metric_id, school_id, county_id, urban_rural, sex, grade, left_behind, disability
        HAVING sum(denominator) > 0$q$, p_cells);
END
$fn$;

-- The student mode: recompute the rollup rows of the pairs in pg_temp.dirty_pairs (filled by the
-- caller, metrics.recompute_marked_students), whose school years are `p_years`, and bring the
-- cells they count in up to date (0109's steps, each through an index).
CREATE FUNCTION metrics.recompute_students(p_years integer[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    first_census integer;
    last_census integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('schoolhealth.metrics.refresh'));
    IF p_years IS NULL OR cardinality(p_years) = 0 THEN
        RETURN;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS dirty_pairs (student_key text NOT NULL, school_year integer NOT NULL,
                                                 PRIMARY KEY (school_year, student_key)) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS dirty_digit_cells (school_year integer NOT NULL, school_id text NOT NULL,
                                                       PRIMARY KEY (school_year, school_id)) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS former_years (LIKE metrics.student_years) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS new_years (LIKE metrics.student_years) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS fresh_rows (LIKE metrics.observations) ON COMMIT DROP;
    TRUNCATE dirty_digit_cells, former_years, new_years;
    ANALYZE dirty_pairs;

    -- 1. The pairs' student-years: the former ones go (kept for the cells), the census makes them
    -- again: each pair's latest health record effective on its census day (30 September), unless
    -- corrected, in the school years the records span.
    WITH gone AS (
        DELETE FROM metrics.student_years y USING dirty_pairs p
        WHERE y.school_year = p.school_year AND y.student_key = p.student_key
        RETURNING y.*
    )
    INSERT INTO former_years SELECT * FROM gone;
    SELECT metrics.school_year(min(effective_on)), metrics.school_year(max(effective_on))
        INTO first_census, last_census FROM archive.student_history;
    WITH latest AS MATERIALIZED (
        SELECT p.school_year, l.*
        FROM dirty_pairs p
        CROSS JOIN LATERAL (
            SELECT r.student_key, r.action, r.grade AS record_grade, r.effective_on,
                   COALESCE(r.to_school_id, r.school_id) AS school_id, r.left_behind, r.disability
            FROM archive.student_history r
            WHERE r.student_key = p.student_key
              AND r.effective_on <= make_date(p.school_year, 9, 30)
              AND NOT EXISTS (SELECT 1 FROM archive.student_history c WHERE c.supersedes = r.event_id)
            ORDER BY r.effective_on DESC, r.occurred_at DESC, r.event_id DESC
            LIMIT 1) l
        WHERE p.school_year BETWEEN first_census AND last_census
    ), made AS (
        INSERT INTO metrics.student_years
        SELECT l.school_year, l.student_key, l.school_id, s.county_id, s.urban_rural, st.sex,
               (l.record_grade + l.school_year - metrics.school_year(l.effective_on))::smallint AS grade,
               l.left_behind, l.disability
        FROM latest l
        JOIN archive.schools s ON s.school_id = l.school_id
        JOIN archive.students st ON st.student_key = l.student_key
        WHERE l.action <> 'leave'
          AND l.record_grade + l.school_year - metrics.school_year(l.effective_on) BETWEEN 1 AND 9
        RETURNING *
    )
    INSERT INTO new_years SELECT * FROM made;
    ANALYZE former_years, new_years;

    -- 2. The pairs' observation rows: only those that changed are written (0112); the cells take
    -- the change. Then the fitness observation rows and cells, the same way.
    TRUNCATE fresh_rows;
    INSERT INTO fresh_rows SELECT * FROM metrics.pair_observation_rows();
    PERFORM metrics.write_changed_rows('metrics.observations');
    PERFORM metrics.apply_cell_changes('metrics.indicator_cells');
    TRUNCATE fresh_rows;
    INSERT INTO fresh_rows SELECT * FROM metrics.fitness_observation_rows(false, true, p_years);
    PERFORM metrics.write_changed_rows('metrics.fitness_observations');
    PERFORM metrics.apply_cell_changes('metrics.fitness_cells');

    -- 3. The digit preference of the schools where the pairs have growth screenings in their
    -- school year (the measurements are never deleted; a correction adds a row), recounted through
    -- growth_screenings (school_id, measured_on): every measurement of those school years, counted
    -- per pair of last digits first.
    INSERT INTO dirty_digit_cells
    SELECT DISTINCT p.school_year, g.school_id
    FROM dirty_pairs p
    CROSS JOIN LATERAL (
        SELECT g.school_id FROM archive.growth_screenings g
        WHERE g.student_key = p.student_key
          AND g.measured_on BETWEEN make_date(p.school_year, 9, 1) AND make_date(p.school_year + 1, 8, 31)
        OFFSET 0) g;
    DELETE FROM metrics.digit_preference c USING dirty_digit_cells d
    WHERE c.school_year = d.school_year AND c.school_id = d.school_id;
    INSERT INTO metrics.digit_preference
    WITH digits AS (
        SELECT d.school_year, d.school_id, g.screener,
               ((g.height_cm * 10)::integer % 10)::smallint AS height_digit,
               ((g.weight_kg * 10)::integer % 10)::smallint AS weight_digit, count(*) AS measurements
        FROM dirty_digit_cells d
        CROSS JOIN LATERAL (
            SELECT g.screener, g.height_cm, g.weight_kg FROM archive.growth_screenings g
            WHERE g.school_id = d.school_id
              AND g.measured_on BETWEEN make_date(d.school_year, 9, 1) AND make_date(d.school_year + 1, 8, 31)
            OFFSET 0) g
        GROUP BY 1, 2, 3, 4, 5
    )
    SELECT school_year, school_id, screener, 'height_cm'::text, height_digit, sum(measurements)::integer
    FROM digits WHERE height_digit IS NOT NULL GROUP BY 1, 2, 3, 5
    UNION ALL
    SELECT school_year, school_id, screener, 'weight_kg', weight_digit, sum(measurements)::integer
    FROM digits WHERE weight_digit IS NOT NULL GROUP BY 1, 2, 3, 5;
END
$fn$;

-- 0112's function without its student mode, which is the function above.
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

-- 0109's function, calling the student mode's own function.
CREATE OR REPLACE FUNCTION metrics.recompute_marked_students(p_whole_years integer[]) RETURNS integer[]
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    last_year integer;
    years integer[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('schoolhealth.metrics.refresh'));
    CREATE TEMP TABLE IF NOT EXISTS taken_marks (student_key text NOT NULL, school_year integer NOT NULL,
                                                 onwards boolean NOT NULL) ON COMMIT DROP;
    TRUNCATE taken_marks;
    WITH taken AS (DELETE FROM metrics.dirty_students RETURNING student_key, school_year, onwards)
    INSERT INTO taken_marks SELECT student_key, school_year, onwards FROM taken;
    IF EXISTS (SELECT 1 FROM taken_marks WHERE onwards) THEN
        -- The newest school year any rollup can have a row in (the census's, or a measurement's).
        last_year := greatest(
            (SELECT metrics.school_year(max(effective_on)) FROM archive.student_history),
            (SELECT max(school_year) FROM metrics.student_years),
            (SELECT max(school_year) FROM metrics.observations),
            (SELECT max(school_year) FROM metrics.fitness_observations),
            (SELECT max(school_year) FROM taken_marks));
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS dirty_pairs (student_key text NOT NULL, school_year integer NOT NULL,
                                                 PRIMARY KEY (school_year, student_key)) ON COMMIT DROP;
    TRUNCATE dirty_pairs;
    INSERT INTO dirty_pairs
    SELECT DISTINCT m.student_key, y
    FROM taken_marks m
    CROSS JOIN LATERAL generate_series(m.school_year, CASE WHEN m.onwards THEN greatest(last_year, m.school_year)
                                                           ELSE m.school_year END) y
    WHERE NOT (y = ANY(coalesce(p_whole_years, '{}')));
    years := ARRAY(SELECT DISTINCT school_year FROM dirty_pairs ORDER BY 1);
    PERFORM metrics.recompute_students(years);
    RETURN years;
END
$fn$;

-- Reached only through recompute_rollups and recompute_marked_students (SECURITY DEFINER).
REVOKE ALL ON FUNCTION metrics.pair_observation_rows(), metrics.write_changed_rows(regclass),
    metrics.apply_cell_changes(regclass), metrics.recompute_students(integer[]) FROM PUBLIC;
