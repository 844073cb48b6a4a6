"""A touch held by the frequency cap or quiet hours is sent later, not dropped:
the real journey workflow on the time-skipping server, the real send activity
(reading the server's clock), the SendGrid stand-in and a real database."""

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time, timedelta

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.send_policy import SendPolicy
from activities.sendgrid_backend import SendGridBackend
from models.journey import EmailStep, Journey
from models.messages import JourneyResult, JourneyStart
from models.tables import SendStatus
from tests.email_fixtures import (
    email_activities,
    make_lead,
    record_sent,
    touch,
)
from tests.factories import default_scoring
from tests.journey_fakes import FakeWorld
from tests.sendgrid_standin import SendGridStandIn, running_standin
from workflows.journey import LeadJourney, workflow_id_for

ONE_TOUCH = Journey(
    name="one-touch",
    version=1,
    steps=[EmailStep(id="hello", template="welcome", subject="Hello")],
)


@pytest.fixture
def sendgrid_standin() -> Iterator[SendGridStandIn]:
    with running_standin() as standin:
        yield standin


class ServerClock:
    """ "Now" for the send activity: when the server scheduled this attempt,
    which on the time-skipping server is its skipped-ahead clock."""

    def __init__(self) -> None:
        self.readings: list[datetime] = []

    def __call__(self) -> datetime:
        reading = activity.info().current_attempt_scheduled_time
        self.readings.append(reading)
        return reading


async def run_one_touch(
    env: WorkflowEnvironment,
    database_url: str,
    standin: SendGridStandIn,
    policy: SendPolicy,
    lead_id: int,
    clock: ServerClock,
) -> JourneyResult:
    backend = SendGridBackend("SG.test-key", host=standin.url, timeout=5)
    email = email_activities(database_url, backend, policy=policy, clock=clock)
    fakes = FakeWorld().activities()
    others = [fake for fake in fakes if getattr(fake, "__name__", "") != "send_email"]
    task_queue = f"deferral-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=2) as executor:
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[LeadJourney],
            activities=[email.send_email, *others],
            activity_executor=executor,
        ):
            return await env.client.execute_workflow(
                LeadJourney.run,
                JourneyStart(
                    lead_id=lead_id,
                    journey=ONE_TOUCH,
                    scoring=default_scoring(),
                    index_search_attributes=False,
                ),
                id=workflow_id_for(lead_id),
                task_queue=task_queue,
                result_type=JourneyResult,
            )


async def test_touch_over_the_frequency_cap_is_sent_when_the_cap_allows(
    time_skipping_env: WorkflowEnvironment,
    database_url: str,
    sendgrid_standin: SendGridStandIn,
) -> None:
    lead_id = make_lead(database_url)
    start = await time_skipping_env.get_current_time()
    oldest = start - timedelta(days=6, hours=12)
    for sent_at in (oldest, start - timedelta(days=2), start - timedelta(days=1)):
        record_sent(database_url, lead_id, sent_at)
    policy = SendPolicy(
        cap=3, period=timedelta(days=7), quiet_start=time(0, 0), quiet_end=time(0, 0)
    )
    clock = ServerClock()

    result = await run_one_touch(
        time_skipping_env, database_url, sendgrid_standin, policy, lead_id, clock
    )

    assert result.emails_sent == 1
    assert len(sendgrid_standin.requests) == 1
    # Asked twice: deferred at the start, sent once the oldest send aged out.
    first_ask, last_ask = clock.readings[0], clock.readings[-1]
    assert first_ask - start < timedelta(minutes=5)
    assert last_ask >= oldest + timedelta(days=7)
    assert last_ask - (oldest + timedelta(days=7)) < timedelta(minutes=5)
    key = f"lead-{lead_id}:one-touch:hello:1"
    record = touch(database_url, key)
    assert record is not None
    assert record.status == SendStatus.SENT


async def test_touch_in_quiet_hours_is_sent_when_they_end_in_the_leads_zone(
    time_skipping_env: WorkflowEnvironment,
    database_url: str,
    sendgrid_standin: SendGridStandIn,
) -> None:
    start = await time_skipping_env.get_current_time()
    # Quiet hours from an hour ago until three hours from now, lead's clock
    # (Asia/Kolkata has no DST, so the arithmetic below stays exact).
    zone_offset = timedelta(hours=5, minutes=30)
    local = start + zone_offset
    quiet_start = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    quiet_end = (local + timedelta(hours=3)).time().replace(second=0, microsecond=0)
    lead_id = make_lead(database_url, time_zone="Asia/Kolkata")
    policy = SendPolicy(cap=0, quiet_start=quiet_start, quiet_end=quiet_end)
    clock = ServerClock()

    result = await run_one_touch(
        time_skipping_env, database_url, sendgrid_standin, policy, lead_id, clock
    )

    assert result.emails_sent == 1
    assert len(sendgrid_standin.requests) == 1
    sent_at = clock.readings[-1]
    assert len(clock.readings) == 2
    assert (
        timedelta(hours=2, minutes=58)
        <= sent_at - start
        <= timedelta(hours=3, minutes=5)
    )
