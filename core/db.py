"""Database engine, sessions and schema migrations.

`python -m core.db upgrade` applies the Alembic migrations to `DATABASE_URL`.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlmodel import Session, create_engine

from core.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@lru_cache
def get_engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url)) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the schema to the latest revision (a no-op when it is there)."""
    command.upgrade(alembic_config(url), "head")


def resolve_database_url(settings: Settings) -> str:
    """`DATABASE_URL` when set; otherwise start (or reuse) the embedded server."""
    if settings.database_url is not None:
        return settings.database_url
    from devstack.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(settings.postgres_dir, settings.embedded_postgres_port)
    return server.start()


def main(argv: list[str]) -> int:
    if argv != ["upgrade"]:
        print("usage: python -m core.db upgrade", file=sys.stderr)
        return 2
    upgrade(resolve_database_url(get_settings()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
