"""The journey engine over weeks and months, on the time-skipping test server
(each test its own server), with the activities replaced by fakes."""

import time
import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.journey import Journey, ScoringRules
from models.messages import JourneyStart, LeadEvent
from tests.factories import default_scoring
from tests.journey_fakes import FakeWorld, run_journey
from workflows.journey import LeadJourney

# (day, event type) pairs a test sends, in order.


def journey(steps: list[dict[str, Any]], **fields: Any) -> Journey:
    return Journey.model_validate(
        {"name": "test", "version": 1, "steps": steps, **fields}
    )


def rules(**fields: Any) -> ScoringRules:
    base: dict[str, Any] = {
        "mql_threshold": 50,
        "rearm_below": 40,
        "sales_sla": "100d",
        "behaviour": [],
    }
    return ScoringRules.model_validate({**base, **fields})


def start_for(
    definition: Journey, scoring: ScoringRules | None = None, **fields: Any
) -> JourneyStart:
    return JourneyStart(
        lead_id=1,
        journey=definition,
        scoring=scoring or default_scoring(),
        index_search_attributes=False,
        **fields,
    )


def days_after(world: FakeWorld, start: Any) -> list[float]:
    return [
        round((sent - start).total_seconds() / 86_400, 2) for _, sent in world.emails
    ]


NINETY_DAYS = journey(
    [
        {"id": "hello", "kind": "email", "template": "welcome", "subject": "Hi"},
        {"id": "first-score", "kind": "score"},
        {
            "id": "weekday-morning",
            "kind": "wait",
            "duration": "1d",
            "window": {"start": "09:00", "end": "10:00", "days": ["mon", "wed"]},
        },
        {"id": "tips", "kind": "email", "template": "tips", "subject": "Tips"},
        {
            "id": "clicked",
            "kind": "wait_for",
            "events": ["email_click"],
            "timeout": "5d",
            "on_event": "hot",
            "on_timeout": "reminder",
        },
        {"id": "reminder", "kind": "email", "template": "r", "subject": "R"},
        {
            "id": "hot",
            "kind": "branch",
            "if": {"score_at_least": 50},
            "then": "handoff",
            "else": "fit",
        },
        {
            "id": "fit",
            "kind": "branch",
            "if": {"attribute": "occupation", "equals": ["Working Professional"]},
            "then": "pro-tips",
            "else": "monthly",
        },
        {"id": "pro-tips", "kind": "email", "template": "pro", "subject": "Pro"},
        {"id": "monthly", "kind": "email", "template": "monthly", "subject": "M"},
        {"id": "month", "kind": "wait", "duration": "25d"},
        {
            "id": "came-to-webinar",
            "kind": "branch",
            "if": {"event": "webinar_attended", "within": "30d"},
            "then": "handoff",
            "else": "loop",
        },
        {"id": "loop", "kind": "goto", "to": "monthly"},
        {"id": "handoff", "kind": "notify_sales"},
        {"id": "bye", "kind": "end"},
    ]
)


async def test_ninety_day_journey_with_branches_runs_in_seconds(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld(attributes={"occupation": "Working Professional"})
    start = start_for(
        NINETY_DAYS,
        rules(
            fit=[
                {
                    "attribute": "occupation",
                    "equals": ["Working Professional"],
                    "points": 15,
                }
            ],
            behaviour=[{"event": "email_click", "points": 5}],
        ),
        time_zone="America/New_York",
        attributes={"occupation": "Working Professional"},
    )
    began = await time_skipping_env.get_current_time()
    wall = time.monotonic()

    result, state, _ = await run_journey(
        time_skipping_env,
        task_queue,
        world,
        start,
        script=[(3.5, "email_click"), (80, "webinar_attended")],
    )

    elapsed = time.monotonic() - wall
    ended = await time_skipping_env.get_current_time()
    assert ended - began >= timedelta(days=90)
    assert elapsed < 30
    # Clicked (wait_for took the event path), not hot (score 20), a good fit,
    # then the monthly loop ran until the webinar showed on day 80.
    assert world.email_steps() == [
        "hello",
        "tips",
        "pro-tips",
        "monthly",
        "monthly",
        "monthly",
        "monthly",
    ]
    assert state["step_visits"]["loop"] == 3
    assert [episode for episode, _ in world.handoffs] == [1]
    assert result.ended_by == "end step"
    # The tips email waited for a Monday or Wednesday morning in New York.
    tips_local = world.emails[1][1].astimezone(ZoneInfo("America/New_York"))
    assert tips_local.strftime("%a") in ("Mon", "Wed")
    assert tips_local.hour == 9


async def test_wait_for_five_days_without_the_event_takes_the_no_event_branch(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld()
    definition = journey(
        [
            {"id": "offer", "kind": "email", "template": "offer", "subject": "O"},
            {
                "id": "clicked",
                "kind": "wait_for",
                "events": ["email_click"],
                "timeout": "5d",
                "on_event": "thanks",
                "on_timeout": "no-click",
            },
            {"id": "thanks", "kind": "email", "template": "t", "subject": "T"},
            {"id": "stop", "kind": "end"},
            {"id": "no-click", "kind": "email", "template": "n", "subject": "N"},
        ]
    )

    result, _, _ = await run_journey(
        time_skipping_env,
        task_queue,
        world,
        start_for(definition),
        script=[(2, "page_visit")],
    )

    assert world.email_steps() == ["offer", "no-click"]
    gap = world.emails[1][1] - world.emails[0][1]
    assert timedelta(days=5) <= gap < timedelta(days=5, minutes=1)
    assert result.ended_by == "completed"


def three_day_journey() -> Journey:
    return journey(
        [
            {"id": "day-0", "kind": "email", "template": "a", "subject": "A"},
            {"id": "pause", "kind": "wait", "duration": "3d"},
            {"id": "day-3", "kind": "email", "template": "b", "subject": "B"},
            {"id": "rest", "kind": "wait", "duration": "10d"},
        ]
    )


async def test_unsubscribe_on_day_two_sends_no_day_three_email_and_ends_the_journey(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld()
    began = await time_skipping_env.get_current_time()

    result, state, handle = await run_journey(
        time_skipping_env,
        task_queue,
        world,
        start_for(three_day_journey()),
        script=[(2, "unsubscribe")],
    )
    ended = (await handle.describe()).close_time
    assert ended is not None
    with pytest.raises(RPCError):
        await handle.signal(
            LeadJourney.record_event,
            LeadEvent(event_id="late", type="demo_request", occurred_at=ended),
        )

    assert world.email_steps() == ["day-0"]
    assert result.ended_by == "unsubscribe"
    assert result.stage == "unsubscribed"
    assert ended - began < timedelta(days=3)
    assert "demo_request" not in state["event_counts"]
    assert world.handoffs == []


async def test_events_queued_behind_a_goal_are_recorded_and_change_nothing(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld(attributes={"lead_source": "Reference"})
    client = time_skipping_env.client
    workflow_id = f"lead-{uuid.uuid4().hex[:8]}"
    now = await time_skipping_env.get_current_time()
    # Started with no worker running, so that all three events are queued when
    # the journey first runs: the unsubscribe ends it before the others apply.
    handle = await client.start_workflow(
        LeadJourney.run,
        start_for(three_day_journey()),
        id=workflow_id,
        task_queue=task_queue,
    )
    for number, event_type in enumerate(["unsubscribe", "demo_request", "reply"]):
        await handle.signal(
            LeadJourney.record_event,
            LeadEvent(event_id=f"q-{number}", type=event_type, occurred_at=now),
        )

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[LeadJourney],
        activities=world.activities(),
    ):
        result = await handle.result()
        state = await handle.query(LeadJourney.state)

    assert result.ended_by == "unsubscribe"
    assert state["event_counts"] == {"unsubscribe": 1, "demo_request": 1, "reply": 1}
    assert world.emails == []
    assert world.scores == []
    assert world.handoffs == []
    assert result.score == 0


@pytest.mark.parametrize(
    ("goal", "stage"),
    [
        ("purchase", "customer"),
        ("sales_won", "customer"),
        ("hard_bounce", "suppressed"),
        ("spam_report", "suppressed"),
        ("webinar_attended", "converted"),
    ],
)
async def test_a_goal_event_ends_the_journey_from_any_step(
    time_skipping_env: WorkflowEnvironment, task_queue: str, goal: str, stage: str
) -> None:
    world = FakeWorld()
    definition = three_day_journey().model_copy(update={"goals": ["webinar_attended"]})

    result, _, _ = await run_journey(
        time_skipping_env, task_queue, world, start_for(definition), [(1, goal)]
    )

    assert result.ended_by == goal
    assert result.stage == stage
    assert world.email_steps() == ["day-0"]


def long_wait() -> Journey:
    return journey([{"id": "listen", "kind": "wait", "duration": "60d"}])


async def test_scores_wobbling_around_the_threshold_notify_sales_once(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld(scripted_scores=iter([48, 52, 49, 53, 51, 55]))
    script = [(day, "page_visit") for day in range(1, 7)]

    result, state, _ = await run_journey(
        time_skipping_env, task_queue, world, start_for(long_wait(), rules()), script
    )

    assert [score for score, _, _ in world.scores] == [48, 52, 49, 53, 51, 55]
    assert [episode for episode, _ in world.handoffs] == [1]
    assert result.mql_episodes == 1
    assert state["mql_armed"] is False


async def test_a_lead_that_cools_and_warms_again_opens_a_second_episode(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld()
    scoring = rules(
        half_life="12d", behaviour=[{"event": "demo_request", "points": 55}]
    )
    began = await time_skipping_env.get_current_time()

    result, _, _ = await run_journey(
        time_skipping_env,
        task_queue,
        world,
        start_for(long_wait(), scoring),
        script=[(0.01, "demo_request"), (45, "demo_request")],
    )

    periodic = {
        round((at - began) / timedelta(days=1)): score
        for score, reason, at in world.scores
        if reason == "periodic re-score"
    }
    assert 8 <= periodic[30] <= 12
    assert [episode for episode, _ in world.handoffs] == [1, 2]
    second_at = world.handoffs[1][1] - began
    assert timedelta(days=45) <= second_at < timedelta(days=46)
    assert result.mql_episodes == 2


async def test_sales_silence_escalates_once_then_recycles_the_lead(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld()
    scoring = rules(sales_sla="2d", behaviour=[{"event": "demo_request", "points": 60}])
    began = await time_skipping_env.get_current_time()

    result, state, _ = await run_journey(
        time_skipping_env,
        task_queue,
        world,
        start_for(
            journey([{"id": "listen", "kind": "wait", "duration": "10d"}]), scoring
        ),
        script=[(1, "demo_request")],
    )

    assert len(world.handoffs) == 1
    assert len(world.escalations) == 1
    escalated_after = world.escalations[0][1] - world.handoffs[0][1]
    assert abs(escalated_after - timedelta(days=2)) < timedelta(minutes=1)
    assert state["mql_status"] == "recycled"
    assert result.stage == "nurtured"
    assert world.handoffs[0][1] - began < timedelta(days=2)


@pytest.mark.parametrize(
    ("answer", "status", "stage"),
    [
        ("sales_accepted", "accepted", "sql"),
        ("sales_rejected", "rejected", "nurtured"),
        ("sales_lost", "lost", "nurtured"),
    ],
)
async def test_a_sales_answer_within_the_sla_closes_the_episode_without_escalation(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    answer: str,
    status: str,
    stage: str,
) -> None:
    world = FakeWorld()
    scoring = rules(sales_sla="2d", behaviour=[{"event": "demo_request", "points": 60}])
    definition = journey([{"id": "listen", "kind": "wait", "duration": "10d"}])

    result, state, _ = await run_journey(
        time_skipping_env,
        task_queue,
        world,
        start_for(definition, scoring),
        script=[(1, "demo_request"), (2, answer)],
    )

    assert world.escalations == []
    assert state["mql_status"] == status
    assert result.stage == stage


async def test_a_deferred_email_sleeps_and_is_asked_again_with_the_same_key(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld(defer_times=1, defer_for_seconds=6 * 3_600)
    began = await time_skipping_env.get_current_time()

    result, _, _ = await run_journey(
        time_skipping_env,
        task_queue,
        world,
        start_for(three_day_journey()),
        script=[(0.1, "page_visit")],
    )

    # Each touch was held once, then sent under the key it was first asked with.
    assert [key for key, _, _ in world.deferrals] == world.sent_keys
    assert world.email_steps() == ["day-0", "day-3"]
    assert timedelta(hours=6) <= world.emails[0][1] - began < timedelta(hours=7)
    # The page visit during the deferral was scored when it came.
    visit_scored = [at for _, reason, at in world.scores if "page_visit" in reason]
    assert visit_scored
    assert visit_scored[0] - began < timedelta(hours=3)
    assert result.ended_by == "completed"


async def test_an_end_step_moves_the_lead_into_the_linked_journey(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    world = FakeWorld()
    follow_up = Journey.model_validate(
        {
            "name": "follow-up",
            "version": 3,
            "steps": [
                {"id": "later", "kind": "email", "template": "l", "subject": "L"},
            ],
        }
    )
    definition = journey(
        [
            {"id": "first", "kind": "email", "template": "f", "subject": "F"},
            {"id": "pause", "kind": "wait", "duration": "2d"},
            {"id": "onward", "kind": "end", "into": "follow-up"},
        ]
    )
    start = start_for(definition, linked_journeys={"follow-up": follow_up})

    result, state, _ = await run_journey(
        time_skipping_env, task_queue, world, start, script=[(1, "page_visit")]
    )

    assert world.email_steps() == ["first", "later"]
    assert result.journey == "follow-up"
    assert state["previous_journeys"] == ["test"]
    assert state["event_counts"] == {"page_visit": 1}


async def test_editing_a_journey_file_after_start_does_not_change_leads_in_it(
    time_skipping_env: WorkflowEnvironment, task_queue: str, tmp_path: Any
) -> None:
    from core.catalog import load_journey

    world = FakeWorld()
    path = tmp_path / "edited.yaml"
    original = (
        "name: edited\nversion: 1\nsteps:\n"
        "  - {id: one, kind: email, template: first, subject: One}\n"
        "  - {id: pause, kind: wait, duration: 2d}\n"
        "  - {id: two, kind: email, template: second, subject: Two}\n"
    )
    path.write_text(original, encoding="utf-8")
    start = start_for(load_journey(tmp_path, "edited"))

    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[LeadJourney],
        activities=world.activities(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            LeadJourney.run,
            start,
            id=f"lead-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        await time_skipping_env.sleep(timedelta(days=1))
        path.write_text(
            original.replace("version: 1", "version: 2").replace(
                "template: second", "template: rewritten"
            )
            + "  - {id: three, kind: email, template: added, subject: Three}\n",
            encoding="utf-8",
        )
        edited = load_journey(tmp_path, "edited")
        result = await handle.result()

    assert [step.id for step in edited.steps][-1] == "three"
    assert world.email_steps() == ["one", "two"]
    assert result.ended_by == "completed"
