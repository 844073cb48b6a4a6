"""A database of its own for a test that counts everything in it (the funnel
report), on the session's embedded PostgreSQL server."""

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
    return rendered
