"""Retries as Temporal runs them: a real worker on the dev server calls the
send activity, which talks to the SendGrid stand-in with the real client."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.email import EmailActivities
from activities.sendgrid_backend import SendGridBackend
from models.messages import EmailOutcome, EmailRequest
from models.tables import SendStatus
from tests.email_fixtures import (
    email_activities,
    email_request,
    get_lead,
    make_lead,
    touch,
    update_lead,
)
from tests.sendgrid_standin import (
    SendGridStandIn,
    bad_request,
    rate_limited,
    running_standin,
    server_error,
)


@workflow.defn(name="SendOneTouch")
class SendOneTouch:
    """The journey's email step alone, with the journey's kind of retry policy
    (short intervals, so that backoff shows within a test)."""

    @workflow.run
    async def run(self, request: EmailRequest) -> EmailOutcome:
        return await workflow.execute_activity(
            "send_email",
            request,
            result_type=EmailOutcome,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=500),
                backoff_coefficient=3.0,
                maximum_interval=timedelta(seconds=2),
            ),
        )


@pytest.fixture
def sendgrid_standin() -> Iterator[SendGridStandIn]:
    with running_standin() as standin:
        yield standin


@pytest.fixture
def activities(database_url: str, sendgrid_standin: SendGridStandIn) -> EmailActivities:
    backend = SendGridBackend("SG.test-key", host=sendgrid_standin.url, timeout=5)
    return email_activities(database_url, backend)


@asynccontextmanager
async def running_worker(
    env: WorkflowEnvironment, task_queue: str, activities: EmailActivities
) -> AsyncIterator[None]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        worker = Worker(
            env.client,
            task_queue=task_queue,
            workflows=[SendOneTouch],
            activities=[activities.send_email],
            activity_executor=executor,
            workflow_runner=UnsandboxedWorkflowRunner(),
        )
        async with worker:
            yield


async def start_touch(
    env: WorkflowEnvironment, task_queue: str, request: EmailRequest
) -> WorkflowHandle[SendOneTouch, EmailOutcome]:
    return await env.client.start_workflow(
        SendOneTouch.run,
        request,
        id=f"touch-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=60),
    )


async def test_rate_limited_twice_then_accepted_is_sent_once_after_the_reset(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    database_url: str,
    sendgrid_standin: SendGridStandIn,
    activities: EmailActivities,
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    sendgrid_standin.answer(
        rate_limited(reset_in_seconds=1), rate_limited(reset_in_seconds=1)
    )

    async with running_worker(dev_env, task_queue, activities):
        handle = await start_touch(dev_env, task_queue, request)
        outcome = await handle.result()

    statuses = [status for status, _ in sendgrid_standin.answers]
    assert statuses == [429, 429, 202]
    for (_, answer), retry in zip(
        sendgrid_standin.answers, sendgrid_standin.requests[1:], strict=False
    ):
        # Each retry came no earlier than the reset the 429 announced.
        assert retry.received_at >= int(answer["X-RateLimit-Reset"])
    assert outcome == EmailOutcome(status="sent", message_id="standin-1")
    record = touch(database_url, request.idempotency_key)
    assert record is not None
    assert record.status == SendStatus.SENT


async def test_server_errors_retry_with_backoff_then_send_once(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    database_url: str,
    sendgrid_standin: SendGridStandIn,
    activities: EmailActivities,
) -> None:
    lead_id = make_lead(database_url)
    sendgrid_standin.answer(server_error(), server_error())

    async with running_worker(dev_env, task_queue, activities):
        handle = await start_touch(dev_env, task_queue, email_request(lead_id))
        outcome = await handle.result()

    assert [status for status, _ in sendgrid_standin.answers] == [500, 500, 202]
    first, second, third = (r.received_at for r in sendgrid_standin.requests)
    # Retries wait 0.5 s, then 1.5 s: lower bounds hold however busy the machine.
    assert second - first >= 0.45
    assert third - second >= 1.45
    assert outcome.status == "sent"


async def test_bad_request_on_the_address_is_not_retried_and_marks_the_lead(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    database_url: str,
    sendgrid_standin: SendGridStandIn,
    activities: EmailActivities,
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    sendgrid_standin.answer(
        bad_request(
            "personalizations.0.to.0.email", "Does not contain a valid address."
        )
    )

    async with running_worker(dev_env, task_queue, activities):
        handle = await start_touch(dev_env, task_queue, request)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()

    assert len(sendgrid_standin.requests) == 1
    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "EmailRejected"
    assert cause.non_retryable
    assert get_lead(database_url, lead_id).email_invalid_at is not None
    record = touch(database_url, request.idempotency_key)
    assert record is not None
    assert record.status == SendStatus.FAILED


async def wait_until_activity_is_queued(handle: WorkflowHandle[object, object]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        description = await handle.describe()
        if description.raw_description.pending_activities:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the send activity was never scheduled")


@pytest.mark.parametrize(
    ("suppression", "reason"),
    [
        ({"do_not_email": True}, "do not email"),
        ({"unsubscribed_at": datetime(2026, 12, 1, tzinfo=UTC)}, "unsubscribed"),
        ({"bounced_at": datetime(2026, 12, 1, tzinfo=UTC)}, "bounced"),
    ],
)
async def test_suppression_that_lands_while_the_send_is_queued_stops_it(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    database_url: str,
    sendgrid_standin: SendGridStandIn,
    activities: EmailActivities,
    suppression: dict[str, object],
    reason: str,
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    # A worker that runs only the workflow: the send is scheduled and waits
    # in the task queue, as it would behind a busy worker.
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[SendOneTouch],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await start_touch(dev_env, task_queue, request)
        await wait_until_activity_is_queued(handle)
    update_lead(database_url, lead_id, **suppression)

    async with running_worker(dev_env, task_queue, activities):
        outcome = await handle.result()

    assert sendgrid_standin.requests == []
    assert outcome == EmailOutcome(status="suppressed", reason=reason)
    record = touch(database_url, request.idempotency_key)
    assert record is not None
    assert (record.status, record.reason) == (SendStatus.SUPPRESSED, reason)
