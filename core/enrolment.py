"""Enrolling leads: upsert them with their seeded history, then start one
journey each, idempotently, with a bounded number of starts in flight."""

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.db import get_engine
from core.intake import normalise_email
from models import search_attributes as sa
from models.journey import Journey, ScoringRules
from models.messages import GOAL_EVENTS, JourneyStart
from models.messages import LeadEvent as EventMessage
from models.tables import EventStatus, Lead, LeadEvent, utcnow
from workflows.journey import LeadJourney, workflow_id_for

# `events.source` of behaviour history seeded from an import. A journey started
# for the lead applies these events first, so its first score reflects them.
SEEDED_SOURCE = "crm_import"


@dataclass(frozen=True)
class LeadRecord:
    """A lead as an import hands it over: already validated and normalised."""

    email: str
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    owner_email: str | None = None
    time_zone: str | None = None
    do_not_email: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    # Event type -> how many such events the CRM already knows of.
    history: dict[str, int] = field(default_factory=dict)
    unsubscribed: bool = False
    bounced: bool = False
    # Where the lead came from in its file, for messages about it.
    row_number: int | None = None


@dataclass(frozen=True)
class UpsertedLead:
    lead_id: int
    created: bool


@dataclass(frozen=True)
class UpsertConflict:
    row_number: int | None
    reason: str


def upsert_leads(
    database_url: str, records: Sequence[LeadRecord], *, now: datetime | None = None
) -> list[UpsertedLead | UpsertConflict]:
    """Insert or update leads, matched by external id first, then by email.

    One transaction for the batch: a failure leaves none of it behind. A record
    whose external id and email belong to two different leads is a conflict,
    returned in its place and not written. An import never lifts a suppression:
    do-not-email, unsubscribe and bounce marks stay once set.
    """
    # TODO: a lead the webhook inserts between the lookup and the insert makes
    # the batch fail on the unique email; the re-run then upserts it. A
    # savepoint per row (or ON CONFLICT on email) would keep the batch going.
    now = now or utcnow()
    outcomes: list[UpsertedLead | UpsertConflict] = []
    with Session(get_engine(database_url)) as session:
        existing = _existing_leads(session, records)
        for record in records:
            email = normalise_email(record.email)
            by_email = existing.get(("email", email))
            by_external = (
                existing.get(("external_id", record.external_id))
                if record.external_id
                else None
            )
            outcome = _conflict(record, by_email, by_external)
            if outcome is not None:
                outcomes.append(outcome)
                continue
            lead = by_external or by_email
            created = lead is None
            if lead is None:
                lead = Lead(email=email, stage="new", created_at=now)
            _apply(lead, record, email, now)
            session.add(lead)
            session.flush()
            assert lead.id is not None
            existing[("email", email)] = lead
            if lead.external_id:
                existing[("external_id", lead.external_id)] = lead
            _store_history(session, lead.id, record.history, now)
            outcomes.append(UpsertedLead(lead_id=lead.id, created=created))
        session.commit()
    return outcomes


def _existing_leads(
    session: Session, records: Sequence[LeadRecord]
) -> dict[tuple[str, str], Lead]:
    emails = {normalise_email(record.email) for record in records}
    external_ids = {record.external_id for record in records if record.external_id}
    found: dict[tuple[str, str], Lead] = {}
    statement = select(Lead).where(
        or_(col(Lead.email).in_(emails), col(Lead.external_id).in_(external_ids))
    )
    for lead in session.exec(statement.with_for_update()):
        found[("email", lead.email)] = lead
        if lead.external_id:
            found[("external_id", lead.external_id)] = lead
    return found


def _conflict(
    record: LeadRecord, by_email: Lead | None, by_external: Lead | None
) -> UpsertConflict | None:
    row = f"row {record.row_number}: " if record.row_number else ""
    if by_email and by_external and by_email.id != by_external.id:
        reason = (
            f"{row}external id {record.external_id!r} belongs to lead "
            f"{by_external.id} but the email belongs to lead {by_email.id}"
        )
        return UpsertConflict(record.row_number, reason)
    if (
        by_email
        and not by_external
        and record.external_id
        and by_email.external_id
        and by_email.external_id != record.external_id
    ):
        reason = (
            f"{row}the email belongs to lead {by_email.id}, whose external id is "
            f"{by_email.external_id!r}, not {record.external_id!r}"
        )
        return UpsertConflict(record.row_number, reason)
    return None


def _apply(lead: Lead, record: LeadRecord, email: str, now: datetime) -> None:
    """Newer values replace older ones; an empty value never erases one."""
    lead.email = email
    for name in ("external_id", "first_name", "last_name", "owner_email"):
        value = getattr(record, name)
        if value is not None:
            setattr(lead, name, value)
    if record.time_zone is not None:
        lead.time_zone = record.time_zone
    # TODO: a lead who gives consent again after opting out needs an explicit
    # action (a re-subscribe event), never a bulk file; there is none yet.
    lead.do_not_email = lead.do_not_email or record.do_not_email
    lead.attributes = {**(lead.attributes or {}), **record.attributes}
    if record.unsubscribed and lead.unsubscribed_at is None:
        lead.unsubscribed_at = now
    if record.bounced and lead.bounced_at is None:
        lead.bounced_at = now
    lead.updated_at = now


def seeded_event_key(lead_id: int, event_type: str, number: int) -> str:
    return f"{SEEDED_SOURCE}:lead-{lead_id}:{event_type}:{number}"


def _store_history(
    session: Session, lead_id: int, history: dict[str, int], now: datetime
) -> None:
    rows = [
        {
            "dedupe_key": seeded_event_key(lead_id, event_type, number),
            "lead_id": lead_id,
            "type": event_type,
            "source": SEEDED_SOURCE,
            "properties": {"seeded": True},
            # Delivered with the journey's start (`JourneyStart.pending_events`).
            "status": EventStatus.DELIVERED,
            "occurred_at": now,
            "received_at": now,
            "delivered_at": now,
        }
        for event_type, count in history.items()
        for number in range(1, count + 1)
    ]
    if rows:
        session.execute(
            insert(LeadEvent)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )


@dataclass(frozen=True)
class Enrolment:
    """One lead to start, with the history its journey applies first."""

    lead_id: int
    pending_events: list[EventMessage] = field(default_factory=list)
    # The lead's time zone for send windows and the attributes branches test.
    time_zone: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def enrolments_for(database_url: str, lead_ids: Sequence[int]) -> list[Enrolment]:
    """Each lead with its seeded history, goal events (unsubscribe, bounce) last
    so that the rest is scored before a goal ends the journey."""
    by_lead: dict[int, list[EventMessage]] = {lead_id: [] for lead_id in lead_ids}
    with Session(get_engine(database_url)) as session:
        statement = (
            select(LeadEvent)
            .where(col(LeadEvent.lead_id).in_(lead_ids))
            .where(LeadEvent.source == SEEDED_SOURCE)
            .order_by(col(LeadEvent.id))
        )
        profiles = {
            lead.id: (lead.time_zone, lead.attributes)
            for lead in session.exec(select(Lead).where(col(Lead.id).in_(lead_ids)))
        }
        for row in session.exec(statement):
            assert row.lead_id is not None
            by_lead[row.lead_id].append(
                EventMessage(
                    event_id=row.dedupe_key,
                    type=row.type,
                    occurred_at=row.occurred_at,
                    properties=row.properties,
                )
            )
    return [
        Enrolment(
            lead_id,
            sorted(events, key=lambda event: event.type in GOAL_EVENTS),
            *profiles.get(lead_id, (None, {})),
        )
        for lead_id, events in by_lead.items()
    ]


@dataclass(frozen=True)
class LeadFilter:
    """Which leads in the database make a cohort. Empty fields match all."""

    attributes: dict[str, str] = field(default_factory=dict)
    stage: str | None = None
    min_score: int | None = None
    created_since: datetime | None = None


def lead_ids_matching(
    database_url: str, lead_filter: LeadFilter, batch_size: int = 1_000
) -> Iterator[list[int]]:
    """Ids of matching leads in batches, oldest first, never all at once."""
    statement = select(Lead.id).order_by(col(Lead.id))
    for name, value in lead_filter.attributes.items():
        statement = statement.where(col(Lead.attributes)[name].astext == value)
    if lead_filter.stage is not None:
        statement = statement.where(Lead.stage == lead_filter.stage)
    if lead_filter.min_score is not None:
        statement = statement.where(col(Lead.score) >= lead_filter.min_score)
    if lead_filter.created_since is not None:
        statement = statement.where(col(Lead.created_at) >= lead_filter.created_since)
    last_id = 0
    with Session(get_engine(database_url)) as session:
        while True:
            page = session.exec(
                statement.where(col(Lead.id) > last_id).limit(batch_size)
            ).all()
            ids = [lead_id for lead_id in page if lead_id is not None]
            if not ids:
                return
            yield ids
            last_id = ids[-1]


async def start_journey(
    client: Client,
    task_queue: str,
    lead_id: int,
    journey: Journey,
    scoring: ScoringRules,
    pending_events: Sequence[EventMessage] = (),
    index_search_attributes: bool = True,
    time_zone: str | None = None,
    attributes: dict[str, Any] | None = None,
    linked_journeys: dict[str, Journey] | None = None,
) -> bool:
    """Start the lead's journey; False when the lead already has one.

    The id is `lead-<id>`. A finished journey is not started again: re-enrolment
    is a journey rule, not something a repeated import may do by accident.
    """
    search_attributes = (
        TypedSearchAttributes(
            [
                SearchAttributePair(sa.LEAD_STAGE, "nurturing"),
                SearchAttributePair(sa.LEAD_SCORE, 0),
                SearchAttributePair(sa.JOURNEY, journey.name),
                SearchAttributePair(sa.JOURNEY_VERSION, journey.version),
                SearchAttributePair(sa.MQL_STATE, "none"),
            ]
        )
        if index_search_attributes
        else None
    )
    try:
        await client.start_workflow(
            LeadJourney.run,
            JourneyStart(
                lead_id=lead_id,
                journey=journey,
                scoring=scoring,
                pending_events=list(pending_events),
                index_search_attributes=index_search_attributes,
                time_zone=time_zone,
                attributes=attributes or {},
                linked_journeys=linked_journeys or {},
            ),
            id=workflow_id_for(lead_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"{journey.name} v{journey.version} for lead {lead_id}",
            search_attributes=search_attributes,
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


@dataclass
class CohortOutcome:
    started: int = 0
    already_enrolled: int = 0


async def start_cohort(
    client: Client,
    task_queue: str,
    enrolments: Iterable[Enrolment],
    journey: Journey,
    scoring: ScoringRules,
    concurrency: int = 32,
    on_start: Callable[[Enrolment, bool], None] | None = None,
    index_search_attributes: bool = True,
    linked_journeys: dict[str, Journey] | None = None,
) -> CohortOutcome:
    """Start journeys for many leads with at most `concurrency` starts in flight.

    Only counts are kept, never every start's result, so memory stays flat
    however large the cohort. `on_start` hears of each start as it completes
    (True: started; False: the lead already had a journey).
    """
    outcome = CohortOutcome()
    gate = asyncio.Semaphore(concurrency)

    async def start_one(enrolment: Enrolment) -> None:
        try:
            started = await start_journey(
                client,
                task_queue,
                enrolment.lead_id,
                journey,
                scoring,
                pending_events=enrolment.pending_events,
                index_search_attributes=index_search_attributes,
                time_zone=enrolment.time_zone,
                attributes=enrolment.attributes,
                linked_journeys=linked_journeys,
            )
        finally:
            gate.release()
        if started:
            outcome.started += 1
        else:
            outcome.already_enrolled += 1
        if on_start is not None:
            on_start(enrolment, started)

    async with asyncio.TaskGroup() as group:
        for enrolment in enrolments:
            # Acquire before creating the task, so that a large cohort never
            # holds more than `concurrency` pending starts in memory.
            await gate.acquire()
            group.create_task(start_one(enrolment))
    return outcome
