"""Events accepted while the Temporal server is down are stored, and the relay
delivers every one of them once the server is back (same port, same database
file)."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlmodel import Session
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core.catalog import load_journey, load_scoring
from core.db import get_engine
from core.enrolment import start_journey
from core.settings import Settings
from core.signing import unsubscribe_url
from devstack.temporal import temporal_binary
from models import search_attributes
from models.tables import Lead, LeadEvent
from tests.conftest import free_port, project_worker
from tests.webhook_service import (
    WEBHOOK_SECRET,
    ServiceThread,
    events_where,
    eventually,
    handled,
    journey_state,
    journeys_dir,
    lead_event_headers,
    make_leads,
)
from webhooks.app import create_app


async def start_server(port: int, db_file: Path) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        port=port,
        dev_server_existing_path=temporal_binary(),
        dev_server_extra_args=["--db-filename", str(db_file)],
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        ui=False,
    )


@asynccontextmanager
async def running_worker(
    env: WorkflowEnvironment, settings: Settings
) -> AsyncIterator[None]:
    async with project_worker(env.client, settings):
        yield


async def post_event(service: ServiceThread, event: dict[str, object]) -> str:
    body = json.dumps(event).encode()
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        answer = await http.post(
            "/events", content=body, headers=lead_event_headers(body, int(time.time()))
        )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["status"])


async def test_events_accepted_while_temporal_is_down_reach_journeys_after_restart(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    db_file = tmp_path / "temporal.db"
    settings = Settings(
        database_url=database_url,
        temporal_address=f"127.0.0.1:{port}",
        temporal_task_queue=f"down-{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path / "var",
        journeys_dir=journeys_dir(tmp_path),
        entry_journey="event-entry",
        webhook_secret=WEBHOOK_SECRET,  # type: ignore[arg-type]
        relay_interval_seconds=0.5,
        temporal_signal_timeout_seconds=2.0,
    )
    journey = load_journey(settings.journeys_dir, "event-entry")
    scoring = load_scoring(settings.journeys_dir)
    running, other_running, not_started = make_leads(database_url, 3)
    first = await start_server(port, db_file)
    for lead_id in (running, other_running):
        await start_journey(
            first.client, settings.temporal_task_queue, lead_id, journey, scoring
        )
    events = [
        {"event_id": f"down-{uuid.uuid4().hex}", "type": kind, "lead_id": lead}
        for lead, kind in [
            (running, "reply"),
            (running, "demo_request"),
            (other_running, "form_submitted"),
            # No journey yet: the relay starts one with this event.
            (not_started, "form_submitted"),
        ]
    ]
    keys = [f"lead-event:{event['event_id']}" for event in events]

    with ServiceThread(create_app(settings)) as service:
        async with running_worker(first, settings):
            warm_up = {"event_id": f"up-{uuid.uuid4().hex}", "type": "reply"}
            assert await post_event(service, {**warm_up, "lead_id": running}) == (
                "delivered"
            )
        await first.shutdown()

        statuses = [await post_event(service, event) for event in events]
        link = unsubscribe_url(
            service.url, settings.unsubscribe_secret.get_secret_value(), other_running
        )
        async with httpx.AsyncClient(timeout=30) as http:
            unsubscribed = await http.post(link)
        keys.append(f"unsubscribe-link:lead-{other_running}")
        stored = events_where(database_url, LeadEvent.dedupe_key.in_(keys))  # type: ignore[attr-defined]

        second = await start_server(port, db_file)
        try:
            async with running_worker(second, settings):
                for lead_id, key in zip(
                    [running, running, other_running, not_started, other_running],
                    keys,
                    strict=True,
                ):
                    await eventually(
                        lambda lead=lead_id, k=key: handled(second.client, lead, [k]),
                        seconds=60,
                        what=f"{key} reaches lead {lead_id}",
                    )
                state = await journey_state(second.client, running)
        finally:
            await second.shutdown()

    assert statuses == ["pending"] * 4
    assert unsubscribed.status_code == 200
    assert sorted(row.status for row in stored) == ["pending"] * 5
    with Session(get_engine(database_url)) as session:
        lead = session.get(Lead, other_running)
        assert lead is not None
        assert lead.unsubscribed_at is not None
    delivered = events_where(database_url, LeadEvent.dedupe_key.in_(keys))  # type: ignore[attr-defined]
    assert {row.status for row in delivered} == {"delivered"}
    # The journey that was running before the outage kept its earlier event.
    assert state["event_counts"]["reply"] == 2
    assert state["event_counts"]["demo_request"] == 1
