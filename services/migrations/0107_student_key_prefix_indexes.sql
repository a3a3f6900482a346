-- `schoolhealth student` accepts the beginning of a key (at least 6 hexadecimal digits) and finds it
-- with `student_key LIKE 'prefix%'` in archive.students and roster.students. Their primary keys use
-- the database's collation, which a LIKE prefix cannot use: every lookup read both tables whole
-- (41 ms at 155,000 students, growing with the province). A text_pattern_ops index answers the
-- prefix as a range (issue 18).
CREATE INDEX students_key_prefix ON archive.students (student_key text_pattern_ops);
CREATE INDEX roster_students_key_prefix ON roster.students (student_key text_pattern_ops);
