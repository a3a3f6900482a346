-- The alert operations panels cost what they show, not what the alert archive holds (issue 18).
--
-- reporting.alert_queue, alert_acknowledgements and alert_escalations (0046) counted, sorted and
-- took percentiles over every alert of the province on every panel load: 43 ms at 100,000 students,
-- 142 ms at 300,000 on TimescaleDB, growing with the alerts ever opened. Their pre-suppression
-- cells (the `counted` part of each view) are now kept in three rollup tables, recomputed by the
-- metrics refresh (`alerts.refresh_panel_rollups()`, every worker's timer, `schoolhealth refresh`),
-- and the views read the rollup where it is exact and compute live only the cells it may not be:
--
--   * a cell whose alerts changed since the rollup: a trigger on alerts.alerts and
--     alerts.transitions marks the cell of the row before and after each change (insert, update,
--     delete; a change of county, team or priority marks the alert's escalation cells too), in the
--     writer's own transaction, so a change is visible exactly when its mark is;
--   * a cell with an alert whose acknowledgement deadline passed since the rollup was computed
--     (`overdue` and `late` count deadlines before now(): time changes them without a write);
--   * every day cell, when the reader's TimeZone is not the one the rollup cut days in (days are
--     `date_trunc('day', ...)` in the session's time zone, as before).
--
-- So every published number is what the former view gave at the same instant (the suppression
-- rules below are 0046's, unchanged, applied to the same cells); the rollup only decides which
-- cells need reading. The refresh deletes the marks it sees and then recomputes from a later
-- snapshot (each statement of the function takes its own): a change committed in between is in
-- the rollup and still marked, so it is read live, which is exact too (the design of 0085).
-- tests/integration/services/alerts/test_alert_panel_rollups.py compares every view with 0046's definition after
-- writes, refreshes, deadlines passing and in another time zone.

CREATE TABLE alerts.panel_rollup_state (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- The refreshing transaction's now(): overdue and late were counted against it.
    computed_at  timestamptz NOT NULL,
    -- The session TimeZone the day cells were cut in.
    time_zone    text NOT NULL
);

CREATE TABLE alerts.queue_rollup (
    county_id         text,
    team              text NOT NULL,
    priority          text NOT NULL,
    state             text NOT NULL,
    escalation_level  smallint NOT NULL,
    alerts            integer NOT NULL,
    overdue           integer NOT NULL
);

CREATE TABLE alerts.acknowledgement_rollup (
    "time"                 timestamptz NOT NULL,
    county_id              text,
    team                   text NOT NULL,
    priority               text NOT NULL,
    opened                 integer NOT NULL,
    acknowledged           integer NOT NULL,
    within_deadline        integer NOT NULL,
    late                   integer NOT NULL,
    median_ack_minutes     double precision,
    p90_ack_minutes        double precision,
    mean_deadline_minutes  double precision
);
CREATE INDEX acknowledgement_rollup_time ON alerts.acknowledgement_rollup ("time");

CREATE TABLE alerts.escalation_rollup (
    "time"       timestamptz NOT NULL,
    county_id    text,
    team         text NOT NULL,
    priority     text NOT NULL,
    to_level     smallint NOT NULL,
    escalations  integer NOT NULL
);
CREATE INDEX escalation_rollup_time ON alerts.escalation_rollup ("time");

-- Cells changed since the rollup. Appended without a key, so writers never wait on each other.
CREATE TABLE alerts.queue_marks (
    county_id text, team text NOT NULL, priority text NOT NULL, state text NOT NULL, escalation_level smallint NOT NULL
);
CREATE TABLE alerts.acknowledgement_marks (
    opened_at timestamptz NOT NULL, county_id text, team text NOT NULL, priority text NOT NULL
);
CREATE TABLE alerts.escalation_marks (
    at timestamptz NOT NULL, county_id text, team text NOT NULL, priority text NOT NULL, to_level smallint NOT NULL
);

-- What the live part reads: one cell's alerts, and the deadlines that passed since the rollup.
CREATE INDEX alerts_open_cell ON alerts.alerts (team, priority, state, escalation_level, county_id)
    WHERE state IN ('open', 'acknowledged', 'in_progress');
CREATE INDEX alerts_opened_at ON alerts.alerts (opened_at);
CREATE INDEX alerts_ack_deadline ON alerts.alerts (ack_deadline);
CREATE INDEX transitions_escalated_at ON alerts.transitions (at) WHERE to_level > from_level;

-- The cells the former views computed (0046's `counted`), as functions of the whole table, for the
-- refresh. The views below repeat them per cell for the live part.
CREATE FUNCTION alerts.refresh_panel_rollups() RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, alerts
AS $fn$
BEGIN
    -- One refresh at a time (the metrics refresh holds its own lock too).
    PERFORM 1 FROM alerts.panel_rollup_state FOR UPDATE;
    -- The marks seen now; what commits after this statement stays marked (and is read live).
    DELETE FROM alerts.queue_marks;
    DELETE FROM alerts.acknowledgement_marks;
    DELETE FROM alerts.escalation_marks;

    DELETE FROM alerts.queue_rollup;
    INSERT INTO alerts.queue_rollup
    SELECT a.county_id, a.team, a.priority, a.state, a.escalation_level,
           count(*)::integer,
           count(*) FILTER (WHERE a.state = 'open' AND a.ack_deadline < now())::integer
    FROM alerts.alerts a
    WHERE a.state IN ('open', 'acknowledged', 'in_progress')
    GROUP BY 1, 2, 3, 4, 5;

    DELETE FROM alerts.acknowledgement_rollup;
    INSERT INTO alerts.acknowledgement_rollup
    SELECT date_trunc('day', a.opened_at), a.county_id, a.team, a.priority,
           count(*)::integer,
           count(a.acknowledged_at)::integer,
           count(*) FILTER (WHERE a.acknowledged_at <= a.ack_deadline)::integer,
           count(*) FILTER (WHERE a.acknowledged_at > a.ack_deadline
                            OR (a.acknowledged_at IS NULL AND a.ack_deadline < now()))::integer,
           (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.opened_at))
               FILTER (WHERE a.acknowledged_at IS NOT NULL) / 60)::double precision,
           (percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.opened_at))
               FILTER (WHERE a.acknowledged_at IS NOT NULL) / 60)::double precision,
           (avg(extract(epoch FROM a.ack_deadline - a.opened_at)) / 60)::double precision
    FROM alerts.alerts a
    GROUP BY 1, 2, 3, 4;

    DELETE FROM alerts.escalation_rollup;
    INSERT INTO alerts.escalation_rollup
    SELECT date_trunc('day', t.at), a.county_id, a.team, a.priority, t.to_level, count(*)::integer
    FROM alerts.transitions t JOIN alerts.alerts a USING (alert_id)
    WHERE t.to_level > t.from_level
    GROUP BY 1, 2, 3, 4, 5;

    UPDATE alerts.panel_rollup_state SET computed_at = now(), time_zone = current_setting('TimeZone');
END
$fn$;
REVOKE ALL ON FUNCTION alerts.refresh_panel_rollups() FROM PUBLIC;

INSERT INTO alerts.panel_rollup_state (computed_at, time_zone) VALUES (now(), current_setting('TimeZone'));
SELECT alerts.refresh_panel_rollups();

-- One alert row's cells (before or after a change); `escalations`: its escalation cells too.
CREATE FUNCTION alerts.mark_alert_cells(a alerts.alerts, escalations boolean) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, alerts
BEGIN ATOMIC
    INSERT INTO alerts.queue_marks VALUES (a.county_id, a.team, a.priority, a.state, a.escalation_level);
    INSERT INTO alerts.acknowledgement_marks VALUES (a.opened_at, a.county_id, a.team, a.priority);
    INSERT INTO alerts.escalation_marks
    SELECT t.at, a.county_id, a.team, a.priority, t.to_level
    FROM alerts.transitions t WHERE escalations AND t.alert_id = a.alert_id AND t.to_level > t.from_level;
END;
REVOKE ALL ON FUNCTION alerts.mark_alert_cells(alerts.alerts, boolean) FROM PUBLIC;

CREATE FUNCTION alerts.mark_panel_cells() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, alerts
AS $fn$
DECLARE
    moved boolean := true;
BEGIN
    IF TG_TABLE_NAME = 'transitions' THEN
        IF NEW.to_level > NEW.from_level THEN
            INSERT INTO alerts.escalation_marks
            SELECT NEW.at, a.county_id, a.team, a.priority, NEW.to_level FROM alerts.alerts a
            WHERE a.alert_id = NEW.alert_id;
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- An alert's escalations are counted in its county, team and priority cells.
        moved := (OLD.county_id, OLD.team, OLD.priority) IS DISTINCT FROM (NEW.county_id, NEW.team, NEW.priority);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM alerts.mark_alert_cells(OLD, moved);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM alerts.mark_alert_cells(NEW, moved);
    END IF;
    RETURN NULL;
END
$fn$;
REVOKE ALL ON FUNCTION alerts.mark_panel_cells() FROM PUBLIC;

CREATE TRIGGER alerts_mark_panel_cells AFTER INSERT OR UPDATE OR DELETE ON alerts.alerts
    FOR EACH ROW EXECUTE FUNCTION alerts.mark_panel_cells();
CREATE TRIGGER transitions_mark_panel_cells AFTER INSERT ON alerts.transitions
    FOR EACH ROW EXECUTE FUNCTION alerts.mark_panel_cells();

DO $grants$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION alerts.refresh_panel_rollups() TO %I',
                   current_setting('schoolhealth.app_role'));
END
$grants$;

-- The views: the same columns and suppression as 0046; `counted` is the rollup's exact cells plus
-- the live cells.
CREATE OR REPLACE VIEW reporting.alert_queue AS
WITH stale AS (
    SELECT DISTINCT m.county_id, m.team, m.priority, m.state, m.escalation_level FROM (
        SELECT county_id, team, priority, state, escalation_level FROM alerts.queue_marks
        UNION ALL
        SELECT a.county_id, a.team, a.priority, a.state, a.escalation_level
        FROM alerts.alerts a
        WHERE a.state = 'open' AND a.ack_deadline < now()
          AND a.ack_deadline >= (SELECT s.computed_at FROM alerts.panel_rollup_state s)
    ) m
), counted AS (
    SELECT r.county_id, r.team, r.priority, r.state, r.escalation_level, r.alerts, r.overdue
    FROM alerts.queue_rollup r
    WHERE NOT EXISTS (SELECT 1 FROM stale g
                      WHERE g.team = r.team AND g.priority = r.priority AND g.state = r.state
                        AND g.escalation_level = r.escalation_level AND g.county_id IS NOT DISTINCT FROM r.county_id)
    UNION ALL
    SELECT g.county_id, g.team, g.priority, g.state, g.escalation_level, c.alerts, c.overdue
    FROM stale g CROSS JOIN LATERAL (
        SELECT count(*)::integer AS alerts,
               count(*) FILTER (WHERE a.state = 'open' AND a.ack_deadline < now())::integer AS overdue
        FROM alerts.alerts a
        WHERE a.state IN ('open', 'acknowledged', 'in_progress')
          AND a.team = g.team AND a.priority = g.priority AND a.state = g.state
          AND a.escalation_level = g.escalation_level
          AND (a.county_id = g.county_id OR (a.county_id IS NULL AND g.county_id IS NULL))
    ) c
    WHERE g.state IN ('open', 'acknowledged', 'in_progress') AND c.alerts > 0
), ranked AS (
    SELECT c.*, c.alerts BETWEEN 1 AND 9 AS small,
           count(*) FILTER (WHERE c.alerts BETWEEN 1 AND 9) OVER (PARTITION BY c.county_id) AS small_in_county,
           row_number() OVER (PARTITION BY c.county_id, c.alerts BETWEEN 1 AND 9
                              ORDER BY c.alerts, c.team, c.priority, c.state, c.escalation_level) AS place
    FROM counted c
), withheld AS (
    SELECT r.*, (r.small OR (r.small_in_county = 1 AND r.place = 1)) AS hidden FROM ranked r
)
SELECT county_id, team, priority, state, escalation_level,
       CASE WHEN NOT hidden THEN alerts END AS alerts,
       CASE WHEN NOT hidden AND overdue NOT BETWEEN 1 AND 9 THEN overdue END AS overdue
FROM withheld;

CREATE OR REPLACE VIEW reporting.alert_acknowledgements AS
SELECT "time", county_id, team, priority,
       CASE WHEN opened NOT BETWEEN 1 AND 9 THEN opened END AS opened,
       CASE WHEN opened NOT BETWEEN 1 AND 9 AND acknowledged NOT BETWEEN 1 AND 9
                 AND opened - acknowledged NOT BETWEEN 1 AND 9 THEN acknowledged END AS acknowledged,
       CASE WHEN opened NOT BETWEEN 1 AND 9 AND within_deadline NOT BETWEEN 1 AND 9
                 AND opened - within_deadline NOT BETWEEN 1 AND 9 THEN within_deadline END AS within_deadline,
       CASE WHEN opened NOT BETWEEN 1 AND 9 AND late NOT BETWEEN 1 AND 9
                 AND opened - late NOT BETWEEN 1 AND 9 THEN late END AS late,
       CASE WHEN opened NOT BETWEEN 1 AND 9 AND acknowledged >= 10 THEN median_ack_minutes END AS median_ack_minutes,
       CASE WHEN opened NOT BETWEEN 1 AND 9 AND acknowledged >= 10 THEN p90_ack_minutes END AS p90_ack_minutes,
       CASE WHEN opened NOT BETWEEN 1 AND 9 THEN mean_deadline_minutes END AS mean_deadline_minutes
FROM (
    -- The rollup's cells, in the time zone they were cut in, where nothing changed since.
    SELECT r."time", r.county_id, r.team, r.priority, r.opened, r.acknowledged, r.within_deadline, r.late,
           r.median_ack_minutes, r.p90_ack_minutes, r.mean_deadline_minutes
    FROM alerts.acknowledgement_rollup r
    WHERE (SELECT s.time_zone FROM alerts.panel_rollup_state s) = current_setting('TimeZone')
      AND NOT EXISTS (SELECT 1 FROM alerts.acknowledgement_marks m
                      WHERE m.opened_at >= r."time" AND m.opened_at < r."time" + INTERVAL '1 day'
                        AND m.team = r.team AND m.priority = r.priority
                        AND m.county_id IS NOT DISTINCT FROM r.county_id)
      AND NOT EXISTS (SELECT 1 FROM alerts.alerts a
                      WHERE a.acknowledged_at IS NULL AND a.ack_deadline < now()
                        AND a.ack_deadline >= (SELECT s.computed_at FROM alerts.panel_rollup_state s)
                        AND a.opened_at >= r."time" AND a.opened_at < r."time" + INTERVAL '1 day'
                        AND a.team = r.team AND a.priority = r.priority
                        AND a.county_id IS NOT DISTINCT FROM r.county_id)
    UNION ALL
    -- The other cells of the rollup's time zone, computed from their alerts.
    SELECT g."time", g.county_id, g.team, g.priority, c.*
    FROM (
        SELECT DISTINCT date_trunc('day', m.opened_at) AS "time", m.county_id, m.team, m.priority FROM (
            SELECT opened_at, county_id, team, priority FROM alerts.acknowledgement_marks
            UNION ALL
            SELECT a.opened_at, a.county_id, a.team, a.priority
            FROM alerts.alerts a
            WHERE a.acknowledged_at IS NULL AND a.ack_deadline < now()
              AND a.ack_deadline >= (SELECT s.computed_at FROM alerts.panel_rollup_state s)
        ) m
    ) g CROSS JOIN LATERAL (
        SELECT count(*)::integer AS opened,
               count(a.acknowledged_at)::integer AS acknowledged,
               count(*) FILTER (WHERE a.acknowledged_at <= a.ack_deadline)::integer AS within_deadline,
               count(*) FILTER (WHERE a.acknowledged_at > a.ack_deadline
                                OR (a.acknowledged_at IS NULL AND a.ack_deadline < now()))::integer AS late,
               (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.opened_at))
                   FILTER (WHERE a.acknowledged_at IS NOT NULL) / 60)::double precision AS median_ack_minutes,
               (percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.opened_at))
                   FILTER (WHERE a.acknowledged_at IS NOT NULL) / 60)::double precision AS p90_ack_minutes,
               (avg(extract(epoch FROM a.ack_deadline - a.opened_at)) / 60)::double precision AS mean_deadline_minutes
        FROM alerts.alerts a
        WHERE a.opened_at >= g."time" AND a.opened_at < g."time" + INTERVAL '1 day'
          AND a.team = g.team AND a.priority = g.priority AND a.county_id IS NOT DISTINCT FROM g.county_id
    ) c
    WHERE (SELECT s.time_zone FROM alerts.panel_rollup_state s) = current_setting('TimeZone') AND c.opened > 0
    UNION ALL
    -- Another time zone than the rollup's: every cell from the alerts (0046's computation).
    SELECT date_trunc('day', a.opened_at) AS "time", a.county_id, a.team, a.priority,
           count(*)::integer,
           count(a.acknowledged_at)::integer,
           count(*) FILTER (WHERE a.acknowledged_at <= a.ack_deadline)::integer,
           count(*) FILTER (WHERE a.acknowledged_at > a.ack_deadline
                            OR (a.acknowledged_at IS NULL AND a.ack_deadline < now()))::integer,
           (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.opened_at))
               FILTER (WHERE a.acknowledged_at IS NOT NULL) / 60)::double precision,
           (percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.opened_at))
               FILTER (WHERE a.acknowledged_at IS NOT NULL) / 60)::double precision,
           (avg(extract(epoch FROM a.ack_deadline - a.opened_at)) / 60)::double precision
    FROM alerts.alerts a
    WHERE (SELECT s.time_zone FROM alerts.panel_rollup_state s) IS DISTINCT FROM current_setting('TimeZone')
    GROUP BY 1, 2, 3, 4
) counted;

CREATE OR REPLACE VIEW reporting.alert_escalations AS
SELECT "time", county_id, team, priority, to_level,
       CASE WHEN escalations NOT BETWEEN 1 AND 9 THEN escalations END AS escalations
FROM (
    SELECT r."time", r.county_id, r.team, r.priority, r.to_level, r.escalations
    FROM alerts.escalation_rollup r
    WHERE (SELECT s.time_zone FROM alerts.panel_rollup_state s) = current_setting('TimeZone')
      AND NOT EXISTS (SELECT 1 FROM alerts.escalation_marks m
                      WHERE m.at >= r."time" AND m.at < r."time" + INTERVAL '1 day'
                        AND m.team = r.team AND m.priority = r.priority AND m.to_level = r.to_level
                        AND m.county_id IS NOT DISTINCT FROM r.county_id)
    UNION ALL
    SELECT g."time", g.county_id, g.team, g.priority, g.to_level, c.escalations
    FROM (
        SELECT DISTINCT date_trunc('day', m.at) AS "time", m.county_id, m.team, m.priority, m.to_level
        FROM alerts.escalation_marks m
    ) g CROSS JOIN LATERAL (
        SELECT count(*)::integer AS escalations
        FROM alerts.transitions t JOIN alerts.alerts a USING (alert_id)
        WHERE t.to_level > t.from_level AND t.at >= g."time" AND t.at < g."time" + INTERVAL '1 day'
          AND t.to_level = g.to_level AND a.team = g.team AND a.priority = g.priority
          AND a.county_id IS NOT DISTINCT FROM g.county_id
    ) c
    WHERE (SELECT s.time_zone FROM alerts.panel_rollup_state s) = current_setting('TimeZone') AND c.escalations > 0
    UNION ALL
    SELECT date_trunc('day', t.at), a.county_id, a.team, a.priority, t.to_level, count(*)::integer
    FROM alerts.transitions t JOIN alerts.alerts a USING (alert_id)
    WHERE t.to_level > t.from_level
      AND (SELECT s.time_zone FROM alerts.panel_rollup_state s) IS DISTINCT FROM current_setting('TimeZone')
    GROUP BY 1, 2, 3, 4, 5
) counted;
