"""One Alembic revision per schema step, oldest first."""
