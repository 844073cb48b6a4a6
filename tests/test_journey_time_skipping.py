"""Single journeys over weeks, on the time-skipping test server, with the
activities replaced by fakes registered under the same names."""

import uuid
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.messages import JourneyStart, LeadEvent
from tests.factories import default_scoring, welcome_journey
from tests.journey_fakes import FakeWorld
from workflows.journey import LeadJourney


def journey_start(lead_id: int = 1) -> JourneyStart:
    return JourneyStart(
        lead_id=lead_id,
        journey=welcome_journey(),
        scoring=default_scoring(),
        index_search_attributes=False,
    )


async def test_thirty_day_journey_runs_to_the_end_in_skipped_time(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld()
    began = await time_skipping_env.get_current_time()

    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[LeadJourney],
        activities=world.activities(),
    ):
        result = await time_skipping_env.client.execute_workflow(
            LeadJourney.run,
            journey_start(),
            id=f"lead-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )

    ended = await time_skipping_env.get_current_time()
    assert result.ended_by == "completed"
    assert [step for step, _ in world.emails] == [
        "welcome",
        "getting-started",
        "case-study",
    ]
    assert ended - began >= timedelta(days=30)
    # The touches land on their days: 0, 3 and 10.
    offsets = [(sent - world.emails[0][1]).days for _, sent in world.emails]
    assert offsets == [0, 3, 10]
    assert world.handoffs == []


async def test_event_wakes_a_waiting_journey_at_once(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    # Fit points (20) plus a demo request (40) cross the threshold of 50.
    world = FakeWorld(attributes={"lead_source": "Reference"})
    began = await time_skipping_env.get_current_time()

    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[LeadJourney],
        activities=world.activities(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            LeadJourney.run,
            journey_start(),
            id=f"lead-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        await time_skipping_env.sleep(timedelta(days=1))
        await handle.signal(
            LeadJourney.record_event,
            LeadEvent(
                event_id="demo-1",
                type="demo_request",
                occurred_at=await time_skipping_env.get_current_time(),
            ),
        )
        result = await handle.result()

    assert result.mql_episodes == 1
    assert len(world.handoffs) == 1
    _, handed_over_at = world.handoffs[0]
    # Handed over on day 1, while the journey was in its 3-day wait, not when
    # the wait ran out.
    assert handed_over_at - began < timedelta(days=2)
    assert result.ended_by == "completed"
