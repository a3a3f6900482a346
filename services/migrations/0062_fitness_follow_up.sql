-- A failed fitness test (total rated fail, or a failed item) is on the school's follow-up list for
-- the PE teacher and the school doctor: its steps are recorded like those of vision and growth.
ALTER TABLE followup.cases DROP CONSTRAINT cases_kind_check;
ALTER TABLE followup.cases ADD CONSTRAINT cases_kind_check CHECK (kind IN ('vision', 'growth', 'fitness'));
