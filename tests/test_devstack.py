"""`make run` and the command line fail early and say why when servers are
missing or already there."""

import socket

import pytest

from core.settings import Settings
from core.temporal import TemporalUnavailable, connect
from devstack.__main__ import PortInUse, refuse_busy_ports
from tests.conftest import free_port


def test_make_run_refuses_to_start_when_the_temporal_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(
            temporal_address=f"127.0.0.1:{port}", webhook_port=free_port()
        )

        with pytest.raises(PortInUse) as refused:
            refuse_busy_ports(settings)

    assert f"127.0.0.1:{port}, the port for Temporal, is already in use" in str(
        refused.value
    )


def test_make_run_starts_when_its_ports_are_free() -> None:
    settings = Settings(
        temporal_address=f"127.0.0.1:{free_port()}", webhook_port=free_port()
    )

    refuse_busy_ports(settings)


async def test_commands_say_temporal_is_unreachable_instead_of_a_traceback() -> None:
    address = f"127.0.0.1:{free_port()}"

    with pytest.raises(TemporalUnavailable) as unavailable:
        await connect(Settings(temporal_address=address))

    assert f"cannot reach Temporal at {address}" in str(unavailable.value)
    assert "make run" in str(unavailable.value)
