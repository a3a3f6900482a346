-- Rejected rows keep no raw cell content where the read-only Grafana role can see it.
-- The importer already stores a school or screener cell of a rejected row only when it is a
-- well-formed code (services.importer.shown_code); the pipeline's dead letters take the school
-- and screener from whatever JSON arrived. This view shows either only through the same rule,
-- so a name, an ID number or a formula typed into those cells never reaches a dashboard.

-- The project's identifier rule (models.contracts.IDENTIFIER_PATTERN, at most 64 characters) and
-- no run of 7 digits (an ID or phone number).
CREATE FUNCTION reporting.shown_code(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value IS NULL OR value = '' THEN NULL
        WHEN length(value) <= 64
             AND value ~ '^(?:[0-9]{1,16}(?:[A-Za-z._:-]|$)|[A-Za-z])(?:[0-9]{0,16}[A-Za-z._:-])*[0-9]{0,16}$'
             AND value !~ '[0-9]{7}' THEN value
        ELSE '(redacted)'
    END
$$;

CREATE OR REPLACE VIEW reporting.dq_rejections AS
SELECT date_trunc('day', received_at) AS "time", 'pipeline'::text AS source, code,
       COALESCE(reporting.shown_code(d.school_id), '(unknown)') AS school_id, s.county_id,
       COALESCE(reporting.shown_code(d.screener), '(unknown)') AS screener,
       count(*)::integer AS rejections
FROM ops.dead_letters d LEFT JOIN archive.schools s USING (school_id)
GROUP BY 1, 2, 3, 4, 5, 6
UNION ALL
SELECT date_trunc('day', rejected_at), 'import', kind || COALESCE(':' || field, ''),
       COALESCE(reporting.shown_code(r.school_id), '(unknown)'), s.county_id,
       COALESCE(reporting.shown_code(r.screener), '(unknown)'), count(*)::integer
FROM ops.import_rejections r LEFT JOIN archive.schools s USING (school_id)
GROUP BY 1, 2, 3, 4, 5, 6;

-- Rejections stored before this migration: the same rule, applied once.
UPDATE ops.import_rejections SET school_id = reporting.shown_code(school_id), screener = reporting.shown_code(screener)
WHERE school_id IS DISTINCT FROM reporting.shown_code(school_id) OR screener IS DISTINCT FROM reporting.shown_code(screener);

DO $$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION reporting.shown_code(text) TO %I, %I',
                   current_setting('schoolhealth.grafana_role'), current_setting('schoolhealth.app_role'));
END $$;
