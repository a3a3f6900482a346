-- Alert operations views protected against differencing ACROSS views (0042 protected each view
-- alone). The health office reads alerts.school_summary (GET /summary) and, in Grafana,
-- reporting.alert_queue; both add up to the same county totals. So with 0042 alone:
--   * a county's priority total from alert_queue (all its cells published) minus the published
--     schools of that county gave the one school whose count was withheld, and that school's
--     total minus its other parts gave the rest;
--   * a county's total from the published schools minus the published alert_queue cells gave the
--     one alert_queue cell that was withheld.
-- Now:
--   * school_summary gives those who do not see a school's alerts (the health office) each
--     school's open total only: the breakdowns by priority, acknowledgement and escalation are
--     county-level, in alert_queue. A total from 1 to 9 is withheld, and where a county has exactly
--     one withheld school, its next smallest total is withheld too (complementary suppression).
--   * alert_queue withholds counts from 1 to 9, and where a county has exactly one withheld cell,
--     its next smallest cell too.
-- The only published relation between the views is then "county total = sum of its schools' totals
-- = sum of its alert_queue cells", and every county has no withheld term or at least two on each
-- side, so no withheld count is a difference of published ones (tests/integration/
-- test_alert_views_attack.py plays the attacker with every published cell of both views).
-- Staff who see a school's alerts keep every exact count of it, as before.

CREATE OR REPLACE VIEW alerts.school_summary AS
WITH counted AS (
    SELECT a.school_id, a.county_id,
           count(*) FILTER (WHERE a.priority = 'urgent') AS urgent,
           count(*) FILTER (WHERE a.priority = 'high') AS high,
           count(*) FILTER (WHERE a.priority = 'medium') AS medium,
           count(*) FILTER (WHERE a.priority = 'low') AS low,
           count(*) FILTER (WHERE a.state = 'open') AS unacknowledged,
           count(*) FILTER (WHERE a.escalation_level > 0) AS escalated,
           count(*) AS open_total,
           (auth.sees_all() OR a.school_id IN (SELECT auth.visible_schools())) AS exact
    FROM alerts.alerts a
    WHERE a.state IN ('open', 'acknowledged', 'in_progress')
      AND (auth.current_role_name() IN ('health_office', 'admin') OR a.school_id IN (SELECT auth.visible_schools()))
    GROUP BY a.school_id, a.county_id
), flagged AS (
    SELECT c.*, (NOT c.exact AND c.open_total BETWEEN 1 AND 9) AS small FROM counted c
), ranked AS (
    SELECT f.*,
           count(*) FILTER (WHERE f.small) OVER (PARTITION BY f.county_id, f.exact) AS small_in_county,
           row_number() OVER (PARTITION BY f.county_id, f.exact, f.small ORDER BY f.open_total, f.school_id) AS place
    FROM flagged f
)
SELECT school_id, county_id,
       CASE WHEN exact THEN urgent END AS urgent,
       CASE WHEN exact THEN high END AS high,
       CASE WHEN exact THEN medium END AS medium,
       CASE WHEN exact THEN low END AS low,
       CASE WHEN exact THEN unacknowledged END AS unacknowledged,
       CASE WHEN exact THEN escalated END AS escalated,
       CASE WHEN exact OR NOT (small OR (small_in_county = 1 AND place = 1)) THEN open_total END AS open_total
FROM ranked;

CREATE OR REPLACE VIEW reporting.alert_queue AS
WITH counted AS (
    SELECT a.county_id, a.team, a.priority, a.state, a.escalation_level,
           count(*)::integer AS alerts,
           count(*) FILTER (WHERE a.state = 'open' AND a.ack_deadline < now())::integer AS overdue
    FROM alerts.alerts a
    WHERE a.state IN ('open', 'acknowledged', 'in_progress')
    GROUP BY 1, 2, 3, 4, 5
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

-- The two other alert operations views for Grafana published every count, 1 to 9 included (one
-- urgent counselling alert opened in a county on a day is one pupil's crisis). Now: a count from 1
-- to 9 is withheld, and so is a count whose complement within the day's opened alerts is 1 to 9
-- (opened 15, acknowledged 12 would tell 3 unacknowledged); with `opened` withheld, every count and
-- time of that row is; times (median, 90th percentile) need at least 10 acknowledged alerts. These
-- series have no published totals (Grafana's sums add published cells only), so no withheld cell
-- is a difference of published ones.
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
    SELECT date_trunc('day', a.opened_at) AS "time", a.county_id, a.team, a.priority,
           count(*)::integer AS opened,
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
    GROUP BY 1, 2, 3, 4
) counted;

CREATE OR REPLACE VIEW reporting.alert_escalations AS
SELECT "time", county_id, team, priority, to_level,
       CASE WHEN escalations NOT BETWEEN 1 AND 9 THEN escalations END AS escalations
FROM (
    SELECT date_trunc('day', t.at) AS "time", a.county_id, a.team, a.priority, t.to_level,
           count(*)::integer AS escalations
    FROM alerts.transitions t JOIN alerts.alerts a USING (alert_id)
    WHERE t.to_level > t.from_level
    GROUP BY 1, 2, 3, 4, 5
) counted;
