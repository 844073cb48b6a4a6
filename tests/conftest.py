"""Shared fixtures: a real PostgreSQL server and a real Temporal dev server for
the whole session, a fresh time-skipping test server per journey test."""

import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core.db import upgrade
from core.settings import Settings
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import temporal_binary
from models import search_attributes
from worker import build_worker

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@asynccontextmanager
async def project_worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    """The product's own worker, every real activity, on the settings' queue."""
    assert settings.database_url is not None
    with ThreadPoolExecutor(max_workers=settings.worker_activity_slots) as executor:
        async with build_worker(client, settings, settings.database_url, executor):
            yield


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database on an embedded PostgreSQL server."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"), free_port())
    server.start()
    url = server.create_database(f"test_{uuid.uuid4().hex[:12]}")
    upgrade(url)
    yield url
    server.stop()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server with the project's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        ui=False,
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server of its own: the server is reliable with one
    journey waiting on timers at a time."""
    binary = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binary),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
