-- Fitness results like the other measurement tables (issue 13's design, migrations 0024 and 0025),
-- so that they can be compressed: TimescaleDB refuses row-level security on a hypertable with
-- columnstore, so archive.fitness_results loses the policies of 0060 and its scope moves into the
-- view the API reads.
--
--   * archive.fitness_results is read and written only by the owner and the app role (worker,
--     importer, metrics); the API's role loses SELECT on it.
--   * archive.fitness_current runs with its owner's rights, is a security barrier, and its WHERE
--     clause is archive.school_scope_sql('f.school_id', 'school_doctor'): the scope the api_read
--     policy of 0060 gave (admin sees all; a school doctor sees the schools they serve; a school's
--     lead sees that school; the owner and app role see every row).
--   * archive.fitness_year reads fitness_current with its caller's rights (security_invoker, as in
--     0060), so it is scoped by the view it reads; the graduation view of 0064 reads fitness_year.
--   * The table is registered with archive.make_hypertable: where TimescaleDB is installed (now or
--     later) it gets the project's 28-day chunks for new data (0060 made it a hypertable with
--     one-year chunks; those keep their range), columnstore segmented by school and ordered by
--     student and date, and the closed-school-year columnstore job covers it.
-- tests/integration/test_fitness_archive.py checks every view over the table for the scope.

DO $scoping$
DECLARE
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    DROP POLICY app_all ON archive.fitness_results;
    DROP POLICY api_read ON archive.fitness_results;
    ALTER TABLE archive.fitness_results DISABLE ROW LEVEL SECURITY;
    EXECUTE format('REVOKE ALL ON archive.fitness_results FROM %I', api);
END
$scoping$;

ALTER VIEW archive.fitness_current RESET (security_invoker);
DO $views$
BEGIN
    EXECUTE format($v$CREATE OR REPLACE VIEW archive.fitness_current WITH (security_barrier = true) AS
        SELECT f.* FROM archive.fitness_results f
        WHERE NOT EXISTS (SELECT 1 FROM archive.fitness_results c WHERE c.supersedes = f.event_id)
          AND %s$v$, archive.school_scope_sql('f.school_id', 'school_doctor'));
END
$views$;

SELECT archive.make_hypertable('archive.fitness_results', 'measured_on');
