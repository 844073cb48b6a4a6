"""What crosses the workflow boundary: inputs, signals, activity requests and
results. Pure pydantic, safe inside the workflow sandbox."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from models.journey import Journey, ScoringRules

# Event types that end a journey at once, from any step (a journey may list
# more in its `goals`).
UNSUBSCRIBED = "unsubscribe"
PURCHASE = "purchase"
HARD_BOUNCE = "hard_bounce"
SPAM_REPORT = "spam_report"

# Sales answers to an MQL handoff, delivered as lead events.
SALES_ACCEPTED = "sales_accepted"
SALES_REJECTED = "sales_rejected"
SALES_WON = "sales_won"
SALES_LOST = "sales_lost"
SALES_ANSWERS = frozenset({SALES_ACCEPTED, SALES_REJECTED, SALES_WON, SALES_LOST})

GOAL_EVENTS = frozenset({UNSUBSCRIBED, PURCHASE, SALES_WON, HARD_BOUNCE, SPAM_REPORT})


class LeadEvent(BaseModel):
    """Something the lead did, as delivered to its journey."""

    event_id: str
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = {}


class ScoredTouch(BaseModel):
    """Behaviour points one event earned, at the time it happened; they fade
    with the scoring rules' half-life."""

    rule: int
    event: str
    points: int
    at: datetime


class JourneyState(BaseModel):
    """Everything a journey needs to carry on, including across continue-as-new."""

    step_index: int = 0
    stage: str = "nurturing"
    score: int = 0
    mql_episode: int = 0
    mql_open: bool = False
    step_visits: dict[str, int] = {}
    event_counts: dict[str, int] = {}
    handled_event_ids: list[str] = []
    recent_events: list[str] = []
    emails_sent: int = 0
    emails_suppressed: int = 0
    next_touch_at: datetime | None = None
    ended_by: str | None = None
    # Behaviour points earned and not yet faded away (bounded, oldest dropped).
    touches: list[ScoredTouch] = []
    # When each event type last happened (for branches with `within`).
    last_seen: dict[str, datetime] = {}
    # A new MQL episode may open only while armed (hysteresis).
    mql_armed: bool = True
    # open, escalated, accepted, rejected, lost, recycled or none.
    mql_status: str = "none"
    mql_answer_due: datetime | None = None
    # The step in progress when the run continued as new, and its deadline,
    # so that the next run resumes it instead of starting it again.
    in_step: bool = False
    step_deadline: datetime | None = None
    # The event type that answered the wait_for step in progress, if any.
    wait_for_hit: str | None = None
    scored_at: datetime | None = None
    paused: bool = False
    # Journey names this lead went through before the current one.
    previous_journeys: list[str] = []
    events_applied: int = 0


class JourneyStart(BaseModel):
    lead_id: int
    journey: Journey
    scoring: ScoringRules
    state: JourneyState = Field(default_factory=JourneyState)
    pending_events: list[LeadEvent] = []
    # Off only where the server cannot index the project's search attributes
    # (the time-skipping test server cannot register them).
    index_search_attributes: bool = True
    # The lead's IANA time zone for send windows; the journey's default when
    # missing or unknown.
    time_zone: str | None = None
    # Lead attributes that branch steps test (the same ones fit rules use).
    attributes: dict[str, Any] = {}
    # Journeys an `end` step may move the lead into, loaded with this one.
    linked_journeys: dict[str, Journey] = {}
    # Continue as new after this many events in one run, even unasked: a
    # worker that must replay a run replays it within the deadlock timeout.
    event_budget: int = 1_000


class MoveRequest(BaseModel):
    """An operator moving a lead into another journey (an update)."""

    journey: Journey
    scoring: ScoringRules | None = None
    linked_journeys: dict[str, Journey] = {}


class JourneyResult(BaseModel):
    lead_id: int
    journey: str
    stage: str
    score: int
    mql_episodes: int
    emails_sent: int
    ended_by: str


class EmailRequest(BaseModel):
    lead_id: int
    journey: str
    journey_version: int
    step: str
    template: str
    subject: str
    idempotency_key: str


# `ApplicationError.type` of a send the provider refused for good (400, 403,
# 413, or an address it will never accept): the touch fails, the journey goes on.
EMAIL_REJECTED = "EmailRejected"


class EmailOutcome(BaseModel):
    """`sent`, `suppressed` (never to be sent; `reason` says why) or `deferred`
    (the frequency cap or quiet hours hold it; the journey sleeps until
    `defer_until` and asks again with the same idempotency key)."""

    status: str
    reason: str | None = None
    message_id: str | None = None
    defer_until: datetime | None = None


class ScoreRequest(BaseModel):
    lead_id: int
    rules: ScoringRules
    event_counts: dict[str, int]
    reason: str
    # Behaviour points with their times, and the moment to score at; when
    # given, scoring fades them by the half-life instead of using the counts.
    touches: list[ScoredTouch] | None = None
    as_of: datetime | None = None


class ScoreResult(BaseModel):
    score: int
    breakdown: dict[str, int]


class HandoffRequest(BaseModel):
    lead_id: int
    episode: int
    score: int
    reason: str
    recent_events: list[str]
    # A reminder for an episode sales has not answered within the SLA.
    escalation: bool = False


class HandoffOutcome(BaseModel):
    owner_email: str
    created: bool
