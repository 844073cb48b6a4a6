"""Fake activities for journey tests, registered under the real names: they
stand in for the database, the email provider and the sales inbox."""

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.messages import (
    EMAIL_REJECTED,
    EmailOutcome,
    EmailRequest,
    HandoffOutcome,
    HandoffRequest,
    JourneyResult,
    JourneyStart,
    LeadEvent,
    ScoreRequest,
    ScoreResult,
)
from workflows.journey import LeadJourney
from workflows.scoring import compute_score


@dataclass
class FakeWorld:
    attributes: dict[str, Any] = field(default_factory=dict)
    # Scores to return, one per score_lead call, instead of computing them.
    scripted_scores: Iterator[int] | None = None
    # send_email answers `deferred` this many times per key before sending.
    defer_times: int = 0
    defer_for_seconds: float = 3_600
    # Steps whose email the provider refuses for good.
    rejected_steps: frozenset[str] = frozenset()
    emails: list[tuple[str, datetime]] = field(default_factory=list)
    sent_keys: list[str] = field(default_factory=list)
    deferrals: list[tuple[str, str, datetime]] = field(default_factory=list)
    handoffs: list[tuple[int, datetime]] = field(default_factory=list)
    escalations: list[tuple[int, datetime]] = field(default_factory=list)
    scores: list[tuple[int, str, datetime]] = field(default_factory=list)

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="send_email")
        async def send_email(request: EmailRequest) -> EmailOutcome:
            now = activity.info().scheduled_time
            asked = sum(key == request.idempotency_key for key, _, _ in self.deferrals)
            if asked < self.defer_times:
                self.deferrals.append((request.idempotency_key, request.step, now))
                until = datetime.fromtimestamp(
                    now.timestamp() + self.defer_for_seconds, tz=now.tzinfo
                )
                return EmailOutcome(
                    status="deferred", reason="frequency cap", defer_until=until
                )
            if request.step in self.rejected_steps:
                message = "the provider refused the recipient address"
                raise ApplicationError(message, type=EMAIL_REJECTED, non_retryable=True)
            self.emails.append((request.step, now))
            self.sent_keys.append(request.idempotency_key)
            return EmailOutcome(status="sent", message_id=request.idempotency_key)

        @activity.defn(name="score_lead")
        async def score_lead(request: ScoreRequest) -> ScoreResult:
            if self.scripted_scores is not None:
                result = ScoreResult(score=next(self.scripted_scores), breakdown={})
            else:
                result = compute_score(
                    request.rules,
                    self.attributes,
                    request.event_counts,
                    touches=request.touches,
                    as_of=request.as_of,
                )
            self.scores.append(
                (result.score, request.reason, activity.info().scheduled_time)
            )
            return result

        @activity.defn(name="notify_sales")
        async def notify_sales(request: HandoffRequest) -> HandoffOutcome:
            sent = (request.episode, activity.info().scheduled_time)
            (self.escalations if request.escalation else self.handoffs).append(sent)
            return HandoffOutcome(owner_email="sales@example.com", created=True)

        return [send_email, score_lead, notify_sales]

    def email_steps(self) -> list[str]:
        return [step for step, _ in self.emails]


# Events to send: (day after the start, event type).
Script = Sequence[tuple[float, str]]


async def run_journey(
    env: WorkflowEnvironment,
    task_queue: str,
    world: FakeWorld,
    start: JourneyStart,
    script: Script = (),
) -> tuple[JourneyResult, dict[str, Any], WorkflowHandle[Any, Any]]:
    """Start the journey, send the script's events on their days, and return
    the result and the final state."""
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[LeadJourney],
        activities=world.activities(),
    ):
        began = await env.get_current_time()
        handle = await env.client.start_workflow(
            LeadJourney.run,
            start,
            id=f"lead-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        for number, (day, event_type) in enumerate(script):
            now = await env.get_current_time()
            ahead = began + timedelta(days=day) - now
            if ahead > timedelta(0):
                await env.sleep(ahead)
            await handle.signal(
                LeadJourney.record_event,
                LeadEvent(
                    event_id=f"e-{number}",
                    type=event_type,
                    occurred_at=await env.get_current_time(),
                ),
            )
        result = await handle.result()
        state = await handle.query(LeadJourney.state)
    return result, state, handle
