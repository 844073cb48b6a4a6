"""A database of its own for a test that counts everything in it (the funnel
report), on the session's embedded PostgreSQL server.

Lead ids in it start far from the session database's, because journeys are
named after lead ids (`lead-<id>`) on the one dev server all tests share: ids
that start at 1 again would collide with other tests' journeys."""

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core.db import upgrade


def create_fresh_database(database_url: str, prefix: str) -> str:
    """Create and migrate a new database next to `database_url`; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = make_url(database_url).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    upgrade(rendered)
    first_id = 10_000_000 + uuid.uuid4().int % 1_000_000_000
    engine = create_engine(rendered)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(f"ALTER SEQUENCE leads_id_seq RESTART WITH {first_id}")
            )
    finally:
        engine.dispose()
    return rendered
