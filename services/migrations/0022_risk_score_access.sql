-- Risk scores for the people who act on them (issue 5): a counsellor sees the depression scores,
-- a school doctor the myopia and overweight scores, of the schools they serve; a school's lead
-- sees its school's scores; the health office sees none. As for the archive, row-level security
-- enforces it under the per-request API role; the worker's app role keeps writing everything.

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA ml TO %I', api);
    EXECUTE format('GRANT SELECT ON ml.risk_scores TO %I', api);

    ALTER TABLE ml.risk_scores ENABLE ROW LEVEL SECURITY;
    EXECUTE format('CREATE POLICY app_all ON ml.risk_scores TO %I USING (true) WITH CHECK (true)', app);
    EXECUTE format($p$CREATE POLICY api_read ON ml.risk_scores FOR SELECT TO %I USING (
        (SELECT auth.sees_all())
        OR ((CASE model WHEN 'depression' THEN 'counselling' ELSE 'school_doctor' END) IN (SELECT auth.visible_teams())
            AND school_id IN (SELECT auth.visible_schools()))
        OR school_id IN (SELECT auth.lead_schools()))$p$, api);
END
$grants$;
