-- Each school's and screener's share of last digits 0 and 5, kept beside the digit counts (issue 18).
--
-- The data-quality dashboard's "Digit preference" panel grouped a school year's rows of
-- metrics.digit_preference (school, screener, quantity, last digit: 63,355 rows in 2025 at a
-- million students) by school, screener and quantity, then sorted the groups by their share of
-- 0s and 5s to show the first 200: 51.0 ms p95 as the Grafana role in the 1M benchmark after 0117
-- (goal 50 ms), and growing with the number of schools. Now those groups are rows of
-- metrics.digit_preference_shares, indexed by school year and share, and the panel reads its first
-- 200 through the index, whatever the number of schools.
--
-- The table follows metrics.digit_preference through statement triggers, so every path that
-- writes the counts (the full, year and student modes of the refresh, 0117) keeps it without a
-- change: a TRUNCATE empties it; the (school year, school) pairs a DELETE or an INSERT touches are
-- computed again from the counts. Like the other rollups it is unlogged (0111): a crash empties
-- both, and the full refresh that follows fills both.
--
-- A group without any 0 or 5 has a share of 0 (the former query gave it no share, and sorted it
-- first).

CREATE UNLOGGED TABLE metrics.digit_preference_shares (
    school_year  integer NOT NULL,
    school_id    text NOT NULL,
    screener     text,
    quantity     text NOT NULL,
    measurements integer NOT NULL,
    share_0_or_5 double precision NOT NULL
);
CREATE INDEX digit_preference_shares_rank ON metrics.digit_preference_shares (school_year, share_0_or_5 DESC);
CREATE INDEX digit_preference_shares_school ON metrics.digit_preference_shares (school_year, school_id);

-- The shares of the (school year, school) pairs in `touched`, from the counts as they are now.
CREATE FUNCTION metrics.digit_preference_shares_follow() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE metrics.digit_preference_shares;
        RETURN NULL;
    END IF;
    DELETE FROM metrics.digit_preference_shares s
    USING (SELECT DISTINCT school_year, school_id FROM touched) t
    WHERE s.school_year = t.school_year AND s.school_id = t.school_id;
    INSERT INTO metrics.digit_preference_shares
    SELECT d.school_year, d.school_id, d.screener, d.quantity, sum(d.measurements)::integer,
           coalesce(sum(d.measurements) FILTER (WHERE d.last_digit IN (0, 5)), 0)::float / sum(d.measurements)
    FROM metrics.digit_preference d
    JOIN (SELECT DISTINCT school_year, school_id FROM touched) t
      ON d.school_year = t.school_year AND d.school_id = t.school_id
    GROUP BY d.school_year, d.school_id, d.screener, d.quantity
    HAVING sum(d.measurements) > 0;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER digit_preference_shares_insert AFTER INSERT ON metrics.digit_preference
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION metrics.digit_preference_shares_follow();
CREATE TRIGGER digit_preference_shares_delete AFTER DELETE ON metrics.digit_preference
    REFERENCING OLD TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION metrics.digit_preference_shares_follow();
CREATE TRIGGER digit_preference_shares_truncate AFTER TRUNCATE ON metrics.digit_preference
    FOR EACH STATEMENT EXECUTE FUNCTION metrics.digit_preference_shares_follow();

-- The counts already there (the table is new; a crash-emptied database has none, and its next
-- refresh is a full one).
INSERT INTO metrics.digit_preference_shares
SELECT school_year, school_id, screener, quantity, sum(measurements)::integer,
       coalesce(sum(measurements) FILTER (WHERE last_digit IN (0, 5)), 0)::float / sum(measurements)
FROM metrics.digit_preference
GROUP BY school_year, school_id, screener, quantity
HAVING sum(measurements) > 0;

CREATE VIEW reporting.digit_preference_shares AS
SELECT school_year, school_id, screener, quantity, measurements, share_0_or_5
FROM metrics.digit_preference_shares;

DO $grants$
BEGIN
    EXECUTE format('GRANT SELECT ON metrics.digit_preference_shares TO %I', current_setting('schoolhealth.app_role'));
    EXECUTE format('GRANT SELECT ON reporting.digit_preference_shares TO %I, %I',
                   current_setting('schoolhealth.grafana_role'), current_setting('schoolhealth.app_role'));
END
$grants$;
