-- School scoping of the measurement tables without row-level security (issue 13), on both backends.
--
-- TimescaleDB refuses row-level security on a hypertable with columnstore, and refuses continuous
-- aggregates over a hypertable with row security (0A000). The measurement tables become
-- hypertables with both (0025), so their scoping moves from policies to views, and the same design
-- holds on plain PostgreSQL so that both backends answer every request alike:
--
--   * archive.vision_screenings, growth_screenings and survey_results are read and written only by
--     the owner (migrations, rollups, operator tools) and the app role (worker, importer, scorer);
--     the API's per-request role loses SELECT on them.
--   * The API reads them through archive.vision_current, growth_current and survey_current: views
--     that run with their owner's rights (not security_invoker) and are security barriers, whose
--     WHERE clause is `archive.school_scope_sql('<alias>.school_id', team)`: exactly the scope the
--     `api_read` policies of 0006 gave (admin sees all; a user whose role acts on `team` sees the
--     schools they serve; a school's lead sees that school), and everything for the owner and app
--     role, who could read the tables anyway. Any other role sees nothing.
--   * Tables that never become hypertables (students, student history, roster, alerts, audit, risk
--     scores) keep their row-level security.
--
-- For a new measurement table (e.g. #19's fitness results): no row-level security on it, SELECT
-- for the owner and app role only, and a security-barrier view `<name>_current` or similar whose
-- WHERE clause includes `archive.school_scope_sql('<alias>.school_id', '<team>')` (build the
-- CREATE VIEW with format() in a DO block, as below), granted to the API role. See
-- 0025 for making the table a hypertable (`archive.make_hypertable`).

-- The WHERE clause that scopes rows of kind `team` ('counselling' or 'school_doctor') whose school
-- is in `school_column`, as SQL text for a view definition: the owner and app role read every row
-- (they may read the tables anyway); admin sees all; a user whose role acts on `team` sees the
-- schools they serve; a school's lead sees that school. It is text, not a function to call per
-- row, because a SQL function with sub-selects is never inlined: written into the view, each
-- sub-select runs once per statement, as in the policies it replaces. Role names are the
-- deployment's (set by `schoolhealth migrate`) and are baked into the text.
DO $scope$
DECLARE
    owner text := current_setting('schoolhealth.owner_role');
    app text := current_setting('schoolhealth.app_role');
BEGIN
    EXECUTE format($fn$
        CREATE FUNCTION archive.school_scope_sql(school_column text, team text) RETURNS text
        LANGUAGE sql IMMUTABLE
        RETURN format('(current_user IN (%%1$L, %%2$L) OR (SELECT auth.sees_all())'
                      ' OR (%%3$L IN (SELECT auth.visible_teams()) AND %%4$s IN (SELECT auth.visible_schools()))'
                      ' OR %%4$s IN (SELECT auth.lead_schools()))', %L, %L, team, school_column)
        $fn$, owner, app);
END
$scope$;
REVOKE ALL ON FUNCTION archive.school_scope_sql(text, text) FROM PUBLIC;

DO $scoping$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    api text := current_setting('schoolhealth.app_role') || '_api';
    measurement text;
BEGIN
    FOREACH measurement IN ARRAY ARRAY['vision_screenings', 'growth_screenings', 'survey_results'] LOOP
        EXECUTE format('DROP POLICY app_all ON archive.%I', measurement);
        EXECUTE format('DROP POLICY api_read ON archive.%I', measurement);
        EXECUTE format('ALTER TABLE archive.%I DISABLE ROW LEVEL SECURITY', measurement);
        EXECUTE format('REVOKE ALL ON archive.%I FROM %I', measurement, api);
    END LOOP;
END
$scoping$;

-- Same names and columns as before; the scope joins the "not superseded" condition.
ALTER VIEW archive.vision_current RESET (security_invoker);
ALTER VIEW archive.growth_current RESET (security_invoker);
ALTER VIEW archive.survey_current RESET (security_invoker);
DO $views$
BEGIN
    EXECUTE format($v$CREATE OR REPLACE VIEW archive.vision_current WITH (security_barrier = true) AS
        SELECT v.* FROM archive.vision_screenings v
        WHERE NOT EXISTS (SELECT 1 FROM archive.vision_screenings c WHERE c.supersedes = v.event_id)
          AND %s$v$, archive.school_scope_sql('v.school_id', 'school_doctor'));
    EXECUTE format($v$CREATE OR REPLACE VIEW archive.growth_current WITH (security_barrier = true) AS
        SELECT g.* FROM archive.growth_screenings g
        WHERE NOT EXISTS (SELECT 1 FROM archive.growth_screenings c WHERE c.supersedes = g.event_id)
          AND %s$v$, archive.school_scope_sql('g.school_id', 'school_doctor'));
    EXECUTE format($v$CREATE OR REPLACE VIEW archive.survey_current WITH (security_barrier = true) AS
        SELECT s.* FROM archive.survey_results s
        WHERE NOT EXISTS (SELECT 1 FROM archive.survey_results c WHERE c.supersedes = s.event_id)
          AND %s$v$, archive.school_scope_sql('s.school_id', 'counselling'));
END
$views$;
