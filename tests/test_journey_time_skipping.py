"""Single journeys over weeks, on the time-skipping test server, with the
activities replaced by fakes registered under the same names."""

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from core.catalog import load_linked_journeys
from models.messages import JourneyStart
from tests.factories import JOURNEYS, default_scoring, welcome_journey
from tests.journey_fakes import FakeWorld, run_journey


def journey_start(lead_id: int = 1) -> JourneyStart:
    journey = welcome_journey()
    return JourneyStart(
        lead_id=lead_id,
        journey=journey,
        scoring=default_scoring(),
        index_search_attributes=False,
        linked_journeys=load_linked_journeys(JOURNEYS, journey),
    )


async def test_quiet_lead_runs_the_welcome_series_then_moves_to_re_engagement(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld()
    began = await time_skipping_env.get_current_time()

    result, _, _ = await run_journey(
        time_skipping_env, task_queue, world, journey_start()
    )

    ended = await time_skipping_env.get_current_time()
    assert ended - began >= timedelta(days=30)
    # No click after getting-started: the nudge goes out; no visit in the last
    # thirty days: the lead moves on to re-engagement and gets its last call.
    assert world.email_steps() == [
        "welcome",
        "getting-started",
        "nudge",
        "case-study",
        "miss-you",
        "last-call",
    ]
    assert result.journey == "re-engagement"
    assert result.ended_by == "end step"
    # Touches land on their days: at once, after 3 days (in a weekday window),
    # 7 days later, then at least 4 more days later.
    offsets = [(sent - world.emails[0][1]) for _, sent in world.emails]
    assert offsets[0] == timedelta(0)
    assert timedelta(days=3) <= offsets[1] < timedelta(days=6)
    assert timedelta(days=7) <= offsets[2] - offsets[1] < timedelta(days=7, seconds=1)
    assert offsets[3] - offsets[2] >= timedelta(days=4)
    assert world.handoffs == []


async def test_event_wakes_a_waiting_journey_at_once(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    # Fit points (20) plus a demo request (40) cross the threshold of 50.
    world = FakeWorld(attributes={"lead_source": "Reference"})
    began = await time_skipping_env.get_current_time()

    result, _, _ = await run_journey(
        time_skipping_env,
        task_queue,
        world,
        journey_start(),
        script=[(1, "demo_request")],
    )

    assert result.mql_episodes == 1
    assert len(world.handoffs) == 1
    _, handed_over_at = world.handoffs[0]
    # Handed over on day 1, while the journey was in its 3-day wait, not when
    # the wait ran out.
    assert handed_over_at - began < timedelta(days=2)
    assert result.ended_by == "end step"


async def test_email_the_provider_refuses_fails_the_touch_not_the_journey(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld(rejected_steps=frozenset({"getting-started"}))

    result, _, _ = await run_journey(
        time_skipping_env, task_queue, world, journey_start()
    )

    assert "getting-started" not in world.email_steps()
    assert world.email_steps()[:2] == ["welcome", "nudge"]
    assert result.ended_by == "end step"
