"""What the state database's schema is, in a module that imports nothing: the cron
shortcut (runs/shortcut.py, state/runlog.py) checks it without loading SQLAlchemy."""

# The Alembic revision of this release's tables (schema.py); Store compares it with the
# database's alembic_version row, and Alembic runs only when they differ.
HEAD = "0004"

# Posts are keyed by their path relative to config.yaml's folder. Databases from before
# carry keys relative to whatever the working directory was; posts.migrate_post_keys
# rewrites them once and then sets this flag in syndicate_meta (a new database has it).
POST_KEYS_FLAG = ("post_keys", "config-relative")
