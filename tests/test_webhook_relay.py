"""The relay and delivery: events left pending are delivered once, even by two
relays at the same moment, and stay pending while Temporal cannot be reached;
an entry event re-enrols a finished lead only when the entry rule allows."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, col
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from core.catalog import load_journey, load_scoring
from core.db import get_engine
from core.enrolment import start_journey
from core.intake import (
    IncomingEvent,
    JourneyEntry,
    ScannerRule,
    deliver_event,
    store_event,
)
from core.relay import Relay
from models.journey import EntryRule
from models.tables import LeadEvent
from tests.webhook_service import (
    events_where,
    journeys_dir,
    make_leads,
    signals_received,
)
from workflows.journey import workflow_id_for


def store_abandoned(database_url: str, lead_ids: list[int], per_lead: int) -> list[str]:
    """Events stored by requests that died before signalling them."""
    keys = []
    for lead_id in lead_ids:
        for number in range(per_lead):
            key = f"relay-test:{uuid.uuid4().hex}"
            store_event(
                database_url,
                IncomingEvent(
                    dedupe_key=key,
                    type="page_visit",
                    occurred_at=datetime.now(UTC),
                    source="test",
                    lead_id=lead_id,
                    properties={"url": f"https://example.com/{number}"},
                ),
            )
            keys.append(key)
    with Session(get_engine(database_url)) as session:
        session.execute(
            update(LeadEvent)
            .where(col(LeadEvent.dedupe_key).in_(keys))
            .values(relay_after=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()
    return keys


def relay_for(database_url: str, client: Client | None) -> Relay:
    async def connect() -> Client:
        if client is None:
            raise RuntimeError("Temporal is unreachable (test)")
        return client

    return Relay(
        database_url,
        connect,
        entry=None,
        scanner=ScannerRule(),
        interval=0.2,
        batch_size=7,
        timeout=5,
    )


async def test_two_relays_deliver_each_abandoned_event_exactly_once(
    tmp_path: Path, database_url: str, dev_env: WorkflowEnvironment
) -> None:
    folder = journeys_dir(tmp_path)
    journey = load_journey(folder, "event-entry")
    scoring = load_scoring(folder)
    queue = f"relay-{uuid.uuid4().hex[:10]}"
    lead_ids = make_leads(database_url, 3)
    for lead_id in lead_ids:
        # No worker is needed: signals land in the history all the same.
        await start_journey(dev_env.client, queue, lead_id, journey, scoring)
    keys = store_abandoned(database_url, lead_ids, per_lead=6)
    relays = [relay_for(database_url, dev_env.client) for _ in range(2)]

    passes = []
    while len(passes) < 20:
        outcomes = await asyncio.gather(*(relay.run_once() for relay in relays))
        passes += outcomes
        if all(outcome.claimed == 0 for outcome in outcomes):
            break

    # Both relays took a share of the work.
    assert sum(outcome.delivered for outcome in passes[0::2]) > 0
    assert sum(outcome.delivered for outcome in passes[1::2]) > 0
    rows = events_where(database_url, col(LeadEvent.dedupe_key).in_(keys))
    assert {row.status for row in rows} == {"delivered"}
    for lead_id in lead_ids:
        signals = await signals_received(dev_env.client, lead_id)
        mine = {key: n for key, n in signals.by_event.items() if key in keys}
        assert len(mine) == 6
        assert set(mine.values()) == {1}


async def test_relay_keeps_events_pending_while_temporal_is_unreachable(
    database_url: str,
) -> None:
    (lead_id,) = make_leads(database_url, 1)
    keys = store_abandoned(database_url, [lead_id], per_lead=2)
    relay = relay_for(database_url, None)

    outcome = await relay.run_once()

    assert outcome.interrupted
    assert outcome.delivered == 0
    rows = events_where(database_url, col(LeadEvent.dedupe_key).in_(keys))
    assert {row.status for row in rows} == {"pending"}
    # Released at once, so the next pass (or another relay) takes them again.
    assert all(
        row.relay_after is not None and row.relay_after <= datetime.now(UTC)
        for row in rows
    )


async def test_entry_event_re_enrols_a_finished_lead_only_when_the_rule_says_so(
    tmp_path: Path, database_url: str, dev_env: WorkflowEnvironment
) -> None:
    folder = journeys_dir(tmp_path)
    journey = load_journey(folder, "event-entry")
    scoring = load_scoring(folder)
    queue = f"reenrol-{uuid.uuid4().hex[:10]}"
    reenrolling = JourneyEntry(
        journey=journey.model_copy(
            update={"entry": EntryRule(events=["form_submitted"], reenrol=True)}
        ),
        scoring=scoring,
        task_queue=queue,
    )
    staying_out = JourneyEntry(journey=journey, scoring=scoring, task_queue=queue)
    comes_back, stays_out = make_leads(database_url, 2)
    for lead_id in (comes_back, stays_out):
        await start_journey(dev_env.client, queue, lead_id, journey, scoring)
        handle = dev_env.client.get_workflow_handle(workflow_id_for(lead_id))
        await handle.terminate(reason="test: the journey is over")
    outcomes = {}

    for lead_id, entry in ((comes_back, reenrolling), (stays_out, staying_out)):
        stored = store_event(
            database_url,
            IncomingEvent(
                dedupe_key=f"reenrol-test:{uuid.uuid4().hex}",
                type="form_submitted",
                occurred_at=datetime.now(UTC),
                source="test",
                lead_id=lead_id,
            ),
        )
        outcomes[lead_id] = await deliver_event(
            dev_env.client, database_url, stored.id, entry=entry
        )

    assert outcomes == {comes_back: "delivered", stays_out: "journey_finished"}
    runs = {
        lead_id: [
            run.status
            async for run in dev_env.client.list_workflows(
                f"WorkflowId = '{workflow_id_for(lead_id)}'"
            )
        ]
        for lead_id in (comes_back, stays_out)
    }
    assert sorted(str(status) for status in runs[comes_back]) == sorted(
        [str(WorkflowExecutionStatus.RUNNING), str(WorkflowExecutionStatus.TERMINATED)]
    )
    assert runs[stays_out] == [WorkflowExecutionStatus.TERMINATED]
