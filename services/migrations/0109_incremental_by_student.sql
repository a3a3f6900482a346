-- Incremental indicators per student-year (issue 18): a screening day recomputes the rollup rows of
-- the students it touched and the cells of their schools, not every row of their school years.
--
-- 0085 marked whole school years: one screening of school year 2025 recomputed every student-year,
-- observation and cell of 2025 (10-11 s at 100,000 students, about 140 s projected at a million,
-- growing with the archive). The archive writer now marks (student, school year) pairs in
-- metrics.dirty_students, in each batch's own transaction:
--   * a screening or survey: its student and the school year of its date, and the student and the
--     school year of the event it supersedes (found through the student's index);
--   * a health record: its student, from the school year of the student's first record onwards
--     (`onwards`: every later census day may change, and the sex is the student's);
--   * a fitness test: its student, from the school year of the student's first test onwards
--     (graduation scores read the stage's earlier years).
-- The refresh takes the marks the way 0085 takes its years (delete what it sees, recompute from a
-- later snapshot: a batch committed meanwhile is in both or marked for the next round) and calls
-- metrics.recompute_rollups(years, by_student => true), which
--   1. deletes the marked pairs' student-years, observations and fitness observations, keeping
--      the (school year, school) of every student-year deleted (the school before a transfer);
--   2. recomputes those rows with the same queries as the full refresh, restricted to the pairs
--      (census day, latest screening per year, coverage, fitness, graduation: every rule per
--      student, none reads another student's rows);
--   3. recomputes the indicator and fitness cells of every (school year, school) a marked pair
--      belonged to before or belongs to now: a cell is a count over one school's student-years;
--   4. recomputes the digit-preference cells of the (school year, school) where a marked pair has
--      growth screenings (the measurements are never deleted; a correction adds a row).
-- metrics.dirty_years (0085) stays for whole-year marks (0085's backfill, a hand-made mark); the
-- refresh recomputes those years whole and the pairs of other years by student. A schools change
-- is still a full refresh (their names and counties are in every cell).
--
-- The rollup queries are 0095's, each with one more condition that is constant-true outside the
-- student mode (plpgsql plans them with the mode's value: the full and year refreshes keep their
-- plans). The indexes on observations and fitness observations by (school_year, metric_id) had no
-- reader (the cells group whole years); they become (school_year, student_key), what the student
-- mode deletes and joins by; student_years gains (school_year, school_id) for step 3.

CREATE TABLE metrics.dirty_students (
    student_key  text NOT NULL,
    school_year  integer NOT NULL,
    -- true: this school year and every later one
    onwards      boolean NOT NULL DEFAULT false
);

DROP INDEX metrics.observations_key;
DROP INDEX metrics.fitness_observations_key;
CREATE INDEX observations_student ON metrics.observations (school_year, student_key);
CREATE INDEX fitness_observations_student ON metrics.fitness_observations (school_year, student_key);
CREATE INDEX student_years_school ON metrics.student_years (school_year, school_id);
CREATE INDEX digit_preference_school ON metrics.digit_preference (school_year, school_id);

DROP FUNCTION metrics.recompute_rollups(integer[]);

-- Whole school years `p_years` (NULL: every year, the tables emptied first), or with `p_by_student`
-- only the (student, school year) pairs in pg_temp.dirty_pairs (metrics.take_student_marks fills
-- it; `p_years` are then the pairs' years, which bound the dates read).
CREATE FUNCTION metrics.recompute_rollups(p_years integer[], p_by_student boolean DEFAULT false) RETURNS void
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
        -- The years' condition lets the plan read only those years when it does not probe per pair.
        DELETE FROM metrics.observations o USING dirty_pairs p
        WHERE o.school_year = p.school_year AND o.student_key = p.student_key AND o.school_year = ANY(p_years);
        DELETE FROM metrics.fitness_observations o USING dirty_pairs p
        WHERE o.school_year = p.school_year AND o.student_key = p.student_key AND o.school_year = ANY(p_years);
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

    INSERT INTO metrics.observations
    WITH vision AS (
        SELECT DISTINCT ON (student_key, metrics.school_year(measured_on))
               student_key, metrics.school_year(measured_on) AS school_year, screening_myopia, impairment_student
        FROM archive.vision_current v
        WHERE measured_on BETWEEN first_day AND last_day
          AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_pairs p WHERE p.student_key = v.student_key
                                         AND p.school_year = metrics.school_year(v.measured_on)))
        ORDER BY student_key, metrics.school_year(measured_on), measured_on DESC, occurred_at DESC, event_id DESC
    ), plausible_growth AS (
        SELECT student_key, metrics.school_year(measured_on) AS school_year, measured_on, occurred_at, event_id,
               wst586, who_category, wst456_wasting
        FROM archive.growth_current g
        WHERE flags = '{}'
          AND measured_on BETWEEN first_day AND last_day
          AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_pairs p WHERE p.student_key = g.student_key
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
          AND answered_on BETWEEN first_day AND last_day
          AND (all_years OR metrics.school_year(answered_on) = ANY(p_years))
          AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_pairs p WHERE p.student_key = s.student_key
                                         AND p.school_year = metrics.school_year(s.answered_on)))
        ORDER BY student_key, instrument, metrics.school_year(answered_on), answered_on DESC, occurred_at DESC, event_id DESC
    ), vision_years AS (
        SELECT DISTINCT student_key, metrics.school_year(measured_on) AS school_year
        FROM archive.vision_current v
        WHERE measured_on BETWEEN first_day AND last_day
          AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_pairs p WHERE p.student_key = v.student_key
                                         AND p.school_year = metrics.school_year(v.measured_on)))
    ), growth_years AS (
        SELECT DISTINCT student_key, metrics.school_year(measured_on) AS school_year
        FROM archive.growth_current g
        WHERE measured_on BETWEEN first_day AND last_day
          AND (all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_pairs p WHERE p.student_key = g.student_key
                                         AND p.school_year = metrics.school_year(g.measured_on)))
    ), screened AS (
        -- Both screenings in the school year (1 September to 31 August): joined, not probed per student.
        SELECT y.school_year, y.student_key,
               (v.student_key IS NOT NULL AND g.student_key IS NOT NULL) AS both_screenings
        FROM metrics.student_years y
        LEFT JOIN vision_years v ON v.student_key = y.student_key AND v.school_year = y.school_year
        LEFT JOIN growth_years g ON g.student_key = y.student_key AND g.school_year = y.school_year
        WHERE (all_years OR y.school_year = ANY(p_years))
          AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_pairs p WHERE p.student_key = y.student_key
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

    INSERT INTO metrics.fitness_observations
    WITH tests AS (
        SELECT f.school_year, f.student_key, f.status, f.band, f.item_scores FROM archive.fitness_year f
        WHERE (all_years OR f.school_year = ANY(p_years))
          AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_pairs p WHERE p.student_key = f.student_key
                                         AND p.school_year = f.school_year))
    ), graduates AS (
        SELECT f.school_year, f.student_key, f.band FROM archive.fitness_graduation f
        WHERE f.status = 'complete' AND (all_years OR f.school_year = ANY(p_years))
          AND (NOT by_student OR EXISTS (SELECT 1 FROM dirty_pairs p WHERE p.student_key = f.student_key
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

-- Take the writer's student marks (skipping the school years `p_whole_years`, recomputed whole by
-- the caller from metrics.dirty_years), recompute those student-years and their schools' cells, and
-- return the school years they are in. The marks are deleted first, the rollups read afterwards (a
-- later snapshot), as in 0085.
CREATE FUNCTION metrics.recompute_marked_students(p_whole_years integer[]) RETURNS integer[]
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
    PERFORM metrics.recompute_rollups(years, true);
    RETURN years;
END
$fn$;

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
BEGIN
    -- The writer marks, the refresh takes the marks (through the function).
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON metrics.dirty_students TO %I', app);
    EXECUTE 'REVOKE ALL ON FUNCTION metrics.recompute_rollups(integer[], boolean),'
            ' metrics.recompute_marked_students(integer[]) FROM PUBLIC';
    EXECUTE format('GRANT EXECUTE ON FUNCTION metrics.recompute_rollups(integer[], boolean),'
                   ' metrics.recompute_marked_students(integer[]) TO %I', app);
END
$grants$;
