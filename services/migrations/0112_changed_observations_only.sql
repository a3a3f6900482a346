-- Incremental refresh (issue 18): write only the observation rows that change.
--
-- 0109 recomputed the marked students' observation rows by deleting every one of them and
-- inserting them again. At a million students a 1 % screening day marks about 124,000
-- student-years, so about 1.2 million observation rows (ten metrics each) and as many fitness
-- observation rows were deleted and written again, although one screening changes few of them
-- (a vision screening can change two metrics and coverage; the surveys, growth and fitness rows of
-- those students stay what they were). auto_explain of such a refresh on the 1M TimescaleDB bench
-- database: the DELETE of those rows 39 s (unlogged, 0111) and the INSERT 68 s, of which its
-- SELECT was 24.5 s: the rest is writing rows that did not change, into the heap and the
-- (school_year, student_key) index.
--
-- Now, in the student mode only, the marked pairs' rows are computed into a temporary table and
-- compared with the stored ones in one full join on (school year, student, metric): only a stored
-- row without an identical fresh one is deleted (by its ctid) and only a fresh row without an
-- identical stored one is inserted. The result is the same set of rows as 0109's (each metric has
-- at most one row per student-year on both sides), which tests/integration/services/reporting/
-- test_incremental_rollups.py checks against a full refresh.
--
-- The two SELECTs move, unchanged, into SQL functions so that both modes share them. They are
-- STABLE, LANGUAGE sql, without SET or SECURITY DEFINER: PostgreSQL inlines them into the calling
-- statement, so the full and year refreshes keep 0109's plans (plpgsql still plans them with the
-- mode's values). They name pg_temp.dirty_pairs, which exists only during a refresh: their bodies
-- are not checked at creation.

SET LOCAL check_function_bodies = off;

-- The observation rows of the school years `p_years` (every year when p_all_years), or with
-- p_by_student only those of the pairs in pg_temp.dirty_pairs; dates between p_first_day and
-- p_last_day. 0109's query, unchanged.
CREATE FUNCTION metrics.observation_rows(p_all_years boolean, p_by_student boolean, p_years integer[],
                                         p_first_day date, p_last_day date)
    RETURNS SETOF metrics.observations LANGUAGE sql STABLE AS $body$
    WITH vision AS (
        SELECT DISTINCT ON (student_key, metrics.school_year(measured_on))
               student_key, metrics.school_year(measured_on) AS school_year, screening_myopia, impairment_student
        FROM archive.vision_current v
        WHERE measured_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = v.student_key
                                         AND p.school_year = metrics.school_year(v.measured_on)))
        ORDER BY student_key, metrics.school_year(measured_on), measured_on DESC, occurred_at DESC, event_id DESC
    ), plausible_growth AS (
        SELECT student_key, metrics.school_year(measured_on) AS school_year, measured_on, occurred_at, event_id,
               wst586, who_category, wst456_wasting
        FROM archive.growth_current g
        WHERE flags = '{}'
          AND measured_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = g.student_key
                                         AND p.school_year = metrics.school_year(g.measured_on)))
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
        FROM archive.survey_current s
        WHERE instrument IN ('hl-student', 'phq-a', 'gad-7')
          AND answered_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(answered_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = s.student_key
                                         AND p.school_year = metrics.school_year(s.answered_on)))
        ORDER BY student_key, instrument, metrics.school_year(answered_on), answered_on DESC, occurred_at DESC, event_id DESC
    ), vision_years AS (
        SELECT DISTINCT student_key, metrics.school_year(measured_on) AS school_year
        FROM archive.vision_current v
        WHERE measured_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = v.student_key
                                         AND p.school_year = metrics.school_year(v.measured_on)))
    ), growth_years AS (
        SELECT DISTINCT student_key, metrics.school_year(measured_on) AS school_year
        FROM archive.growth_current g
        WHERE measured_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = g.student_key
                                         AND p.school_year = metrics.school_year(g.measured_on)))
    ), screened AS (
        -- Both screenings in the school year (1 September to 31 August): joined, not probed per student.
        SELECT y.school_year, y.student_key,
               (v.student_key IS NOT NULL AND g.student_key IS NOT NULL) AS both_screenings
        FROM metrics.student_years y
        LEFT JOIN vision_years v ON v.student_key = y.student_key AND v.school_year = y.school_year
        LEFT JOIN growth_years g ON g.student_key = y.student_key AND g.school_year = y.school_year
        WHERE (p_all_years OR y.school_year = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = y.student_key
                                         AND p.school_year = y.school_year))
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

-- The fitness observation rows, the same way (0109's query, unchanged).
CREATE FUNCTION metrics.fitness_observation_rows(p_all_years boolean, p_by_student boolean, p_years integer[])
    RETURNS SETOF metrics.fitness_observations LANGUAGE sql STABLE AS $body$
    WITH tests AS (
        SELECT f.school_year, f.student_key, f.status, f.band, f.item_scores FROM archive.fitness_year f
        WHERE (p_all_years OR f.school_year = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = f.student_key
                                         AND p.school_year = f.school_year))
    ), graduates AS (
        SELECT f.school_year, f.student_key, f.band FROM archive.fitness_graduation f
        WHERE f.status = 'complete' AND (p_all_years OR f.school_year = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = f.student_key
                                         AND p.school_year = f.school_year))
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
$body$;

-- Make `p_target` (metrics.observations or metrics.fitness_observations) hold pg_temp.fresh_rows for
-- the pairs in pg_temp.dirty_pairs: delete the stored rows of those pairs that no fresh row repeats,
-- insert the fresh rows that no stored row repeats. Called by recompute_rollups (as its owner).
CREATE FUNCTION metrics.write_changed_rows(p_target regclass, p_years integer[]) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    ANALYZE fresh_rows;
    CREATE TEMP TABLE IF NOT EXISTS changed_rows (row_id tid, school_year integer, student_key text,
                                                  metric_id text, positive boolean) ON COMMIT DROP;
    TRUNCATE changed_rows;
    -- row_id: a stored row to delete; student_key: a fresh row to insert; a changed value, both.
    EXECUTE format($q$
        INSERT INTO changed_rows
        SELECT o.row_id, n.school_year, n.student_key, n.metric_id, n.positive
        FROM (SELECT t.ctid AS row_id, t.school_year, t.student_key, t.metric_id, t.positive
              FROM %s t JOIN dirty_pairs p ON p.school_year = t.school_year AND p.student_key = t.student_key
              WHERE t.school_year = ANY($1)) o
        FULL JOIN fresh_rows n
          ON n.school_year = o.school_year AND n.student_key = o.student_key AND n.metric_id = o.metric_id
        WHERE o.row_id IS NULL OR n.student_key IS NULL OR o.positive IS DISTINCT FROM n.positive$q$,
        p_target) USING p_years;
    EXECUTE format('DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT row_id FROM changed_rows WHERE row_id IS NOT NULL))',
                   p_target);
    EXECUTE format('INSERT INTO %s (school_year, student_key, metric_id, positive)'
                   ' SELECT school_year, student_key, metric_id, positive FROM changed_rows'
                   ' WHERE student_key IS NOT NULL', p_target);
END
$fn$;

-- 0109's function with the two INSERTs calling the functions above, and in the student mode the
-- two DELETEs of the pairs' observation rows replaced by write_changed_rows.
CREATE OR REPLACE FUNCTION metrics.recompute_rollups(p_years integer[], p_by_student boolean DEFAULT false) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    all_years boolean := p_years IS NULL;
    by_student boolean := p_by_student AND p_years IS NOT NULL;
    first_day date;
    last_day date;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('schoolhealth.metrics.refresh'));
    IF NOT all_years AND cardinality(p_years) = 0 THEN
        RETURN;
    END IF;
    -- Every statement below names these tables: they exist (empty) outside the student mode.
    CREATE TEMP TABLE IF NOT EXISTS dirty_pairs (student_key text NOT NULL, school_year integer NOT NULL,
                                                 PRIMARY KEY (school_year, student_key)) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS dirty_cells (school_year integer NOT NULL, school_id text NOT NULL,
                                                 PRIMARY KEY (school_year, school_id)) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS dirty_digit_cells (school_year integer NOT NULL, school_id text NOT NULL,
                                                       PRIMARY KEY (school_year, school_id)) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS cell_students (school_year integer NOT NULL, student_key text NOT NULL)
        ON COMMIT DROP;
    IF NOT by_student THEN
        TRUNCATE dirty_pairs;
    END IF;
    TRUNCATE dirty_cells, dirty_digit_cells;
    IF all_years THEN
        TRUNCATE metrics.fitness_cells, metrics.fitness_observations, metrics.indicator_cells,
                 metrics.observations, metrics.student_years, metrics.digit_preference;
        first_day := '-infinity';
        last_day := 'infinity';
    ELSIF by_student THEN
        ANALYZE dirty_pairs;
        WITH gone AS (
            DELETE FROM metrics.student_years y USING dirty_pairs p
            WHERE y.school_year = p.school_year AND y.student_key = p.student_key AND y.school_year = ANY(p_years)
            RETURNING y.school_year, y.school_id
        )
        INSERT INTO dirty_cells SELECT DISTINCT school_year, school_id FROM gone;
        first_day := make_date((SELECT min(y) FROM unnest(p_years) y), 9, 1);
        last_day := make_date((SELECT max(y) FROM unnest(p_years) y) + 1, 8, 31);
        INSERT INTO dirty_digit_cells
        SELECT DISTINCT metrics.school_year(g.measured_on), g.school_id
        FROM archive.growth_screenings g JOIN dirty_pairs p ON p.student_key = g.student_key
        WHERE g.measured_on BETWEEN first_day AND last_day AND p.school_year = metrics.school_year(g.measured_on);
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
              AND (NOT by_student OR r.student_key IN (SELECT p.student_key FROM dirty_pairs p
                                                       WHERE p.school_year = y.school_year))
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
    IF by_student THEN
        -- The schools the marked students belong to now (after a transfer: the new one).
        INSERT INTO dirty_cells
        SELECT DISTINCT y.school_year, y.school_id
        FROM metrics.student_years y JOIN dirty_pairs p USING (school_year, student_key)
        ON CONFLICT DO NOTHING;
        ANALYZE dirty_cells;
        -- Every student-year of those cells (their whole school, for the cells' counts), found
        -- through the (school_year, school_id) index: the cells below are counted from these.
        CREATE TEMP TABLE IF NOT EXISTS cell_students (school_year integer NOT NULL, student_key text NOT NULL)
            ON COMMIT DROP;
        TRUNCATE cell_students;
        INSERT INTO cell_students
        SELECT y.school_year, y.student_key FROM dirty_cells d
        JOIN metrics.student_years y ON y.school_year = d.school_year AND y.school_id = d.school_id;
        ANALYZE cell_students;
    END IF;

    IF by_student THEN
        -- Into a temporary table, then only the rows that differ are written (see the top).
        CREATE TEMP TABLE IF NOT EXISTS fresh_rows (LIKE metrics.observations) ON COMMIT DROP;
        TRUNCATE fresh_rows;
        INSERT INTO fresh_rows
        SELECT * FROM metrics.observation_rows(all_years, by_student, p_years, first_day, last_day);
        PERFORM metrics.write_changed_rows('metrics.observations', p_years);
    ELSE
        INSERT INTO metrics.observations
        SELECT * FROM metrics.observation_rows(all_years, by_student, p_years, first_day, last_day);
    END IF;

    IF all_years THEN
        ANALYZE metrics.observations;
    END IF;
    IF by_student THEN
        DELETE FROM metrics.indicator_cells c USING dirty_cells d
        WHERE c.school_year = d.school_year AND c.school_id = d.school_id;
        DELETE FROM metrics.fitness_cells c USING dirty_cells d
        WHERE c.school_year = d.school_year AND c.school_id = d.school_id;
        DELETE FROM metrics.digit_preference c USING dirty_digit_cells d
        WHERE c.school_year = d.school_year AND c.school_id = d.school_id;
    END IF;

    INSERT INTO metrics.indicator_cells
    SELECT o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
           y.left_behind, y.disability,
           count(*)::integer AS denominator,
           count(*) FILTER (WHERE o.positive)::integer AS numerator
    FROM metrics.observations o
    JOIN metrics.student_years y USING (school_year, student_key)
    WHERE (all_years OR (o.school_year = ANY(p_years) AND y.school_year = ANY(p_years)))
      AND (NOT by_student OR (o.school_year, o.student_key) IN (SELECT c.school_year, c.student_key
                                                                FROM cell_students c))
    GROUP BY o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade, y.left_behind, y.disability;

    IF by_student THEN
        TRUNCATE fresh_rows;
        INSERT INTO fresh_rows SELECT * FROM metrics.fitness_observation_rows(all_years, by_student, p_years);
        PERFORM metrics.write_changed_rows('metrics.fitness_observations', p_years);
    ELSE
        INSERT INTO metrics.fitness_observations
        SELECT * FROM metrics.fitness_observation_rows(all_years, by_student, p_years);
    END IF;

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
      AND (NOT by_student OR (o.school_year, o.student_key) IN (SELECT c.school_year, c.student_key
                                                                FROM cell_students c))
    GROUP BY o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade, y.left_behind, y.disability;

    INSERT INTO metrics.digit_preference
    SELECT metrics.school_year(measured_on) AS school_year, school_id, screener, 'height_cm'::text AS quantity,
           ((height_cm * 10)::integer % 10)::smallint AS last_digit, count(*)::integer AS measurements
    FROM archive.growth_screenings g
    WHERE height_cm IS NOT NULL AND measured_on BETWEEN first_day AND last_day
      AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
      AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_digit_cells d WHERE d.school_id = g.school_id
                                     AND d.school_year = metrics.school_year(g.measured_on)))
    GROUP BY 1, 2, 3, 4, 5
    UNION ALL
    SELECT metrics.school_year(measured_on), school_id, screener, 'weight_kg',
           ((weight_kg * 10)::integer % 10)::smallint, count(*)::integer
    FROM archive.growth_screenings g
    WHERE weight_kg IS NOT NULL AND measured_on BETWEEN first_day AND last_day
      AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
      AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_digit_cells d WHERE d.school_id = g.school_id
                                     AND d.school_year = metrics.school_year(g.measured_on)))
    GROUP BY 1, 2, 3, 4, 5;
END
$fn$;

REVOKE ALL ON FUNCTION metrics.observation_rows(boolean, boolean, integer[], date, date),
    metrics.fitness_observation_rows(boolean, boolean, integer[]),
    metrics.write_changed_rows(regclass, integer[]) FROM PUBLIC;
