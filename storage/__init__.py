"""Storage: the schema, the database handle and the repositories."""
