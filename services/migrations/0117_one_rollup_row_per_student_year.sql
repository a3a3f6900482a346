-- One rollup row per student-year: the indicator results are columns of metrics.student_years (issue 18).
--
-- metrics.observations held one row per student-year and metric: about 39 million rows at a million
-- students over four school years, ten for each student-year, each a 64-character key again. A full
-- refresh wrote them all and indexed them (0116: 335 s of its 525 s of SQL on the 1M bench
-- database), then read them back to count the cells; the student mode read a marked pair's ten
-- stored rows from ten heap pages (a bitmap scan of the year's 9.75 million rows: 57 s of the
-- 151 s of an auto_explain-timed screening day, 0114).
-- Now each indicator is a column of the student-year's census row, NULL where the student-year has
-- no result for it (where metrics.observations had no row): myopia, visual_impairment,
-- overweight_wst586, obesity_wst586, overweight_who, obesity_who, wasting, health_literacy,
-- depression_positive, anxiety_positive, screening_coverage. The rules are 0113's and 0114's,
-- unchanged: the latest screening of the school year (1 September to 31 August) of each kind, by
-- measurement day, submission time and event id; the growth categories from plausible screenings
-- (no flags) only, each its own latest applicable one; coverage is both a vision and a growth
-- screening in the school year (any growth screening, plausible or not: 0095).
--   * A cell counted the observation rows of its student-years that had a census row (an inner
--     join): a result of a student-year outside the census (not enrolled on 30 September, or
--     outside grades 1-9) counted nowhere. Such results are no longer kept at all.
--   * metrics.student_year_rows computes the rows, the census and the results together: of every
--     school year (full), of some (year mode), or of the pairs in pg_temp.dirty_pairs (student
--     mode, each pair's rows read through its student's indexes as in 0114). One function, so the
--     rules are written once; its parameters are constants of each call, so PostgreSQL plans only
--     the branch the mode needs.
--   * metrics.count_indicator_cells counts cells from student-year rows with a sign: +1 each for a
--     full or year refresh; in the student mode -1 for each pair's former row and +1 for its new
--     one, the change merged into the cells (metrics.merge_cell_changes, 0114's second half).
--     Nothing else of the stored rows is read back, and 0112's comparison is not needed: a pair's
--     census row was already rewritten by each refresh that marked it.
-- The fitness observations keep their long form (their items vary by grade); their path is 0114's.
-- The rollups no longer hold the results the cells count, so the next refresh is a full one
-- (metrics.rollups_intact, 0111).

SET LOCAL check_function_bodies = off;

DROP FUNCTION metrics.pair_observation_rows();
DROP FUNCTION metrics.observation_rows(boolean, boolean, integer[], date, date);
DROP TABLE metrics.observations;
DELETE FROM metrics.rollups_intact;

ALTER TABLE metrics.student_years
    ADD COLUMN myopia boolean,
    ADD COLUMN visual_impairment boolean,
    ADD COLUMN overweight_wst586 boolean,
    ADD COLUMN obesity_wst586 boolean,
    ADD COLUMN overweight_who boolean,
    ADD COLUMN obesity_who boolean,
    ADD COLUMN wasting boolean,
    ADD COLUMN health_literacy boolean,
    ADD COLUMN depression_positive boolean,
    ADD COLUMN anxiety_positive boolean,
    ADD COLUMN screening_coverage boolean;

-- The student-years of the census with their results: of the school years `p_years` (every year
-- when NULL) between p_first_day and p_last_day, or (p_by_student) of the pairs in
-- pg_temp.dirty_pairs.
CREATE FUNCTION metrics.student_year_rows(p_by_student boolean, p_years integer[], p_first_day date,
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
            OFFSET 0) v
        WHERE p_by_student
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
            OFFSET 0) g
        WHERE p_by_student
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
            OFFSET 0) s
        WHERE p_by_student
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

-- The indicator cells counted from student-year rows with a sign (`p_rows`: a query of a `sign`
-- column and metrics.student_years' columns): each metric's student-years with a result and those
-- with a positive one, by cell; a cell whose counts sum to nothing is left out.
CREATE FUNCTION metrics.count_indicator_cells(p_rows text) RETURNS SETOF metrics.indicator_cells
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    RETURN QUERY EXECUTE format($q$
        WITH counts AS (
            SELECT school_year, school_id, county_id, urban_rural, sex, grade, left_behind, disability,
                   coalesce(sum(sign) FILTER (WHERE myopia IS NOT NULL), 0) AS myopia_n,
                   coalesce(sum(sign) FILTER (WHERE myopia), 0) AS myopia_p,
                   coalesce(sum(sign) FILTER (WHERE visual_impairment IS NOT NULL), 0) AS visual_impairment_n,
                   coalesce(sum(sign) FILTER (WHERE visual_impairment), 0) AS visual_impairment_p,
                   coalesce(sum(sign) FILTER (WHERE overweight_wst586 IS NOT NULL), 0) AS overweight_wst586_n,
                   coalesce(sum(sign) FILTER (WHERE overweight_wst586), 0) AS overweight_wst586_p,
                   coalesce(sum(sign) FILTER (WHERE obesity_wst586 IS NOT NULL), 0) AS obesity_wst586_n,
                   coalesce(sum(sign) FILTER (WHERE obesity_wst586), 0) AS obesity_wst586_p,
                   coalesce(sum(sign) FILTER (WHERE overweight_who IS NOT NULL), 0) AS overweight_who_n,
                   coalesce(sum(sign) FILTER (WHERE overweight_who), 0) AS overweight_who_p,
                   coalesce(sum(sign) FILTER (WHERE obesity_who IS NOT NULL), 0) AS obesity_who_n,
                   coalesce(sum(sign) FILTER (WHERE obesity_who), 0) AS obesity_who_p,
                   coalesce(sum(sign) FILTER (WHERE wasting IS NOT NULL), 0) AS wasting_n,
                   coalesce(sum(sign) FILTER (WHERE wasting), 0) AS wasting_p,
                   coalesce(sum(sign) FILTER (WHERE health_literacy IS NOT NULL), 0) AS health_literacy_n,
                   coalesce(sum(sign) FILTER (WHERE health_literacy), 0) AS health_literacy_p,
                   coalesce(sum(sign) FILTER (WHERE depression_positive IS NOT NULL), 0) AS depression_positive_n,
                   coalesce(sum(sign) FILTER (WHERE depression_positive), 0) AS depression_positive_p,
                   coalesce(sum(sign) FILTER (WHERE anxiety_positive IS NOT NULL), 0) AS anxiety_positive_n,
                   coalesce(sum(sign) FILTER (WHERE anxiety_positive), 0) AS anxiety_positive_p,
                   coalesce(sum(sign) FILTER (WHERE screening_coverage IS NOT NULL), 0) AS screening_coverage_n,
                   coalesce(sum(sign) FILTER (WHERE screening_coverage), 0) AS screening_coverage_p
            FROM (%s) r
            GROUP BY school_year, school_id, county_id, urban_rural, sex, grade, left_behind, disability
        )
        SELECT c.school_year, m.metric_id, c.school_id, c.county_id, c.urban_rural, c.sex, c.grade, c.left_behind,
               c.disability, m.students::integer, m.positives::integer
        FROM counts c
        CROSS JOIN LATERAL (VALUES
            ('myopia', c.myopia_n, c.myopia_p),
            ('visual_impairment', c.visual_impairment_n, c.visual_impairment_p),
            ('overweight_wst586', c.overweight_wst586_n, c.overweight_wst586_p),
            ('obesity_wst586', c.obesity_wst586_n, c.obesity_wst586_p),
            ('overweight_who', c.overweight_who_n, c.overweight_who_p),
            ('obesity_who', c.obesity_who_n, c.obesity_who_p),
            ('wasting', c.wasting_n, c.wasting_p),
            ('health_literacy', c.health_literacy_n, c.health_literacy_p),
            ('depression_positive', c.depression_positive_n, c.depression_positive_p),
            ('anxiety_positive', c.anxiety_positive_n, c.anxiety_positive_p),
            ('screening_coverage', c.screening_coverage_n, c.screening_coverage_p)
        ) m(metric_id, students, positives)
        WHERE m.students <> 0 OR m.positives <> 0$q$, p_rows);
END
$fn$;

-- 0114's apply_cell_changes, split: the change in pg_temp.cell_changes merged into `p_cells`. The
-- cells of each (school year, metric, school) with a change are taken out and grouped again with
-- the changes (GROUP BY: NULL-safe keys); a cell left without students goes, as in a full refresh.
CREATE FUNCTION metrics.merge_cell_changes(p_cells regclass) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
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

-- 0114's: the fitness cells (the only caller now) take the pairs' change of fitness observation rows.
CREATE OR REPLACE FUNCTION metrics.apply_cell_changes(p_cells regclass) RETURNS void
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
    PERFORM metrics.merge_cell_changes(p_cells);
END
$fn$;

-- 0114's student mode: each pair's student-year row (census and results) replaces its former one,
-- the cells take the difference; the fitness rows and the digit preference as in 0114.
CREATE OR REPLACE FUNCTION metrics.recompute_students(p_years integer[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
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

    -- 1. The pairs' student-years: the former rows go (kept for the cells), the new ones are made.
    WITH gone AS (
        DELETE FROM metrics.student_years y USING dirty_pairs p
        WHERE y.school_year = p.school_year AND y.student_key = p.student_key
        RETURNING y.*
    )
    INSERT INTO former_years SELECT * FROM gone;
    WITH made AS (
        INSERT INTO metrics.student_years
        SELECT * FROM metrics.student_year_rows(true, p_years, NULL, NULL)
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
    -- school year (0114's, unchanged).
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

-- 0116's full and year modes, the student-years and their cells made as above.
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
                 metrics.student_years, metrics.digit_preference;
        first_day := '-infinity';
        last_day := 'infinity';
    ELSE
        DELETE FROM metrics.fitness_cells WHERE school_year = ANY(p_years);
        DELETE FROM metrics.fitness_observations WHERE school_year = ANY(p_years);
        DELETE FROM metrics.indicator_cells WHERE school_year = ANY(p_years);
        DELETE FROM metrics.student_years WHERE school_year = ANY(p_years);
        DELETE FROM metrics.digit_preference WHERE school_year = ANY(p_years);
        first_day := make_date((SELECT min(y) FROM unnest(p_years) y), 9, 1);
        last_day := make_date((SELECT max(y) FROM unnest(p_years) y) + 1, 8, 31);
    END IF;

    IF all_years THEN
        -- Built once after the rows are in, as 0116 did for the observation rows' index.
        DROP INDEX metrics.student_years_key, metrics.student_years_school;
    END IF;
    INSERT INTO metrics.student_years
    SELECT * FROM metrics.student_year_rows(false, p_years, first_day, last_day);

    IF all_years THEN
        PERFORM set_config('maintenance_work_mem', '1GB', true);
        CREATE UNIQUE INDEX student_years_key ON metrics.student_years (school_year, student_key);
        CREATE INDEX student_years_school ON metrics.student_years (school_year, school_id);
        -- The tables were emptied: without fresh statistics the next statements are planned for
        -- empty tables (a merge join over an index and sorts instead of hash joins: 3 times slower).
        ANALYZE metrics.student_years;
    END IF;
    INSERT INTO metrics.indicator_cells
    SELECT * FROM metrics.count_indicator_cells('SELECT 1 AS sign, * FROM metrics.student_years'
        || CASE WHEN all_years THEN '' ELSE format(' WHERE school_year = ANY(%L::integer[])', p_years) END);

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

-- 0114's, without metrics.observations among the places a school year's rows can be.
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
REVOKE ALL ON FUNCTION metrics.student_year_rows(boolean, integer[], date, date),
    metrics.count_indicator_cells(text), metrics.merge_cell_changes(regclass) FROM PUBLIC;
