-- The roster learns each pupil's class and guardian: the class screening sheet lists a class,
-- and parent letters are addressed to the guardian. Both stay in the protected roster schema
-- (never in Kafka). `enrolled_on` with `grade` gives the current grade in a later school year.
ALTER TABLE roster.students
    ADD COLUMN class_name    text CHECK (class_name IS NULL OR length(class_name) <= 12),
    ADD COLUMN guardian_name text,
    ADD COLUMN enrolled_on   date;
CREATE INDEX roster_school_grade_class ON roster.students (school_id, grade, class_name);
