-- Alert operations views publish no count from 1 to 9 to those who may not see the alerts
-- themselves. alerts.school_summary gives exact counts to users who see the school's alerts
-- anyway (its counsellors and doctors, county officers of its county, administrators); for the
-- health office every count from 1 to 9 is withheld, and the total is withheld with it whenever
-- any of its parts is (so no part can be recovered as the total minus the others).
-- reporting.alert_queue (Grafana) withholds counts from 1 to 9 the same way.

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
)
SELECT school_id, county_id,
       CASE WHEN exact OR urgent NOT BETWEEN 1 AND 9 THEN urgent END AS urgent,
       CASE WHEN exact OR high NOT BETWEEN 1 AND 9 THEN high END AS high,
       CASE WHEN exact OR medium NOT BETWEEN 1 AND 9 THEN medium END AS medium,
       CASE WHEN exact OR low NOT BETWEEN 1 AND 9 THEN low END AS low,
       CASE WHEN exact OR unacknowledged NOT BETWEEN 1 AND 9 THEN unacknowledged END AS unacknowledged,
       CASE WHEN exact OR escalated NOT BETWEEN 1 AND 9 THEN escalated END AS escalated,
       CASE WHEN exact OR NOT (open_total BETWEEN 1 AND 9 OR urgent BETWEEN 1 AND 9 OR high BETWEEN 1 AND 9
                               OR medium BETWEEN 1 AND 9 OR low BETWEEN 1 AND 9) THEN open_total END AS open_total
FROM counted;

CREATE OR REPLACE VIEW reporting.alert_queue AS
SELECT county_id, team, priority, state, escalation_level,
       CASE WHEN alerts NOT BETWEEN 1 AND 9 THEN alerts END AS alerts,
       CASE WHEN alerts NOT BETWEEN 1 AND 9 AND overdue NOT BETWEEN 1 AND 9 THEN overdue END AS overdue
FROM (
    SELECT a.county_id, a.team, a.priority, a.state, a.escalation_level,
           count(*)::integer AS alerts,
           count(*) FILTER (WHERE a.state = 'open' AND a.ack_deadline < now())::integer AS overdue
    FROM alerts.alerts a
    WHERE a.state IN ('open', 'acknowledged', 'in_progress')
    GROUP BY 1, 2, 3, 4, 5
) counted;
