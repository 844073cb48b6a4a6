"""One lead's nurture journey: a long-lived workflow, id `lead-<lead id>`."""

from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate

from models import search_attributes as sa
from models.journey import EmailStep, NotifySalesStep, ScoreStep, Step, WaitStep
from models.messages import (
    GOAL_EVENTS,
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

# Activity names: the workflow refers to them by name so that it never imports
# the activity modules (they touch the database).
SEND_EMAIL = "send_email"
SCORE_LEAD = "score_lead"
NOTIFY_SALES = "notify_sales"

# How many handled event ids a journey remembers to ignore redelivered events.
HANDLED_IDS_KEPT = 2_000
RECENT_EVENTS_KEPT = 5

ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)


def workflow_id_for(lead_id: int) -> str:
    return f"lead-{lead_id}"


class JourneyEnded(Exception):
    """Raised inside the workflow when a goal event ends the journey."""


@workflow.defn(name="LeadJourney")
class LeadJourney:
    @workflow.init
    def __init__(self, start: JourneyStart) -> None:
        self._start = start
        self._state = start.state.model_copy(deep=True)
        self._inbox: list[LeadEvent] = list(start.pending_events)
        self._handled = set(self._state.handled_event_ids)

    @workflow.signal
    def record_event(self, event: LeadEvent) -> None:
        """Queue an event; the run loop applies it. Repeats are ignored."""
        if event.event_id in self._handled:
            return
        if any(queued.event_id == event.event_id for queued in self._inbox):
            return
        self._inbox.append(event)

    @workflow.query
    def state(self) -> dict[str, object]:
        return self._state.model_dump(mode="json")

    @workflow.run
    async def run(self, start: JourneyStart) -> JourneyResult:
        journey = start.journey
        self._publish()
        try:
            await self._apply_events()
            while self._state.step_index < len(journey.steps):
                step = journey.steps[self._state.step_index]
                await self._run_step(step)
                self._state.step_index += 1
            self._state.ended_by = "completed"
        except JourneyEnded:
            pass
        self._state.stage = self._final_stage()
        self._state.next_touch_at = None
        self._publish()
        return JourneyResult(
            lead_id=start.lead_id,
            journey=journey.name,
            stage=self._state.stage,
            score=self._state.score,
            mql_episodes=self._state.mql_episode,
            emails_sent=self._state.emails_sent,
            ended_by=self._state.ended_by or "completed",
        )

    async def _run_step(self, step: Step) -> None:
        visits = self._state.step_visits.get(step.id, 0) + 1
        self._state.step_visits[step.id] = visits
        self._publish(current_step=step.id)
        if isinstance(step, EmailStep):
            await self._send_email(step, visits)
        elif isinstance(step, WaitStep):
            await self._wait(step.duration)
        elif isinstance(step, ScoreStep):
            await self._rescore(reason=f"step {step.id}")
        elif isinstance(step, NotifySalesStep):
            await self._open_mql_episode(reason=f"step {step.id}")
        else:
            self._state.ended_by = "end step"
            raise JourneyEnded
        await self._apply_events()

    async def _send_email(self, step: EmailStep, visit: int) -> None:
        start = self._start
        key = f"lead-{start.lead_id}:{start.journey.name}:{step.id}:{visit}"
        request = EmailRequest(
            lead_id=start.lead_id,
            journey=start.journey.name,
            journey_version=start.journey.version,
            step=step.id,
            template=step.template,
            subject=step.subject,
            idempotency_key=key,
        )
        outcome = await workflow.execute_activity(
            SEND_EMAIL,
            request,
            result_type=EmailOutcome,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=ACTIVITY_RETRY,
            summary=f"send email: {step.template} (step {step.id})",
        )
        if outcome.status == "sent":
            self._state.emails_sent += 1
        else:
            self._state.emails_suppressed += 1
            self._remember(f"email {step.id} not sent: {outcome.reason}")

    async def _wait(self, duration: timedelta) -> None:
        """Sleep for `duration`; each event that arrives meanwhile is handled at
        once, then the wait goes on until its deadline."""
        deadline = workflow.now() + duration
        self._state.next_touch_at = deadline
        self._publish()
        while (remaining := deadline - workflow.now()) > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox),
                    timeout=remaining,
                    timeout_summary=f"wait {_describe(duration)} (an event wakes it)",
                )
            except TimeoutError:
                break
            await self._apply_events()
        self._state.next_touch_at = None

    async def _apply_events(self) -> None:
        """Apply queued events in arrival order: count, score, maybe hand over."""
        while self._inbox:
            event = self._inbox.pop(0)
            self._mark_handled(event)
            counts = self._state.event_counts
            counts[event.type] = counts.get(event.type, 0) + 1
            self._remember(f"{event.type} at {event.occurred_at.isoformat()}")
            if event.type in GOAL_EVENTS:
                self._state.ended_by = event.type
                raise JourneyEnded
            await self._rescore(reason=f"event {event.type}")

    async def _rescore(self, reason: str) -> None:
        rules = self._start.scoring
        result = await workflow.execute_activity(
            SCORE_LEAD,
            ScoreRequest(
                lead_id=self._start.lead_id,
                rules=rules,
                event_counts=self._state.event_counts,
                reason=reason,
            ),
            result_type=ScoreResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTIVITY_RETRY,
            summary=f"score lead ({reason})",
        )
        self._state.score = result.score
        if self._state.mql_open and result.score < rules.rearm_below:
            # Cooled down enough: the next crossing is a new MQL episode.
            self._state.mql_open = False
        self._publish()
        if not self._state.mql_open and result.score >= rules.mql_threshold:
            await self._open_mql_episode(reason=reason)

    async def _open_mql_episode(self, reason: str) -> None:
        if self._state.mql_open:
            return
        self._state.mql_episode += 1
        self._state.mql_open = True
        self._state.stage = "mql"
        await workflow.execute_activity(
            NOTIFY_SALES,
            HandoffRequest(
                lead_id=self._start.lead_id,
                episode=self._state.mql_episode,
                score=self._state.score,
                reason=reason,
                recent_events=self._state.recent_events,
            ),
            result_type=HandoffOutcome,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=ACTIVITY_RETRY,
            summary=f"notify sales: MQL episode {self._state.mql_episode}",
        )
        self._publish()

    def _mark_handled(self, event: LeadEvent) -> None:
        ids = self._state.handled_event_ids
        ids.append(event.event_id)
        self._handled.add(event.event_id)
        if len(ids) > HANDLED_IDS_KEPT:
            forgotten = ids[: len(ids) - HANDLED_IDS_KEPT]
            del ids[: len(forgotten)]
            self._handled.difference_update(forgotten)

    def _remember(self, line: str) -> None:
        recent = self._state.recent_events
        recent.append(line)
        del recent[:-RECENT_EVENTS_KEPT]

    def _final_stage(self) -> str:
        ended_by = self._state.ended_by
        if ended_by == "unsubscribe":
            return "unsubscribed"
        if ended_by == "purchase":
            return "customer"
        if ended_by in GOAL_EVENTS:
            return "suppressed"
        return "mql" if self._state.mql_open else "nurtured"

    def _publish(self, current_step: str | None = None) -> None:
        """Keep the search attributes and current details the UI shows in step."""
        state = self._state
        journey = self._start.journey
        mql = "open" if state.mql_open else ("closed" if state.mql_episode else "none")
        if self._start.index_search_attributes:
            updates: Sequence[SearchAttributeUpdate] = [  # type: ignore[type-arg]
                sa.LEAD_STAGE.value_set(state.stage),
                sa.LEAD_SCORE.value_set(state.score),
                sa.JOURNEY.value_set(journey.name),
                sa.JOURNEY_VERSION.value_set(journey.version),
                sa.MQL_STATE.value_set(mql),
                sa.NEXT_TOUCH_AT.value_set(state.next_touch_at)
                if state.next_touch_at
                else sa.NEXT_TOUCH_AT.value_unset(),
            ]
            workflow.upsert_search_attributes(updates)
        step = current_step or _step_id(journey.steps, state.step_index)
        details = [
            f"**Journey:** {journey.name} v{journey.version}",
            f"**Step:** {step}",
            f"**Stage:** {state.stage}",
            f"**Score:** {state.score} (MQL episode {state.mql_episode}, {mql})",
            f"**Emails sent:** {state.emails_sent}",
        ]
        if state.next_touch_at:
            details.append(f"**Next touch:** {state.next_touch_at.isoformat()}")
        if state.recent_events:
            details.append("**Recent events:** " + "; ".join(state.recent_events))
        workflow.set_current_details("\n".join(details))


def _step_id(steps: Sequence[Step], index: int) -> str:
    return steps[index].id if index < len(steps) else "finished"


def _describe(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            amount = seconds // size
            return f"{amount} {unit}{'s' if amount != 1 else ''}"
    return f"{seconds} seconds"
