"""One lead's nurture journey: a long-lived workflow, id `lead-<lead id>`.

The workflow interprets the journey definition it was started with, step by
step. Signals only queue events and updates only set flags; the run loop
applies both, so handlers never interleave with a step half done. Every wait
wakes for events, the sales SLA and the periodic re-score, and is the one place
where the run may continue as new (with its state and unprocessed events).
"""

from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

from models import search_attributes as sa
from models.journey import (
    BranchStep,
    Condition,
    EmailStep,
    EndStep,
    GotoStep,
    Journey,
    NotifySalesStep,
    ScoreStep,
    Step,
    WaitForStep,
    WaitStep,
)
from models.messages import (
    EMAIL_REJECTED,
    GOAL_EVENTS,
    SALES_ACCEPTED,
    SALES_ANSWERS,
    SALES_LOST,
    SALES_REJECTED,
    EmailOutcome,
    EmailRequest,
    HandoffOutcome,
    HandoffRequest,
    JourneyResult,
    JourneyStart,
    JourneyState,
    LeadEvent,
    MoveRequest,
    ScoreRequest,
    ScoreResult,
)
from workflows.schedule import next_window_opening, zone_for
from workflows.scoring import crosses_threshold, earn, has_decay, prune

# Activity names: the workflow refers to them by name so that it never imports
# the activity modules (they touch the database).
SEND_EMAIL = "send_email"
SCORE_LEAD = "score_lead"
NOTIFY_SALES = "notify_sales"

# One patch for everything the journey engine changed over the first skeleton:
# batch scoring with decay, periodic re-scores, the sales SLA, deferred sends and
# search attributes upserted only when they change. Runs started before it
# replay the skeleton's behaviour.
PATCH_ENGINE_V2 = "journey-engine-v2"

# How many handled event ids a journey remembers to ignore redelivered events.
HANDLED_IDS_KEPT = 2_000
RECENT_EVENTS_KEPT = 5
# A step visited this often in one journey is taken for a loop with no wait.
MAX_STEP_VISITS = 1_000
# A deferred send with no time given is asked again after this long.
DEFAULT_DEFER = timedelta(hours=1)

ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)


def workflow_id_for(lead_id: int) -> str:
    return f"lead-{lead_id}"


class JourneyEnded(Exception):
    """Raised inside the workflow when a goal or an end step ends the journey."""


class _MoveJourney(Exception):
    """Raised inside the workflow to go on in another journey."""

    def __init__(self, request: MoveRequest) -> None:
        super().__init__(request.journey.name)
        self.request = request


@workflow.defn(name="LeadJourney")
class LeadJourney:
    @workflow.init
    def __init__(self, start: JourneyStart) -> None:
        self._start = start
        self._journey = start.journey
        self._scoring = start.scoring
        self._state = start.state.model_copy(deep=True)
        self._inbox: deque[LeadEvent] = deque(start.pending_events)
        # Ids of queued events, so that a repeat is spotted without a scan.
        self._queued = {event.event_id for event in self._inbox}
        self._handled = set(self._state.handled_event_ids)
        self._goals = GOAL_EVENTS | set(start.journey.goals)
        self._move: MoveRequest | None = None
        self._engine_v2 = True
        self._events_this_run = 0
        self._published: dict[str, object] = {}

    # Signals, updates and queries: they record and wake, the run loop acts.

    @workflow.signal
    def record_event(self, event: LeadEvent) -> None:
        """Queue an event; the run loop applies it. Repeats are ignored."""
        if event.event_id in self._handled or event.event_id in self._queued:
            return
        self._inbox.append(event)
        self._queued.add(event.event_id)

    @workflow.query
    def state(self) -> dict[str, object]:
        return self._state.model_dump(mode="json")

    @workflow.query
    def status(self) -> dict[str, object]:
        """What an operator needs at a glance (no personal data)."""
        state = self._state
        return {
            "journey": self._journey.name,
            "version": self._journey.version,
            "step": _step_id(self._journey.steps, state.step_index),
            "stage": state.stage,
            "score": state.score,
            "mql_episode": state.mql_episode,
            "mql_status": state.mql_status,
            "paused": state.paused,
            "next_touch_at": state.next_touch_at.isoformat()
            if state.next_touch_at
            else None,
            "events_applied": state.events_applied,
        }

    @workflow.update
    def pause(self) -> str:
        self._state.paused = True
        self._publish()
        return f"paused at step {_step_id(self._journey.steps, self._state.step_index)}"

    @pause.validator
    def _validate_pause(self) -> None:
        if self._state.paused:
            message = "The journey is already paused; expected a running journey."
            raise ValueError(message)

    @workflow.update
    def resume(self) -> str:
        self._state.paused = False
        self._publish()
        return (
            f"resumed at step {_step_id(self._journey.steps, self._state.step_index)}"
        )

    @resume.validator
    def _validate_resume(self) -> None:
        if not self._state.paused:
            message = "The journey is not paused; expected a paused journey to resume."
            raise ValueError(message)

    @workflow.update
    def move_to_journey(self, request: MoveRequest) -> str:
        self._move = request
        return f"moving to {request.journey.name} v{request.journey.version}"

    @move_to_journey.validator
    def _validate_move(self, request: MoveRequest) -> None:
        current = self._journey
        if (request.journey.name, request.journey.version) == (
            current.name,
            current.version,
        ):
            message = (
                f"The lead is already in {current.name} v{current.version}; "
                "expected another journey or version."
            )
            raise ValueError(message)
        if self._move is not None:
            message = (
                f"A move to {self._move.journey.name} is already under way; "
                "expected one move at a time."
            )
            raise ValueError(message)
        missing = _missing_links(request.journey, request.linked_journeys)
        if missing:
            message = (
                f"Journey {request.journey.name} ends into {', '.join(missing)}, "
                "which the request does not carry in linked_journeys."
            )
            raise ValueError(message)

    # The run loop.

    @workflow.run
    async def run(self, start: JourneyStart) -> JourneyResult:
        self._engine_v2 = workflow.patched(PATCH_ENGINE_V2)
        journey = self._journey
        self._publish()
        try:
            await self._apply_events()
            while self._state.step_index < len(journey.steps):
                if self._state.paused and self._engine_v2:
                    await self._wait_until(
                        None,
                        "paused until an operator resumes the journey",
                        done=lambda: not self._state.paused,
                    )
                self._check_move()
                step = journey.steps[self._state.step_index]
                next_index = await self._run_step(step)
                self._state.step_index = next_index
                self._state.in_step = False
                self._state.step_deadline = None
                self._state.wait_for_hit = None
            self._state.ended_by = "completed"
        except JourneyEnded:
            pass
        except _MoveJourney as move:
            await self._continue_in(move.request)
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

    async def _run_step(self, step: Step) -> int:
        """Run one step; return the index of the step to run next."""
        state = self._state
        if not state.in_step:
            state.step_visits[step.id] = state.step_visits.get(step.id, 0) + 1
            state.in_step = True
        visits = state.step_visits[step.id]
        if visits > MAX_STEP_VISITS and self._engine_v2:
            state.ended_by = f"step {step.id} visited over {MAX_STEP_VISITS} times"
            raise JourneyEnded
        self._publish(current_step=step.id)
        next_index = state.step_index + 1

        if isinstance(step, EmailStep):
            await self._send_email(step, visits)
        elif isinstance(step, WaitStep):
            deadline = state.step_deadline or self._wait_deadline(step)
            state.step_deadline = deadline
            await self._wait_until(deadline, _wait_summary(step))
        elif isinstance(step, WaitForStep):
            deadline = state.step_deadline or workflow.now() + step.timeout
            state.step_deadline = deadline
            await self._wait_until(
                deadline,
                f"wait up to {_describe(step.timeout)} for {' or '.join(step.events)}",
                done=lambda: state.wait_for_hit is not None,
            )
            target = step.on_event if state.wait_for_hit else step.on_timeout
            self._remember(
                f"{step.id}: {state.wait_for_hit or 'no event'} "
                f"-> {target or 'next step'}"
            )
            next_index = self._index(target, next_index)
        elif isinstance(step, BranchStep):
            holds = self._holds(step.when)
            target = step.then if holds else step.otherwise
            self._remember(f"{step.id}: {'yes' if holds else 'no'}")
            next_index = self._index(target, next_index)
        elif isinstance(step, ScoreStep):
            await self._rescore(reason=f"step {step.id}")
        elif isinstance(step, NotifySalesStep):
            await self._open_mql_episode(reason=f"step {step.id}")
        elif isinstance(step, GotoStep):
            next_index = self._journey.index_of(step.to)
        elif isinstance(step, EndStep):
            self._end_step(step)
        await self._apply_events()
        return next_index

    def _end_step(self, step: EndStep) -> None:
        if step.into is None or not self._engine_v2:
            self._state.ended_by = "end step"
            raise JourneyEnded
        target = self._start.linked_journeys.get(step.into)
        if target is None:
            # TODO: a journey started without its linked journeys (an old
            # starter) ends here instead of moving on; the reason is recorded.
            self._state.ended_by = f"end step: journey {step.into} was not loaded"
            raise JourneyEnded
        raise _MoveJourney(
            MoveRequest(journey=target, linked_journeys=self._start.linked_journeys)
        )

    # Email.

    async def _send_email(self, step: EmailStep, visit: int) -> None:
        start = self._start
        key = f"lead-{start.lead_id}:{self._journey.name}:{step.id}:{visit}"
        request = EmailRequest(
            lead_id=start.lead_id,
            journey=self._journey.name,
            journey_version=self._journey.version,
            step=step.id,
            template=step.template,
            subject=step.subject,
            idempotency_key=key,
        )
        while True:
            try:
                outcome = await workflow.execute_activity(
                    SEND_EMAIL,
                    request,
                    result_type=EmailOutcome,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=ACTIVITY_RETRY,
                    summary=f"send email: {step.template} (step {step.id})",
                )
            except ActivityError as error:
                # A refusal for good fails this touch only; the lead stays in
                # its journey (the activity has marked the lead or the touch).
                cause = error.cause
                if not (
                    isinstance(cause, ApplicationError) and cause.type == EMAIL_REJECTED
                ):
                    raise
                outcome = EmailOutcome(status="failed", reason=cause.message)
            if outcome.status != "deferred" or not self._engine_v2:
                break
            # Held by the frequency cap or quiet hours: sleep (events still
            # handled, goals still end the journey) and ask again, same key.
            until = outcome.defer_until or workflow.now() + DEFAULT_DEFER
            self._remember(f"email {step.id} deferred: {outcome.reason or 'held'}")
            await self._wait_until(
                until, f"email {step.id} deferred until {until.isoformat()}"
            )
        if outcome.status == "sent":
            self._state.emails_sent += 1
        else:
            self._state.emails_suppressed += 1
            self._remember(f"email {step.id} not sent: {outcome.reason}")

    # Waiting.

    def _wait_deadline(self, step: WaitStep) -> datetime:
        deadline = workflow.now() + (step.duration or timedelta(0))
        if step.window is not None:
            zone = zone_for(self._start.time_zone, self._journey.default_time_zone)
            deadline = next_window_opening(deadline, step.window, zone)
        return deadline

    async def _wait_until(
        self,
        deadline: datetime | None,
        summary: str,
        done: Callable[[], bool] = lambda: False,
    ) -> None:
        """Sleep until `deadline` (or until `done()`), handling each event at
        once, the sales SLA and the periodic re-score on the way."""
        if deadline is not None:
            self._state.next_touch_at = deadline
            self._publish()
        first = True
        while True:
            if not first or self._engine_v2:
                await self._apply_events()
            first = False
            if self._engine_v2:
                await self._housekeeping()
                await self._continue_as_new_if_due()
            self._check_move()
            now = workflow.now()
            if done() or (deadline is not None and now >= deadline):
                break
            wakes = [deadline]
            if self._engine_v2:
                wakes += [self._next_rescore_at(), self._state.mql_answer_due]
            due = [moment for moment in wakes if moment is not None]
            timeout = min(due) - now if due else None
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox) or self._move is not None or done(),
                    timeout=timeout,
                    timeout_summary=summary,
                )
            except TimeoutError:
                if not self._engine_v2 and deadline is not None:
                    break
        self._state.next_touch_at = None

    async def _housekeeping(self) -> None:
        """What is due while the journey waits: the sales SLA, a re-score."""
        now = workflow.now()
        state = self._state
        due = state.mql_answer_due
        if due is not None and now >= due:
            if state.mql_status == "open":
                state.mql_status = "escalated"
                state.mql_answer_due = now + self._scoring.sales_sla
                await self._notify_sales("no answer within the SLA", escalation=True)
            else:
                # Escalated and still unanswered: back to nurturing.
                state.mql_status = "recycled"
                state.mql_answer_due = None
                state.stage = "nurturing"
                self._remember(f"MQL episode {state.mql_episode} recycled")
            self._publish()
        rescore_at = self._next_rescore_at()
        if rescore_at is not None and now >= rescore_at:
            await self._rescore(reason="periodic re-score")

    def _next_rescore_at(self) -> datetime | None:
        state = self._state
        if state.scored_at is None or not has_decay(self._scoring, state.touches):
            return None
        return state.scored_at + self._scoring.rescore_every

    # Events.

    async def _apply_events(self) -> None:
        """Apply queued events in arrival order, then re-score once for them."""
        applied: list[str] = []
        while self._inbox:
            event = self._inbox.popleft()
            self._queued.discard(event.event_id)
            self._mark_handled(event)
            self._record(event)
            if event.type in self._goals:
                self._state.ended_by = event.type
                self._record_rest()
                raise JourneyEnded
            if not self._engine_v2:
                await self._rescore(reason=f"event {event.type}")
                continue
            applied.append(event.type)
            self._state.touches += earn(self._scoring, self._state.touches, event)
            if event.type in SALES_ANSWERS:
                self._sales_answer(event.type)
            self._note_wait_for(event)
        if applied:
            await self._rescore(reason=f"events: {', '.join(sorted(set(applied)))}")

    def _record(self, event: LeadEvent) -> None:
        state = self._state
        state.event_counts[event.type] = state.event_counts.get(event.type, 0) + 1
        state.events_applied += 1
        self._events_this_run += 1
        if self._engine_v2:
            seen = state.last_seen.get(event.type)
            if seen is None or event.occurred_at > seen:
                state.last_seen[event.type] = event.occurred_at
        self._remember(f"{event.type} at {event.occurred_at.isoformat()}")

    def _record_rest(self) -> None:
        """Events queued behind a goal are recorded; they change nothing else."""
        while self._inbox:
            event = self._inbox.popleft()
            self._queued.discard(event.event_id)
            self._mark_handled(event)
            self._record(event)

    def _note_wait_for(self, event: LeadEvent) -> None:
        state = self._state
        if not state.in_step or state.step_index >= len(self._journey.steps):
            return
        step = self._journey.steps[state.step_index]
        if isinstance(step, WaitForStep) and event.type in step.events:
            state.wait_for_hit = state.wait_for_hit or event.type

    def _sales_answer(self, answer: str) -> None:
        state = self._state
        if state.mql_episode == 0:
            self._remember(f"{answer} ignored: no MQL episode")
            return
        state.mql_answer_due = None
        if answer == SALES_ACCEPTED:
            state.mql_status = "accepted"
            state.stage = "sql"
        elif answer in (SALES_REJECTED, SALES_LOST):
            state.mql_status = "rejected" if answer == SALES_REJECTED else "lost"
            state.stage = "nurturing"
        self._publish()

    # Scoring and MQL episodes.

    async def _rescore(self, reason: str) -> None:
        rules = self._scoring
        state = self._state
        now = workflow.now()
        if self._engine_v2:
            state.touches = prune(rules, state.touches, now)
        result = await workflow.execute_activity(
            SCORE_LEAD,
            ScoreRequest(
                lead_id=self._start.lead_id,
                rules=rules,
                event_counts=state.event_counts,
                reason=reason,
                touches=state.touches if self._engine_v2 else None,
                as_of=now if self._engine_v2 else None,
            ),
            result_type=ScoreResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTIVITY_RETRY,
            summary=f"score lead ({reason})",
        )
        state.score = result.score
        if self._engine_v2:
            state.scored_at = now
            opens, state.mql_armed = crosses_threshold(
                rules, result.score, state.mql_armed
            )
            state.mql_open = not state.mql_armed
        else:
            if state.mql_open and result.score < rules.rearm_below:
                # Cooled down enough: the next crossing is a new MQL episode.
                state.mql_open = False
            opens = not state.mql_open and result.score >= rules.mql_threshold
        self._publish()
        if opens:
            await self._open_mql_episode(reason=reason, armed_checked=True)

    async def _open_mql_episode(self, reason: str, armed_checked: bool = False) -> None:
        state = self._state
        if self._engine_v2:
            if not armed_checked and not state.mql_armed:
                return
            state.mql_armed = False
            state.mql_status = "open"
            state.mql_answer_due = workflow.now() + self._scoring.sales_sla
        elif state.mql_open:
            return
        state.mql_episode += 1
        state.mql_open = True
        state.stage = "mql"
        await self._notify_sales(reason)
        self._publish()

    async def _notify_sales(self, reason: str, escalation: bool = False) -> None:
        state = self._state
        what = "escalate" if escalation else "notify sales"
        await workflow.execute_activity(
            NOTIFY_SALES,
            HandoffRequest(
                lead_id=self._start.lead_id,
                episode=state.mql_episode,
                score=state.score,
                reason=reason,
                recent_events=state.recent_events,
                escalation=escalation,
            ),
            result_type=HandoffOutcome,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=ACTIVITY_RETRY,
            summary=f"{what}: MQL episode {state.mql_episode}",
        )

    # Branches.

    def _holds(self, condition: Condition) -> bool:
        state = self._state
        if condition.attribute is not None:
            value = self._start.attributes.get(condition.attribute)
            return value is not None and str(value) in condition.equals
        if condition.score_at_least is not None:
            return state.score >= condition.score_at_least
        assert condition.event is not None
        seen = state.last_seen.get(condition.event)
        if seen is None:
            return state.event_counts.get(condition.event, 0) > 0
        return condition.within is None or workflow.now() - seen <= condition.within

    def _index(self, target: str | None, default: int) -> int:
        return default if target is None else self._journey.index_of(target)

    # Continue-as-new and moving between journeys.

    def _check_move(self) -> None:
        if self._move is not None:
            raise _MoveJourney(self._move)

    async def _continue_as_new_if_due(self) -> None:
        info = workflow.info()
        if not (
            info.is_continue_as_new_suggested()
            or self._events_this_run >= self._start.event_budget
        ):
            return
        # Let running handlers finish so that nothing they do is lost; events
        # that arrive meanwhile ride along in `pending_events`.
        # TODO: continue_as_new cannot set a static summary in this SDK, so the
        # next run shows none; search attributes and current details carry on.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._next_start(self._start, self._state))

    async def _continue_in(self, request: MoveRequest) -> None:
        """Go on in another journey in this same workflow, keeping the score,
        the MQL state and the event history; the steps start from the top."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        state = self._state.model_copy(deep=True)
        state.previous_journeys = [*state.previous_journeys, self._journey.name]
        fresh = JourneyState()
        for name in ("step_index", "step_visits", "in_step", "step_deadline"):
            setattr(state, name, getattr(fresh, name))
        state.wait_for_hit = None
        state.ended_by = None
        state.paused = False
        start = self._start.model_copy(
            update={
                "journey": request.journey,
                "scoring": request.scoring or self._scoring,
                "linked_journeys": request.linked_journeys,
            }
        )
        workflow.continue_as_new(self._next_start(start, state))

    def _next_start(self, start: JourneyStart, state: JourneyState) -> JourneyStart:
        return start.model_copy(
            update={
                "state": state.model_copy(deep=True),
                "pending_events": list(self._inbox),
            }
        )

    # Bookkeeping and visibility.

    def _mark_handled(self, event: LeadEvent) -> None:
        ids = self._state.handled_event_ids
        ids.append(event.event_id)
        self._handled.add(event.event_id)
        if len(ids) > HANDLED_IDS_KEPT:
            # TODO: an event redelivered after more than HANDLED_IDS_KEPT newer
            # ones is applied again; the webhook's database dedupe is the
            # backstop for that.
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
        if ended_by in ("purchase", "sales_won"):
            return "customer"
        if ended_by in GOAL_EVENTS:
            return "suppressed"
        if ended_by in self._goals:
            return "converted"
        if not self._engine_v2:
            return "mql" if self._state.mql_open else "nurtured"
        status = self._state.mql_status
        if status == "accepted":
            return "sql"
        return "mql" if status in ("open", "escalated") else "nurtured"

    def _publish(self, current_step: str | None = None) -> None:
        """Keep the search attributes and current details the UI shows in step."""
        state = self._state
        journey = self._journey
        if self._engine_v2:
            mql = state.mql_status
        else:
            mql = (
                "open"
                if state.mql_open
                else ("closed" if state.mql_episode else "none")
            )
        if self._start.index_search_attributes:
            self._upsert(
                {
                    "stage": state.stage,
                    "score": state.score,
                    "journey": journey.name,
                    "version": journey.version,
                    "mql": mql,
                    "next": state.next_touch_at,
                }
            )
        step = current_step or _step_id(journey.steps, state.step_index)
        details = [
            f"**Journey:** {journey.name} v{journey.version}",
            f"**Step:** {step}" + (" (paused)" if state.paused else ""),
            f"**Stage:** {state.stage}",
            f"**Score:** {state.score} (MQL episode {state.mql_episode}, {mql})",
            f"**Emails sent:** {state.emails_sent}",
        ]
        if state.next_touch_at:
            details.append(f"**Next touch:** {state.next_touch_at.isoformat()}")
        if state.recent_events:
            details.append("**Recent events:** " + "; ".join(state.recent_events))
        workflow.set_current_details("\n".join(details))

    def _upsert(self, values: dict[str, Any]) -> None:
        """Upsert the search attributes; from the engine patch on, only changes."""
        if self._engine_v2:
            changed = {
                name: value
                for name, value in values.items()
                if self._published.get(name, _UNSET) != value
            }
        else:
            changed = values
        if not changed:
            return
        self._published.update(changed)
        keys = {
            "stage": sa.LEAD_STAGE,
            "score": sa.LEAD_SCORE,
            "journey": sa.JOURNEY,
            "version": sa.JOURNEY_VERSION,
            "mql": sa.MQL_STATE,
        }
        updates: list[SearchAttributeUpdate] = [  # type: ignore[type-arg]
            keys[name].value_set(value)  # type: ignore[attr-defined]
            for name, value in changed.items()
            if name in keys
        ]
        if "next" in changed:
            moment = changed["next"]
            updates.append(
                sa.NEXT_TOUCH_AT.value_set(moment)
                if moment
                else sa.NEXT_TOUCH_AT.value_unset()
            )
        workflow.upsert_search_attributes(updates)


_UNSET = object()


def _missing_links(journey: Journey, linked: dict[str, Journey]) -> list[str]:
    return [
        step.into
        for step in journey.steps
        if isinstance(step, EndStep) and step.into and step.into not in linked
    ]


def _step_id(steps: Sequence[Step], index: int) -> str:
    return steps[index].id if index < len(steps) else "finished"


def _wait_summary(step: WaitStep) -> str:
    parts = []
    if step.duration is not None:
        parts.append(_describe(step.duration))
    if step.window is not None:
        window = step.window
        parts.append(
            f"then until {window.start:%H:%M}-{window.end:%H:%M} local on "
            f"{','.join(window.days)}"
        )
    return f"wait {' '.join(parts)} (an event wakes it)"


def _describe(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            amount = seconds // size
            return f"{amount} {unit}{'s' if amount != 1 else ''}"
    return f"{seconds} seconds"
