-- The `reporting` schema: the only thing Grafana and exports read. Views run with their owner's
-- rights, so the Grafana role needs nothing but USAGE on this schema and SELECT on its views; it
-- is granted nothing on archive, roster, ops, alerts or metrics. Health indicators come from
-- tables that hold suppressed cells already (withheld values are NULL, never stored in clear);
-- data-quality and alert-operations views count events and alerts, never students, and carry no
-- student key.

CREATE TABLE metrics.definitions (
    metric_id    text NOT NULL,
    version      integer NOT NULL,
    title        text NOT NULL,
    unit         text NOT NULL,
    numerator    text NOT NULL,
    denominator  text NOT NULL,
    inclusion    text NOT NULL,
    reference    text NOT NULL,
    PRIMARY KEY (metric_id, version)
);

CREATE VIEW reporting.metric_definitions AS
SELECT metric_id, version, title, unit, numerator, denominator, inclusion, reference FROM metrics.definitions;

CREATE VIEW reporting.counties AS
SELECT DISTINCT county_id, county_name FROM archive.schools;

CREATE VIEW reporting.schools AS
SELECT school_id, name AS school_name, county_id, county_name, urban_rural, stage, boarding
FROM archive.schools;

CREATE VIEW reporting.indicators AS
SELECT i.school_year, make_date(i.school_year, 9, 1)::timestamptz AS "time",
       i.metric_id, i.metric_version, d.title AS metric_title, i.level, i.area_id, i.area_name, i.county_id,
       i.breakdown, i.category, i.denominator, i.numerator, i.rate, i.ci_low, i.ci_high,
       i.previous_rate, i.change, i.change_ci_low, i.change_ci_high, i.suppressed, i.computed_at
FROM metrics.live_indicators i
LEFT JOIN metrics.definitions d ON d.metric_id = i.metric_id AND d.version = i.metric_version;

CREATE VIEW reporting.publications AS
SELECT school_year, revision, published_at AS "time", published_at, cells, definitions
FROM metrics.publications;

-- The newest revision of each published school year.
CREATE VIEW reporting.published_indicators AS
SELECT p.school_year, make_date(p.school_year, 9, 1)::timestamptz AS "time", p.revision, pub.published_at,
       p.metric_id, p.metric_version, d.title AS metric_title, p.level, p.area_id, p.area_name, p.county_id,
       p.breakdown, p.category, p.denominator, p.numerator, p.rate, p.ci_low, p.ci_high,
       p.previous_rate, p.change, p.change_ci_low, p.change_ci_high, p.suppressed
FROM metrics.published_indicators p
JOIN metrics.publications pub USING (school_year, revision)
LEFT JOIN metrics.definitions d ON d.metric_id = p.metric_id AND d.version = p.metric_version
WHERE p.revision = (SELECT max(revision) FROM metrics.publications l WHERE l.school_year = p.school_year);

-- Every revision, for exports that must cite exactly what was published when.
CREATE VIEW reporting.published_indicator_revisions AS
SELECT p.*, pub.published_at FROM metrics.published_indicators p JOIN metrics.publications pub USING (school_year, revision);

-- Data quality: what the pipeline and the importer rejected, per day, school and screener.
CREATE VIEW reporting.dq_rejections AS
SELECT date_trunc('day', received_at) AS "time", 'pipeline'::text AS source, code,
       COALESCE(d.school_id, '(unknown)') AS school_id, s.county_id, COALESCE(d.screener, '(unknown)') AS screener,
       count(*)::integer AS rejections
FROM ops.dead_letters d LEFT JOIN archive.schools s USING (school_id)
GROUP BY 1, 2, 3, 4, 5, 6
UNION ALL
SELECT date_trunc('day', rejected_at), 'import', kind || COALESCE(':' || field, ''),
       COALESCE(r.school_id, '(unknown)'), s.county_id, COALESCE(r.screener, '(unknown)'), count(*)::integer
FROM ops.import_rejections r LEFT JOIN archive.schools s USING (school_id)
GROUP BY 1, 2, 3, 4, 5, 6;

-- Accepted measurements per day, school and screener, with those flagged or not classifiable.
CREATE VIEW reporting.dq_measurements AS
SELECT g.day::timestamptz AS "time", 'growth'::text AS kind, g.school_id, s.county_id, g.screener,
       g.measurements::integer AS measurements, g.flagged::integer AS flagged, g.not_classified::integer AS not_classified
FROM metrics.growth_daily g LEFT JOIN archive.schools s USING (school_id)
UNION ALL
SELECT v.day::timestamptz, 'vision', v.school_id, s.county_id, v.screener,
       v.measurements::integer, 0, v.not_classified::integer
FROM metrics.vision_daily v LEFT JOIN archive.schools s USING (school_id);

-- Last digit (tenths) of heights and weights: with honest measuring each digit holds about 10%.
CREATE VIEW reporting.digit_preference AS
SELECT d.school_year, d.school_id, s.county_id, d.screener, d.quantity, d.last_digit, d.measurements,
       d.measurements::double precision
           / sum(d.measurements) OVER (PARTITION BY d.school_year, d.school_id, d.screener, d.quantity) AS share
FROM metrics.digit_preference d LEFT JOIN archive.schools s USING (school_id);

-- Alert operations: counts only, no student key and no single alert.
CREATE VIEW reporting.alert_queue AS
SELECT a.county_id, a.team, a.priority, a.state, a.escalation_level,
       count(*)::integer AS alerts,
       count(*) FILTER (WHERE a.state = 'open' AND a.ack_deadline < now())::integer AS overdue
FROM alerts.alerts a
WHERE a.state IN ('open', 'acknowledged', 'in_progress')
GROUP BY 1, 2, 3, 4, 5;

CREATE VIEW reporting.alert_acknowledgements AS
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
GROUP BY 1, 2, 3, 4;

CREATE VIEW reporting.alert_escalations AS
SELECT date_trunc('day', t.at) AS "time", a.county_id, a.team, a.priority, t.to_level,
       count(*)::integer AS escalations
FROM alerts.transitions t JOIN alerts.alerts a USING (alert_id)
WHERE t.to_level > t.from_level
GROUP BY 1, 2, 3, 4, 5;

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    grafana text := current_setting('schoolhealth.grafana_role');
    owner text := current_setting('schoolhealth.owner_role');
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON metrics.definitions TO %I', app);
    EXECUTE format('GRANT USAGE ON SCHEMA reporting TO %I, %I', grafana, app);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO %I, %I', grafana, app);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA reporting GRANT SELECT ON TABLES TO %I, %I',
                   owner, grafana, app);
    -- Belt and braces: whatever another migration granted by mistake, Grafana reads reporting only.
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA archive, roster, ops, metrics FROM %I', grafana);
    EXECUTE format('REVOKE ALL ON SCHEMA archive, roster, ops, metrics FROM %I', grafana);
END
$grants$;
