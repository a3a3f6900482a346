-- The incremental refresh reads the school year most of a screening day's pairs belong to once,
-- where probing each pair would cost more (issue 18, TimescaleDB and plain PostgreSQL).
--
-- Since 0114 the student mode reads each marked (student, school year) pair's screenings and
-- surveys with a probe per pair through the student's index: on TimescaleDB one index probe per
-- rowstore chunk of the school year (the open year has a chunk more every 28 days), three probes
-- per pair (vision, growth, surveys) and a fourth for the schools of the pair's growth screenings
-- (the digit preference). A screening day of 1 % of the events marks about an eighth of the
-- students (each has screenings and surveys), so at 1M students about 125,000 pairs, and the
-- refresh's cost grew with pairs x chunks: 45-70 s on seven screening days in a row in March at 1M,
-- rising about 2 s a day (bench/README.md, thirteenth session; auto_explain: the three probes
-- 29-36 s, the digit preference's probe 11-12 s).
--
-- Measured on the 1M bench database (TimescaleDB 2.28.3, 4 December 2026), the 125,310 pairs of one
-- such day against the open year's vision screenings (1.93 million rows in 6 chunks): a probe per
-- pair 7.9 s (10.5 us per pair and chunk), one scan of the year hash-joined to the pairs 2.3 s
-- (1.2 us per row). So a pair probed costs about as much as 9 rows read per chunk it probes.
--
-- metrics.scanned_school_year() now chooses, in each refresh, the school year with the most marked
-- pairs, and returns it when probing its pairs would cost more than reading the year once: when
-- pairs x probes per pair x schoolhealth.pair_probe_rows (9 unless that setting says otherwise)
-- exceeds the year's rows, as the planner estimates them for its vision screenings (the chunks of
-- the year on TimescaleDB, the probes per pair being those chunks; one probe on plain PostgreSQL).
-- A refresh of a few pairs (the API's events, a worker's timer) keeps the probes; a screening day
-- at province scale reads its year once. The pairs of any other school year (a correction of an
-- older year) are still probed one by one, so a closed year's columnstore is never read whole.
--
-- metrics.student_year_rows in the student mode takes the scanned year as p_first_day and
-- p_last_day (its first and last day; NULL: every pair probed): the vision, growth and survey rows
-- of those days are joined to that year's pairs by student (a hash join: the views are security
-- barriers, so PostgreSQL cannot probe them from a join), the other pairs are probed as before. The
-- rules, the columns and the rows are unchanged: a scanned year's rows are exactly what its pairs'
-- probes returned. metrics.recompute_students reads the schools of the scanned pairs' growth
-- screenings (the digit preference) the same way. Both functions are restated whole (with 0122's
-- edit folded in).

-- The bodies name pg_temp.dirty_pairs, which exists only inside a refresh (as in 0117).
SET LOCAL check_function_bodies = off;

-- The student-years of the census with their results: of the school years `p_years` (every year
-- when NULL) between p_first_day and p_last_day, or (p_by_student) of the pairs in
-- pg_temp.dirty_pairs, the pairs of the school year from p_first_day to p_last_day read from one
-- scan of those days and the others probed one by one (every pair when they are NULL).
CREATE OR REPLACE FUNCTION metrics.student_year_rows(p_by_student boolean, p_years integer[], p_first_day date,
                                                     p_last_day date)
    RETURNS SETOF metrics.student_years LANGUAGE sql STABLE AS $body$
    WITH history_years AS (
        SELECT metrics.school_year(min(effective_on)) AS first_year, metrics.school_year(max(effective_on)) AS last_year
        FROM archive.student_history
    ), latest AS (
        -- Each student's latest health record effective on the census day (30 September), unless corrected.
        SELECT y.school_year, h.*
        FROM history_years b
        CROSS JOIN LATERAL generate_series(b.first_year, b.last_year) y(school_year)
        CROSS JOIN LATERAL (
            SELECT DISTINCT ON (r.student_key COLLATE "C")
                   r.student_key, r.action, r.grade AS record_grade, r.effective_on,
                   COALESCE(r.to_school_id, r.school_id) AS school_id, r.left_behind, r.disability
            FROM archive.student_history r
            WHERE r.effective_on <= make_date(y.school_year, 9, 30)
              AND NOT EXISTS (SELECT 1 FROM archive.student_history c WHERE c.supersedes = r.event_id)
            ORDER BY r.student_key COLLATE "C", r.effective_on DESC, r.occurred_at DESC, r.event_id DESC
        ) h
        WHERE NOT p_by_student AND (p_years IS NULL OR y.school_year = ANY(p_years))
        UNION ALL
        SELECT p.school_year, l.*
        FROM history_years b
        JOIN pg_temp.dirty_pairs p ON p.school_year BETWEEN b.first_year AND b.last_year
        CROSS JOIN LATERAL (
            SELECT r.student_key, r.action, r.grade AS record_grade, r.effective_on,
                   COALESCE(r.to_school_id, r.school_id) AS school_id, r.left_behind, r.disability
            FROM archive.student_history r
            WHERE r.student_key = p.student_key
              AND r.effective_on <= make_date(p.school_year, 9, 30)
              AND NOT EXISTS (SELECT 1 FROM archive.student_history c WHERE c.supersedes = r.event_id)
            ORDER BY r.effective_on DESC, r.occurred_at DESC, r.event_id DESC
            LIMIT 1) l
        WHERE p_by_student
    ), census AS (
        SELECT l.school_year, l.student_key, l.school_id, s.county_id, s.urban_rural, st.sex,
               (l.record_grade + l.school_year - metrics.school_year(l.effective_on))::smallint AS grade,
               l.left_behind, l.disability
        FROM latest l
        JOIN archive.schools s ON s.school_id = l.school_id
        JOIN archive.students st ON st.student_key = l.student_key
        WHERE l.action <> 'leave'
          AND l.record_grade + l.school_year - metrics.school_year(l.effective_on) BETWEEN 1 AND 9
    ), vision_rows AS (
        SELECT v.student_key, metrics.school_year(v.measured_on) AS school_year, v.measured_on, v.occurred_at,
               v.event_id, v.screening_myopia, v.impairment_student
        FROM archive.vision_current v
        WHERE NOT p_by_student AND v.measured_on BETWEEN p_first_day AND p_last_day
          AND (p_years IS NULL OR metrics.school_year(v.measured_on) = ANY(p_years))
        UNION ALL
        SELECT v.student_key, p.school_year, v.measured_on, v.occurred_at, v.event_id, v.screening_myopia,
               v.impairment_student
        FROM pg_temp.dirty_pairs p
        CROSS JOIN LATERAL (
            SELECT v.student_key, v.measured_on, v.occurred_at, v.event_id, v.screening_myopia, v.impairment_student
            FROM archive.vision_current v
            WHERE v.student_key = p.student_key
              AND v.measured_on BETWEEN make_date(p.school_year, 9, 1) AND make_date(p.school_year + 1, 8, 31)
              AND v.measured_on BETWEEN (SELECT make_date(min(x.school_year), 9, 1) FROM pg_temp.dirty_pairs x)
                                 AND (SELECT make_date(max(x.school_year) + 1, 8, 31) FROM pg_temp.dirty_pairs x)
            OFFSET 0) v
        WHERE p_by_student AND make_date(p.school_year, 9, 1) IS DISTINCT FROM p_first_day
        UNION ALL
        SELECT v.student_key, p.school_year, v.measured_on, v.occurred_at, v.event_id, v.screening_myopia,
               v.impairment_student
        FROM archive.vision_current v
        JOIN pg_temp.dirty_pairs p ON p.student_key = v.student_key AND make_date(p.school_year, 9, 1) = p_first_day
        WHERE p_by_student AND p_first_day IS NOT NULL AND v.measured_on BETWEEN p_first_day AND p_last_day
    ), growth_rows AS MATERIALIZED (
        SELECT g.student_key, metrics.school_year(g.measured_on) AS school_year, g.measured_on, g.occurred_at,
               g.event_id, g.flags, g.wst586, g.who_category, g.wst456_wasting
        FROM archive.growth_current g
        WHERE NOT p_by_student AND g.measured_on BETWEEN p_first_day AND p_last_day
          AND (p_years IS NULL OR metrics.school_year(g.measured_on) = ANY(p_years))
        UNION ALL
        SELECT g.student_key, p.school_year, g.measured_on, g.occurred_at, g.event_id, g.flags, g.wst586,
               g.who_category, g.wst456_wasting
        FROM pg_temp.dirty_pairs p
        CROSS JOIN LATERAL (
            SELECT g.student_key, g.measured_on, g.occurred_at, g.event_id, g.flags, g.wst586, g.who_category,
                   g.wst456_wasting
            FROM archive.growth_current g
            WHERE g.student_key = p.student_key
              AND g.measured_on BETWEEN make_date(p.school_year, 9, 1) AND make_date(p.school_year + 1, 8, 31)
              AND g.measured_on BETWEEN (SELECT make_date(min(x.school_year), 9, 1) FROM pg_temp.dirty_pairs x)
                                 AND (SELECT make_date(max(x.school_year) + 1, 8, 31) FROM pg_temp.dirty_pairs x)
            OFFSET 0) g
        WHERE p_by_student AND make_date(p.school_year, 9, 1) IS DISTINCT FROM p_first_day
        UNION ALL
        SELECT g.student_key, p.school_year, g.measured_on, g.occurred_at, g.event_id, g.flags, g.wst586,
               g.who_category, g.wst456_wasting
        FROM archive.growth_current g
        JOIN pg_temp.dirty_pairs p ON p.student_key = g.student_key AND make_date(p.school_year, 9, 1) = p_first_day
        WHERE p_by_student AND p_first_day IS NOT NULL AND g.measured_on BETWEEN p_first_day AND p_last_day
    ), survey_rows AS MATERIALIZED (
        SELECT s.student_key, s.instrument, metrics.school_year(s.answered_on) AS school_year, s.answered_on,
               s.occurred_at, s.event_id, s.literate, s.positive_screen
        FROM archive.survey_current s
        WHERE NOT p_by_student AND s.instrument IN ('hl-student', 'phq-a', 'gad-7')
          AND s.answered_on BETWEEN p_first_day AND p_last_day
          AND (p_years IS NULL OR metrics.school_year(s.answered_on) = ANY(p_years))
        UNION ALL
        SELECT s.student_key, s.instrument, p.school_year, s.answered_on, s.occurred_at, s.event_id, s.literate,
               s.positive_screen
        FROM pg_temp.dirty_pairs p
        CROSS JOIN LATERAL (
            SELECT s.student_key, s.instrument, s.answered_on, s.occurred_at, s.event_id, s.literate, s.positive_screen
            FROM archive.survey_current s
            WHERE s.student_key = p.student_key
              AND s.instrument IN ('hl-student', 'phq-a', 'gad-7')
              AND s.answered_on BETWEEN make_date(p.school_year, 9, 1) AND make_date(p.school_year + 1, 8, 31)
              AND s.answered_on BETWEEN (SELECT make_date(min(x.school_year), 9, 1) FROM pg_temp.dirty_pairs x)
                                 AND (SELECT make_date(max(x.school_year) + 1, 8, 31) FROM pg_temp.dirty_pairs x)
            OFFSET 0) s
        WHERE p_by_student AND make_date(p.school_year, 9, 1) IS DISTINCT FROM p_first_day
        UNION ALL
        SELECT s.student_key, s.instrument, p.school_year, s.answered_on, s.occurred_at, s.event_id, s.literate,
               s.positive_screen
        FROM archive.survey_current s
        JOIN pg_temp.dirty_pairs p ON p.student_key = s.student_key AND make_date(p.school_year, 9, 1) = p_first_day
        WHERE p_by_student AND p_first_day IS NOT NULL AND s.instrument IN ('hl-student', 'phq-a', 'gad-7')
          AND s.answered_on BETWEEN p_first_day AND p_last_day
    ), vision AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year)
               student_key, school_year, screening_myopia, impairment_student
        FROM vision_rows
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), growth_years AS (
        SELECT DISTINCT student_key, school_year FROM growth_rows
    ), wst586 AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, wst586
        FROM growth_rows WHERE flags = '{}' AND wst586 <> 'not_applicable'
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), who AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, who_category
        FROM growth_rows WHERE flags = '{}' AND who_category <> 'not_applicable'
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), wasting AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, wst456_wasting
        FROM growth_rows WHERE flags = '{}' AND wst456_wasting <> 'not_applicable'
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), literacy AS (
        -- Each instrument's latest answer of the school year; its result where it has one.
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, literate
        FROM survey_rows WHERE instrument = 'hl-student'
        ORDER BY student_key COLLATE "C", school_year, answered_on DESC, occurred_at DESC, event_id DESC
    ), depression AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, positive_screen
        FROM survey_rows WHERE instrument = 'phq-a'
        ORDER BY student_key COLLATE "C", school_year, answered_on DESC, occurred_at DESC, event_id DESC
    ), anxiety AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, positive_screen
        FROM survey_rows WHERE instrument = 'gad-7'
        ORDER BY student_key COLLATE "C", school_year, answered_on DESC, occurred_at DESC, event_id DESC
    )
    SELECT c.school_year, c.student_key, c.school_id, c.county_id, c.urban_rural, c.sex, c.grade, c.left_behind,
           c.disability,
           v.screening_myopia AS myopia,
           CASE WHEN v.impairment_student <> 'not_applicable'
                THEN v.impairment_student IN ('mild', 'moderate', 'severe') END AS visual_impairment,
           w.wst586 = 'overweight' AS overweight_wst586,
           w.wst586 = 'obesity' AS obesity_wst586,
           h.who_category = 'overweight' AS overweight_who,
           h.who_category = 'obesity' AS obesity_who,
           x.wst456_wasting IN ('mild', 'moderate_severe') AS wasting,
           l.literate AS health_literacy, d.positive_screen AS depression_positive,
           a.positive_screen AS anxiety_positive,
           (v.student_key IS NOT NULL AND gy.student_key IS NOT NULL) AS screening_coverage
    FROM census c
    LEFT JOIN vision v ON v.student_key COLLATE "C" = c.student_key COLLATE "C" AND v.school_year = c.school_year
    LEFT JOIN growth_years gy ON gy.student_key COLLATE "C" = c.student_key COLLATE "C" AND gy.school_year = c.school_year
    LEFT JOIN wst586 w ON w.student_key COLLATE "C" = c.student_key COLLATE "C" AND w.school_year = c.school_year
    LEFT JOIN who h ON h.student_key COLLATE "C" = c.student_key COLLATE "C" AND h.school_year = c.school_year
    LEFT JOIN wasting x ON x.student_key COLLATE "C" = c.student_key COLLATE "C" AND x.school_year = c.school_year
    LEFT JOIN literacy l ON l.student_key COLLATE "C" = c.student_key COLLATE "C" AND l.school_year = c.school_year
    LEFT JOIN depression d ON d.student_key COLLATE "C" = c.student_key COLLATE "C" AND d.school_year = c.school_year
    LEFT JOIN anxiety a ON a.student_key COLLATE "C" = c.student_key COLLATE "C" AND a.school_year = c.school_year;
$body$;

-- The school year whose marked pairs are read by one scan in this refresh (see above), or NULL.
CREATE FUNCTION metrics.scanned_school_year() RETURNS integer
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    busiest integer;
    pairs bigint;
    plan jsonb;
    probes integer;
    probe_rows numeric := coalesce(nullif(current_setting('schoolhealth.pair_probe_rows', true), '')::numeric, 9);
BEGIN
    SELECT school_year, count(*) INTO busiest, pairs
    FROM dirty_pairs GROUP BY school_year ORDER BY count(*) DESC, school_year DESC LIMIT 1;
    IF busiest IS NULL OR probe_rows <= 0 THEN
        RETURN NULL;
    END IF;
    EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM archive.vision_screenings WHERE measured_on BETWEEN %L AND %L',
                   make_date(busiest, 9, 1), make_date(busiest + 1, 8, 31)) INTO plan;
    -- The relations the plan reads: a hypertable's chunks of the year (each a probe per pair), or
    -- the table (one probe).
    probes := greatest(1, jsonb_array_length(jsonb_path_query_array(plan, 'strict $.**."Relation Name"')));
    IF pairs * probes * probe_rows > (plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric THEN
        RETURN busiest;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION metrics.recompute_students(p_years integer[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    scanned integer;
    first_day date;
    last_day date;
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
    CREATE TEMP TABLE IF NOT EXISTS fresh_rows (LIKE metrics.fitness_observations) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS cell_changes (LIKE metrics.indicator_cells) ON COMMIT DROP;
    TRUNCATE dirty_digit_cells, former_years, new_years, cell_changes;
    ANALYZE dirty_pairs;
    scanned := metrics.scanned_school_year();
    IF scanned IS NOT NULL THEN
        first_day := make_date(scanned, 9, 1);
        last_day := make_date(scanned + 1, 8, 31);
    END IF;

    -- 1. The pairs' student-years: the former rows go (kept for the cells), the new ones are made.
    WITH gone AS (
        DELETE FROM metrics.student_years y USING dirty_pairs p
        WHERE y.school_year = p.school_year AND y.student_key = p.student_key
        RETURNING y.*
    )
    INSERT INTO former_years SELECT * FROM gone;
    WITH made AS (
        INSERT INTO metrics.student_years
        SELECT * FROM metrics.student_year_rows(true, p_years, first_day, last_day)
        RETURNING *
    )
    INSERT INTO new_years SELECT * FROM made;
    ANALYZE former_years, new_years;

    -- 2. The indicator cells take the difference; then the fitness observation rows and cells (0114).
    INSERT INTO cell_changes
    SELECT * FROM metrics.count_indicator_cells(
        'SELECT -1 AS sign, * FROM former_years UNION ALL SELECT 1, * FROM new_years');
    PERFORM metrics.merge_cell_changes('metrics.indicator_cells');
    TRUNCATE fresh_rows;
    INSERT INTO fresh_rows SELECT * FROM metrics.fitness_observation_rows(false, true, p_years);
    PERFORM metrics.write_changed_rows('metrics.fitness_observations');
    PERFORM metrics.apply_cell_changes('metrics.fitness_cells');

    -- 3. The digit preference of the schools where the pairs have growth screenings in their
    -- school year (0114's): the scanned year's pairs from one scan of its days, the others probed.
    INSERT INTO dirty_digit_cells
    SELECT p.school_year, g.school_id
    FROM dirty_pairs p
    CROSS JOIN LATERAL (
        SELECT g.school_id FROM archive.growth_screenings g
        WHERE g.student_key = p.student_key
          AND g.measured_on BETWEEN make_date(p.school_year, 9, 1) AND make_date(p.school_year + 1, 8, 31)
          AND g.measured_on BETWEEN (SELECT make_date(min(x.school_year), 9, 1) FROM pg_temp.dirty_pairs x)
                                AND (SELECT make_date(max(x.school_year) + 1, 8, 31) FROM pg_temp.dirty_pairs x)
        OFFSET 0) g
    WHERE p.school_year IS DISTINCT FROM scanned
    UNION
    SELECT scanned, g.school_id
    FROM archive.growth_screenings g
    WHERE scanned IS NOT NULL AND g.measured_on BETWEEN first_day AND last_day
      AND g.student_key IN (SELECT p.student_key FROM dirty_pairs p WHERE p.school_year = scanned);
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
              AND g.measured_on BETWEEN (SELECT make_date(min(x.school_year), 9, 1) FROM pg_temp.dirty_pairs x)
                                    AND (SELECT make_date(max(x.school_year) + 1, 8, 31) FROM pg_temp.dirty_pairs x)
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

-- Reached only through recompute_students (SECURITY DEFINER), and by the tests as the owner.
REVOKE ALL ON FUNCTION metrics.scanned_school_year() FROM PUBLIC;
