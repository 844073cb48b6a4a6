"""What crosses the workflow boundary: inputs, signals, activity requests and
results. Pure pydantic, safe inside the workflow sandbox."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from models.journey import Journey, ScoringRules

# Event types that end a journey at once, from any step.
UNSUBSCRIBED = "unsubscribe"
PURCHASE = "purchase"
GOAL_EVENTS = frozenset({UNSUBSCRIBED, PURCHASE, "hard_bounce", "spam_report"})


class LeadEvent(BaseModel):
    """Something the lead did, as delivered to its journey."""

    event_id: str
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = {}


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


class JourneyStart(BaseModel):
    lead_id: int
    journey: Journey
    scoring: ScoringRules
    state: JourneyState = Field(default_factory=JourneyState)
    pending_events: list[LeadEvent] = []
    # Off only where the server cannot index the project's search attributes
    # (the time-skipping test server cannot register them).
    index_search_attributes: bool = True


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


class ScoreResult(BaseModel):
    score: int
    breakdown: dict[str, int]


class HandoffRequest(BaseModel):
    lead_id: int
    episode: int
    score: int
    reason: str
    recent_events: list[str]


class HandoffOutcome(BaseModel):
    owner_email: str
    created: bool
