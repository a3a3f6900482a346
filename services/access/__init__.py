"""Who is asking: users and their tokens, and the per-request database session that runs every
query of the API and the web pages as that user under row-level security."""
