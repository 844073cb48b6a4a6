"""Record a journey history for the replay test.

Usage: `python -m tests.histories.record NAME`.

Runs the welcome journey on the time-skipping test server with fake activities
(a fit attribute, a page visit on day 1 and a demo request on day 2, so that
scoring and an MQL handoff are in the history) and writes the history as JSON to
`tests/histories/NAME.json`. Run it before a change to the workflow that running
journeys would replay differently, and commit the file.
"""

import asyncio
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.catalog import load_linked_journeys
from models.messages import (
    EmailOutcome,
    EmailRequest,
    HandoffOutcome,
    HandoffRequest,
    JourneyStart,
    LeadEvent,
    ScoreRequest,
    ScoreResult,
)
from tests.factories import JOURNEYS, default_scoring, welcome_journey
from workflows.journey import LeadJourney
from workflows.scoring import compute_score

HERE = Path(__file__).resolve().parent


@activity.defn(name="send_email")
async def send_email(request: EmailRequest) -> EmailOutcome:
    return EmailOutcome(status="sent", message_id=request.idempotency_key)


@activity.defn(name="score_lead")
async def score_lead(request: ScoreRequest) -> ScoreResult:
    return compute_score(
        request.rules, {"lead_source": "Reference"}, request.event_counts
    )


@activity.defn(name="notify_sales")
async def notify_sales(request: HandoffRequest) -> HandoffOutcome:
    return HandoffOutcome(owner_email="sales@example.com", created=True)


async def record(name: str) -> Path:
    binary = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binary), data_converter=pydantic_data_converter
    )
    task_queue = f"record-{uuid.uuid4().hex[:8]}"
    journey = welcome_journey()
    try:
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[LeadJourney],
            activities=[send_email, score_lead, notify_sales],
        ):
            handle = await env.client.start_workflow(
                LeadJourney.run,
                JourneyStart(
                    lead_id=1,
                    journey=journey,
                    scoring=default_scoring(),
                    index_search_attributes=False,
                    time_zone="America/New_York",
                    linked_journeys=load_linked_journeys(JOURNEYS, journey),
                ),
                id="lead-1",
                task_queue=task_queue,
            )
            for day, event_type in ((1, "page_visit"), (1, "demo_request")):
                await env.sleep(timedelta(days=day))
                await handle.signal(
                    LeadJourney.record_event,
                    LeadEvent(
                        event_id=f"{event_type}-{day}",
                        type=event_type,
                        occurred_at=await env.get_current_time(),
                    ),
                )
            await handle.result()
            # A run that continued as new: its history is the first run's.
            history = await env.client.get_workflow_handle(
                "lead-1", run_id=handle.first_execution_run_id
            ).fetch_history()
    finally:
        await env.shutdown()
    path = HERE / f"{name}.json"
    path.write_text(history.to_json(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(asyncio.run(record(sys.argv[1])))
