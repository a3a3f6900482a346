"""What is known of a student, read under the caller's scope: facts for pages (name, grade, age),
the longitudinal archive on the terminal, and the screening follow-up list."""
