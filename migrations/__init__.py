"""Alembic migrations: the only way the schema is created or changed.

They ship inside the installed package; `storage.db.upgrade()` runs them.
"""
