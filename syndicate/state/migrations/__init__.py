"""Alembic migrations of the state database (run by Store, never by hand)."""
