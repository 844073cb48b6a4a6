"""The journey on the real Temporal dev server: what the UI shows, operator
updates, and continue-as-new under a flood of events."""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.enrolment import start_journey
from devstack.temporal import temporal_binary
from models import search_attributes as sa
from models.journey import Journey
from models.messages import JourneyStart, LeadEvent, MoveRequest
from tests.factories import default_scoring
from tests.journey_fakes import FakeWorld
from workflows.journey import LeadJourney, workflow_id_for

# The dev server suggests continue-as-new from this many history events (the
# default is 4,096), so that the flood below needs several runs.
SUGGEST_CONTINUE_AS_NEW_AT = 300
# The issue asks for 12,000 events: about 75 s on a 2-core machine.
# JOURNEY_FLOOD_EVENTS runs a smaller (or larger) flood by hand.
FLOOD_EVENTS = int(os.environ.get("JOURNEY_FLOOD_EVENTS", "12000"))
FLOOD_IN_FLIGHT = 32
FLOOD_BURST = 500
FLOOD_PAUSE_SECONDS = 1.5
FLOOD_START = datetime(2026, 1, 1, tzinfo=UTC)


def journey(
    steps: list[dict[str, Any]], name: str = "ops", version: int = 1
) -> Journey:
    return Journey.model_validate({"name": name, "version": version, "steps": steps})


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold within the time limit")
        await asyncio.sleep(0.2)


def fresh_lead_id() -> int:
    return int(uuid.uuid4().int % 1_000_000_000) + 1_000_000


async def test_ui_shows_search_attributes_summary_and_current_details(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld(attributes={"lead_source": "Reference"})
    lead_id = fresh_lead_id()
    definition = journey(
        [
            {"id": "hello", "kind": "email", "template": "welcome", "subject": "Hi"},
            {"id": "first-score", "kind": "score"},
            {"id": "listen", "kind": "wait", "duration": "5d"},
        ],
        name="ui-check",
        version=4,
    )

    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[LeadJourney],
        activities=world.activities(),
    ):
        await start_journey(
            dev_env.client, task_queue, lead_id, definition, default_scoring()
        )
        handle = dev_env.client.get_workflow_handle(workflow_id_for(lead_id))

        async def waiting() -> bool:
            description = await handle.describe()
            return description.typed_search_attributes.get(sa.NEXT_TOUCH_AT) is not None

        await eventually(waiting)
        description = await handle.describe()
        metadata = await handle.query(
            "__temporal_workflow_metadata", result_type=WorkflowMetadata
        )
        history = await handle.fetch_history()

    attributes = description.typed_search_attributes
    assert attributes.get(sa.LEAD_STAGE) == "nurturing"
    assert attributes.get(sa.LEAD_SCORE) == 20
    assert attributes.get(sa.JOURNEY) == "ui-check"
    assert attributes.get(sa.JOURNEY_VERSION) == 4
    assert attributes.get(sa.MQL_STATE) == "none"
    assert await description.static_summary() == f"ui-check v4 for lead {lead_id}"
    details = metadata.current_details
    assert "**Journey:** ui-check v4" in details
    assert "**Step:** listen" in details
    assert "**Score:** 20" in details
    assert "**Next touch:**" in details
    summaries = [
        event.user_metadata.summary.data.decode()
        for event in history.events
        if event.HasField("user_metadata") and event.user_metadata.HasField("summary")
    ]
    assert '"send email: welcome (step hello)"' in summaries
    assert '"score lead (step first-score)"' in summaries
    assert '"wait 5 days (an event wakes it)"' in summaries
    # No personal data: the lead is named by its id only.
    shown = " ".join([details, *summaries, str(attributes)])
    assert "@" not in shown


async def test_operator_pauses_resumes_and_moves_a_lead_with_validated_updates(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld()
    lead_id = fresh_lead_id()
    first = journey(
        [
            {"id": "a", "kind": "email", "template": "a", "subject": "A"},
            {"id": "short", "kind": "wait", "duration": "2s"},
            {"id": "b", "kind": "email", "template": "b", "subject": "B"},
            {"id": "long", "kind": "wait", "duration": "1d"},
        ]
    )
    second = journey(
        [
            {"id": "moved-in", "kind": "email", "template": "m", "subject": "M"},
            {"id": "long", "kind": "wait", "duration": "1d"},
        ],
        name="elsewhere",
    )

    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[LeadJourney],
        activities=world.activities(),
    ):
        handle = await dev_env.client.start_workflow(
            LeadJourney.run,
            JourneyStart(lead_id=lead_id, journey=first, scoring=default_scoring()),
            id=workflow_id_for(lead_id),
            task_queue=task_queue,
        )
        paused = await handle.execute_update(LeadJourney.pause)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(LeadJourney.pause)
        await asyncio.sleep(3.5)
        while_paused = world.email_steps()
        status_paused = await handle.query(LeadJourney.status)

        await handle.execute_update(LeadJourney.resume)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(LeadJourney.resume)

        async def second_email_sent() -> bool:
            return "b" in world.email_steps()

        await eventually(second_email_sent)

        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                LeadJourney.move_to_journey, MoveRequest(journey=first)
            )
        await handle.execute_update(
            LeadJourney.move_to_journey, MoveRequest(journey=second)
        )

        async def moved() -> bool:
            return "moved-in" in world.email_steps()

        await eventually(moved)
        status_moved = await dev_env.client.get_workflow_handle(
            workflow_id_for(lead_id)
        ).query(LeadJourney.status)
        description = await handle.describe()
        await handle.terminate("test finished")

    assert paused.startswith("paused at step")
    assert "b" not in while_paused
    assert status_paused["paused"] is True
    assert world.email_steps() == ["a", "b", "moved-in"]
    assert status_moved["journey"] == "elsewhere"
    assert description.typed_search_attributes.get(sa.JOURNEY) == "elsewhere"


@pytest.fixture(scope="module")
async def low_history_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of its own that suggests continue-as-new early."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        ui=False,
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW_AT}",
        ],
    )
    yield env
    await env.shutdown()


async def send_flood(client: Client, workflow_id: str, total: int) -> None:
    """Signal `total` distinct events in bursts, every tenth one twice.

    The server refuses to close a run (and so to continue as new) while new
    signals keep arriving during the closing workflow task; the short pause
    between bursts is where a run can close. Events of a burst that arrive
    while a run tries to close ride along in the next run's pending events.
    """
    handle = client.get_workflow_handle(workflow_id)
    gate = asyncio.Semaphore(FLOOD_IN_FLIGHT)

    async def deliver(number: int) -> None:
        event = LeadEvent(
            event_id=f"flood-{number}",
            type="page_visit",
            occurred_at=FLOOD_START,
            properties={"url": f"/page/{number % 7}"},
        )
        async with gate:
            await handle.signal(LeadJourney.record_event, event)
            if number % 10 == 0:
                await handle.signal(LeadJourney.record_event, event)

    for first in range(0, total, FLOOD_BURST):
        async with asyncio.TaskGroup() as group:
            for number in range(first, min(total, first + FLOOD_BURST)):
                group.create_task(deliver(number))
        await asyncio.sleep(FLOOD_PAUSE_SECONDS)


async def test_twelve_thousand_events_continue_as_new_and_none_is_lost_or_doubled(
    low_history_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = low_history_env.client
    world = FakeWorld()
    lead_id = fresh_lead_id()
    workflow_id = workflow_id_for(lead_id)
    definition = journey([{"id": "listen", "kind": "wait", "duration": "30d"}])
    began = time.monotonic()

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[LeadJourney],
        activities=world.activities(),
    ):
        await client.start_workflow(
            LeadJourney.run,
            JourneyStart(
                lead_id=lead_id,
                journey=definition,
                scoring=default_scoring(),
                index_search_attributes=False,
            ),
            id=workflow_id,
            task_queue=task_queue,
        )
        await send_flood(client, workflow_id, FLOOD_EVENTS)
        flood_seconds = time.monotonic() - began
        latest = client.get_workflow_handle_for(LeadJourney.run, workflow_id)

        async def all_applied() -> bool:
            state = await latest.query(LeadJourney.state)
            return state["events_applied"] == FLOOD_EVENTS

        await eventually(all_applied, seconds=60)
        state = await latest.query(LeadJourney.state)
        await latest.signal(
            LeadJourney.record_event,
            LeadEvent(event_id="the-end", type="purchase", occurred_at=FLOOD_START),
        )
        result = await latest.result()

    runs = [
        execution
        async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'")
    ]
    lengths = []
    for execution in runs:
        history = await client.get_workflow_handle(
            workflow_id, run_id=execution.run_id
        ).fetch_history()
        lengths.append(len(history.events))
    total_seconds = time.monotonic() - began
    print(
        f"flood: {FLOOD_EVENTS} events (+{FLOOD_EVENTS // 10} repeats) signalled in "
        f"{flood_seconds:.1f}s, {len(runs)} runs, longest history {max(lengths)} "
        f"events, {total_seconds:.1f}s in all"
    )

    assert state["event_counts"] == {"page_visit": FLOOD_EVENTS}
    assert state["events_applied"] == FLOOD_EVENTS
    assert result.ended_by == "purchase"
    assert len(runs) >= 3
    # Bounded: no run grows far past the suggestion point. A run cannot close
    # while signals keep arriving, so under a burst (and a loaded machine) it
    # overshoots by up to a few hundred events before the next pause.
    assert max(lengths) < 6 * SUGGEST_CONTINUE_AS_NEW_AT
    assert sum(lengths) > FLOOD_EVENTS
