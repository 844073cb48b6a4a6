"""`python -m devstack up`: the whole product on this machine.

Starts PostgreSQL (unless DATABASE_URL is set), the Temporal dev server, the
worker and the webhook service; starts the example cohort; prints where to
look; and on Ctrl-C stops everything it started.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import structlog

from core.db import upgrade
from core.logs import configure_logging
from core.settings import Settings, get_settings
from core.temporal import connect
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import start_dev_server
from starter.__main__ import run_cohort

log = structlog.get_logger("devstack")

EXAMPLE_COHORT = Path("examples/leads.csv")


def _stop(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.info("devstack.stopped", process=name)


async def _wait_for_temporal(
    settings: Settings, server: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            message = "the Temporal dev server exited; see var/logs/temporal.log"
            raise RuntimeError(message)
        try:
            await connect(settings)
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def _wait_for_http(url: str, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            message = f"the {name} exited; see var/logs/{name}.log"
            raise RuntimeError(message)
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    message = f"the {name} did not answer at {url} within 60 seconds"
    raise RuntimeError(message)


def _spawn(
    command: list[str], env: dict[str, str], log_file: Path
) -> subprocess.Popen[bytes]:
    with log_file.open("ab") as output:
        return subprocess.Popen(
            command, env=env, stdout=output, stderr=output, start_new_session=True
        )


def up(settings: Settings) -> int:
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # Both unwind like Ctrl-C, so everything started so far is stopped. SIGINT
    # is set explicitly because a shell may start us with it ignored.
    # A closed terminal (SIGHUP) stops everything too, rather than leaving
    # servers behind that the next `make run` would collide with.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    refuse_busy_ports(settings)

    with ExitStack() as stack:
        env = dict(os.environ)
        if settings.database_url is None:
            postgres = EmbeddedPostgres(
                settings.postgres_dir, settings.embedded_postgres_port
            )
            database_url = postgres.start()
            stack.callback(postgres.stop)
            env["DATABASE_URL"] = database_url
        else:
            database_url = settings.database_url
        upgrade(database_url)

        ui_port = urlsplit(settings.temporal_ui_url).port or 8233
        server = start_dev_server(
            settings.temporal_db_file,
            settings.temporal_address,
            ui_port,
            settings.temporal_namespace,
            logs / "temporal.log",
        )
        stack.callback(_stop, server, "temporal")
        asyncio.run(_wait_for_temporal(settings, server))

        worker = _spawn([sys.executable, "worker.py"], env, logs / "worker.log")
        stack.callback(_stop, worker, "worker")

        webhooks = _spawn(
            [
                sys.executable, "-m", "uvicorn", "webhooks.app:app",
                "--host", settings.webhook_host,
                "--port", str(settings.webhook_port),
            ],
            env,
            logs / "webhooks.log",
        )  # fmt: skip
        stack.callback(_stop, webhooks, "webhooks")
        webhook_url = f"http://{settings.webhook_host}:{settings.webhook_port}"
        _wait_for_http(f"{webhook_url}/healthz", webhooks, "webhooks")

        asyncio.run(run_cohort(settings, EXAMPLE_COHORT, "welcome"))

        workflows = (
            f"{settings.temporal_ui_url}/namespaces/"
            f"{settings.temporal_namespace}/workflows"
        )
        print(
            f"""
Lead nurture is running. Press Ctrl-C to stop everything.

  Temporal UI     {workflows}
  Outbox          {settings.outbox_dir}/ (one .eml file per email)
  Webhooks        {webhook_url}/docs
  Logs            {logs}/
  Send an event   .venv/bin/python -m starter event 1 demo_request
""",
            flush=True,
        )

        children = {"temporal": server, "worker": worker, "webhooks": webhooks}
        try:
            while all(process.poll() is None for process in children.values()):
                time.sleep(0.5)
            exited = [name for name, p in children.items() if p.poll() is not None]
            log.error("devstack.child_exited", processes=exited)
            return 1
        except KeyboardInterrupt:
            print("Stopping ...", flush=True)
    return 0


def refuse_busy_ports(settings: Settings) -> None:
    """Stop before touching anything when the stack's ports already answer:
    another `make run`, or servers an earlier one left behind."""
    temporal_host, _, temporal_port = settings.temporal_address.rpartition(":")
    ports = {
        "Temporal": (temporal_host, int(temporal_port)),
        "the webhook service": (settings.webhook_host, settings.webhook_port),
    }
    for name, (host, port) in ports.items():
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((host, port)) == 0:
                message = (
                    f"{host}:{port}, the port for {name}, is already in use: is "
                    "another `make run` running, or did one leave servers "
                    "behind? Stop them first."
                )
                raise PortInUse(message)


class PortInUse(RuntimeError):
    pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    if argv != ["up"]:
        print("usage: python -m devstack up", file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        return up(settings)
    except PortInUse as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
