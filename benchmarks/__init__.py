"""pytest-benchmark suite: etlstore against raw asyncpg, SQLAlchemy and psycopg (dev.py bench)."""
