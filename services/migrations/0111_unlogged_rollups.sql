-- The rollup tables unlogged (issue 18): a screening day's refresh no longer writes them twice.
--
-- The six rollup tables are derived data: recompute_rollups (0109) fills them from the archive,
-- and a full refresh rebuilds them whole. Logged, every page a refresh changes goes to the WAL as
-- well, whole the first time after each checkpoint: at a million students one screening day
-- deletes and re-inserts 1.2 million observation rows spread over nearly every page of the school
-- year (4.3 GB), and that DELETE took 100 s logged against 39 s unlogged (same database, the
-- same kind of day, measured beside the same load).
--
-- What unlogged costs: after a crash (or on a promoted standby, which never received them)
-- PostgreSQL empties these tables. metrics.rollups_intact says whether they hold a refresh's
-- result: a row written with each full refresh, in an unlogged table itself, so a crash empties it
-- together with the rollups (PostgreSQL resets every unlogged table in the same recovery). The
-- refresh (services/reporting/metrics.py) finds it empty and runs a full refresh instead of an
-- incremental one, once. Nothing the users see is unlogged: live and published indicators, the
-- marks, the refresh state and the archive stay logged (the dashboards show the last refresh's
-- indicators until the full one has run; the digit-preference panel is empty meanwhile).

ALTER TABLE metrics.student_years SET UNLOGGED;
ALTER TABLE metrics.observations SET UNLOGGED;
ALTER TABLE metrics.indicator_cells SET UNLOGGED;
ALTER TABLE metrics.fitness_observations SET UNLOGGED;
ALTER TABLE metrics.fitness_cells SET UNLOGGED;
ALTER TABLE metrics.digit_preference SET UNLOGGED;

CREATE UNLOGGED TABLE metrics.rollups_intact (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    since      timestamptz NOT NULL DEFAULT now()
);
-- The rollups hold what the last refresh made of the archive (a new database: nothing, correctly).
INSERT INTO metrics.rollups_intact DEFAULT VALUES;

DO $grants$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT ON metrics.rollups_intact TO %I', current_setting('schoolhealth.app_role'));
END
$grants$;
