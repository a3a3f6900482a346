-- Row-level security: an API request sees only the schools its user serves, and only the kind of
-- record its role acts on (counsellors: surveys and counselling alerts; school doctors: growth,
-- vision and their alerts). The health office sees no individual row, only `alerts.school_summary`.
-- The worker's app role keeps writing through policies of its own.

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA alerts TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON alerts.alerts TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON alerts.transitions, alerts.applied_events TO %I', app);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA alerts TO %I', app);

    EXECUTE format('GRANT USAGE ON SCHEMA archive, roster, alerts, audit TO %I', api);
    EXECUTE format('GRANT SELECT ON archive.schools, archive.students, archive.student_history, '
                   'archive.vision_screenings, archive.growth_screenings, archive.survey_results, '
                   'archive.vision_current, archive.growth_current, archive.survey_current TO %I', api);
    EXECUTE format('GRANT SELECT ON roster.students TO %I', api);
    EXECUTE format('GRANT SELECT, UPDATE ON alerts.alerts TO %I', api);
    EXECUTE format('GRANT SELECT, INSERT ON alerts.transitions TO %I', api);
    EXECUTE format('GRANT SELECT, INSERT ON audit.psych_reads TO %I', api);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA alerts, audit TO %I', api);

    -- Views must apply the caller's row-level security, not their owner's.
    ALTER VIEW archive.vision_current SET (security_invoker = true);
    ALTER VIEW archive.growth_current SET (security_invoker = true);
    ALTER VIEW archive.survey_current SET (security_invoker = true);

    ALTER TABLE archive.students ENABLE ROW LEVEL SECURITY;
    ALTER TABLE archive.student_history ENABLE ROW LEVEL SECURITY;
    ALTER TABLE archive.vision_screenings ENABLE ROW LEVEL SECURITY;
    ALTER TABLE archive.growth_screenings ENABLE ROW LEVEL SECURITY;
    ALTER TABLE archive.survey_results ENABLE ROW LEVEL SECURITY;
    ALTER TABLE roster.students ENABLE ROW LEVEL SECURITY;
    ALTER TABLE alerts.alerts ENABLE ROW LEVEL SECURITY;
    ALTER TABLE alerts.transitions ENABLE ROW LEVEL SECURITY;
    ALTER TABLE audit.psych_reads ENABLE ROW LEVEL SECURITY;

    -- The worker, importer and alert service (app role) see and write everything, as before.
    EXECUTE format('CREATE POLICY app_all ON archive.students TO %I USING (true) WITH CHECK (true)', app);
    EXECUTE format('CREATE POLICY app_all ON archive.student_history TO %I USING (true) WITH CHECK (true)', app);
    EXECUTE format('CREATE POLICY app_all ON archive.vision_screenings TO %I USING (true) WITH CHECK (true)', app);
    EXECUTE format('CREATE POLICY app_all ON archive.growth_screenings TO %I USING (true) WITH CHECK (true)', app);
    EXECUTE format('CREATE POLICY app_all ON archive.survey_results TO %I USING (true) WITH CHECK (true)', app);
    EXECUTE format('CREATE POLICY app_all ON roster.students TO %I USING (true) WITH CHECK (true)', app);
    EXECUTE format('CREATE POLICY app_all ON alerts.alerts TO %I USING (true) WITH CHECK (true)', app);
    EXECUTE format('CREATE POLICY app_all ON alerts.transitions TO %I USING (true) WITH CHECK (true)', app);

    -- Per-request users. Sub-selects make each function run once per statement, not per row.
    EXECUTE format($p$CREATE POLICY api_read ON archive.survey_results FOR SELECT TO %I USING (
        (SELECT auth.sees_all())
        OR ('counselling' IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR school_id IN (SELECT auth.lead_schools()))$p$, api);
    EXECUTE format($p$CREATE POLICY api_read ON archive.growth_screenings FOR SELECT TO %I USING (
        (SELECT auth.sees_all())
        OR ('school_doctor' IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR school_id IN (SELECT auth.lead_schools()))$p$, api);
    EXECUTE format($p$CREATE POLICY api_read ON archive.vision_screenings FOR SELECT TO %I USING (
        (SELECT auth.sees_all())
        OR ('school_doctor' IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR school_id IN (SELECT auth.lead_schools()))$p$, api);
    EXECUTE format($p$CREATE POLICY api_read ON archive.students FOR SELECT TO %I USING (
        (SELECT auth.sees_all())
        OR ((SELECT count(*) FROM auth.visible_teams()) > 0 AND school_id IN (SELECT auth.visible_schools())))$p$, api);
    EXECUTE format($p$CREATE POLICY api_read ON archive.student_history FOR SELECT TO %I USING (
        (SELECT auth.sees_all())
        OR ((SELECT count(*) FROM auth.visible_teams()) > 0 AND school_id IN (SELECT auth.visible_schools())))$p$, api);
    EXECUTE format($p$CREATE POLICY api_read ON roster.students FOR SELECT TO %I USING (
        (SELECT auth.sees_all())
        OR ((SELECT count(*) FROM auth.visible_teams()) > 0 AND school_id IN (SELECT auth.visible_schools())))$p$, api);
    EXECUTE format($p$CREATE POLICY api_read ON alerts.alerts FOR SELECT TO %I USING (
        (SELECT auth.sees_all())
        OR (team IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR (escalation_level >= 1 AND school_id IN (SELECT auth.lead_schools())))$p$, api);
    EXECUTE format($p$CREATE POLICY api_update ON alerts.alerts FOR UPDATE TO %I USING (
        (SELECT auth.sees_all())
        OR (team IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR (escalation_level >= 1 AND school_id IN (SELECT auth.lead_schools())))
        WITH CHECK (true)$p$, api);
    EXECUTE format($p$CREATE POLICY api_read ON alerts.transitions FOR SELECT TO %I USING (
        alert_id IN (SELECT a.alert_id FROM alerts.alerts a))$p$, api);
    EXECUTE format($p$CREATE POLICY api_insert ON alerts.transitions FOR INSERT TO %I WITH CHECK (
        alert_id IN (SELECT a.alert_id FROM alerts.alerts a))$p$, api);
    EXECUTE format($p$CREATE POLICY api_insert ON audit.psych_reads FOR INSERT TO %I WITH CHECK (true)$p$, api);
    EXECUTE format($p$CREATE POLICY api_read ON audit.psych_reads FOR SELECT TO %I USING (
        (SELECT auth.sees_all()))$p$, api);
END
$grants$;

-- Aggregates for the health office and county officers: counts per school, no individual row.
-- Owned by the owner (not security_invoker) on purpose; it filters by role itself.
CREATE VIEW alerts.school_summary AS
SELECT a.school_id, a.county_id,
       count(*) FILTER (WHERE a.priority = 'urgent') AS urgent,
       count(*) FILTER (WHERE a.priority = 'high') AS high,
       count(*) FILTER (WHERE a.priority = 'medium') AS medium,
       count(*) FILTER (WHERE a.priority = 'low') AS low,
       count(*) FILTER (WHERE a.state = 'open') AS unacknowledged,
       count(*) FILTER (WHERE a.escalation_level > 0) AS escalated,
       count(*) AS open_total
FROM alerts.alerts a
WHERE a.state IN ('open', 'acknowledged', 'in_progress')
  AND (auth.current_role_name() IN ('health_office', 'admin') OR a.school_id IN (SELECT auth.visible_schools()))
GROUP BY a.school_id, a.county_id;

DO $grants$
BEGIN
    EXECUTE format('GRANT SELECT ON alerts.school_summary TO %I', current_setting('schoolhealth.app_role') || '_api');
END
$grants$;
