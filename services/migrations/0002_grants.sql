-- Least privilege. The worker and importer (app role) write the archive; they cannot alter it.
-- Grafana's role is granted the `reporting` schema only, in the metrics migration.
DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA archive, roster, ops TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA archive TO %I', app);
    EXECUTE format('GRANT UPDATE ON archive.students, archive.schools TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON roster.students TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA ops TO %I', app);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA ops TO %I', app);
END
$grants$;
