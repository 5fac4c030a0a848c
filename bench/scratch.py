"""A scratch database for a benchmark, so that it never touches real data."""

import os


def recreate_postgres_database(url, suffix):
    """Drop and create `<name>_<suffix>` on the server of PostgreSQL `url`; return its URL."""
    import psycopg

    base, _, name = url.rpartition("/")
    scratch = f"{name or 'tracker'}_{suffix}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{scratch}"')
    return f"{base}/{scratch}"


def postgres_url_or_none():
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith("postgres") else None
