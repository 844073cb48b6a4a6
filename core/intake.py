"""Event intake, shared by the webhook service, the relay and the starter.

Store first, then signal. `store_event` writes the event under a unique dedupe
key (a repeat stores nothing) and, in the same transaction, marks the lead row
for events that suppress email (unsubscribe, hard bounce, spam report) or
change attributes. `deliver_event` then signals the lead's journey, or starts
one with signal-with-start when the entry journey's rule allows it. An event
that cannot be signalled now (Temporal unreachable) stays `pending`, and the
relay (core/relay.py) delivers it later.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, update
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
from temporalio.service import RPCError, RPCStatusCode

from core.catalog import load_journey, load_linked_journeys, load_scoring
from core.db import get_engine
from core.settings import Settings
from models import search_attributes as sa
from models.journey import Journey, ScoringRules
from models.messages import HARD_BOUNCE, SPAM_REPORT, UNSUBSCRIBED, JourneyStart
from models.messages import LeadEvent as EventMessage
from models.tables import EmailSend, EventStatus, Lead, LeadEvent, utcnow
from workflows.journey import LeadJourney, workflow_id_for

if TYPE_CHECKING:
    # core.enrolment imports this module (for normalise_email).
    from core.enrolment import Enrolment

log = structlog.get_logger(__name__)

EMAIL_CLICK = "email_click"
EMAIL_DELIVERED = "email_delivered"
# Recorded and delivered to the journey, but no scoring rule gives them points.
SCANNER_CLICK = "scanner_click"
MACHINE_OPEN = "machine_open"
ATTRIBUTE_UPDATE = "attribute_update"

# How long the request that stored an event has to deliver it before the relay
# may try too (the workflow ignores a repeat either way).
REQUEST_HEAD_START = timedelta(seconds=30)
# After this many refusals that are not about reachability, an event is failed.
MAX_ATTEMPTS = 10

# Temporal answers that mean "try again later", not "this will never work".
_TRANSIENT = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.INTERNAL,
    }
)


# Event types that suppress email, and the lead column each one sets.
_MARKS = {
    UNSUBSCRIBED: Lead.unsubscribed_at,
    HARD_BOUNCE: Lead.bounced_at,
    SPAM_REPORT: Lead.complained_at,
}


@dataclass(frozen=True)
class IncomingEvent:
    dedupe_key: str
    type: str
    occurred_at: datetime
    source: str
    lead_id: int | None = None
    email: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    # The provider's message id (SendGrid): maps to the send record when the
    # event carries no lead id, and ties clicks to their delivery.
    message_id: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    id: int
    lead_id: int | None
    created: bool
    status: str = EventStatus.PENDING
    # The request should deliver it now (False: a suspected scanner click
    # waits for the relay, or the event is not deliverable).
    deliver_now: bool = True


@dataclass(frozen=True)
class ScannerRule:
    """Which clicks are a link scanner's: see Settings.scanner_click_*."""

    window: timedelta = timedelta(seconds=120)
    min_links: int = 3
    settle: timedelta = timedelta(seconds=60)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ScannerRule":
        return cls(
            window=timedelta(seconds=settings.scanner_click_window_seconds),
            min_links=settings.scanner_click_min_links,
            settle=timedelta(seconds=settings.scanner_click_settle_seconds),
        )


@dataclass(frozen=True)
class JourneyEntry:
    """The journey an event may start for a lead that has none."""

    journey: Journey
    scoring: ScoringRules
    task_queue: str
    linked_journeys: dict[str, Journey] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> "JourneyEntry":
        journey = load_journey(settings.journeys_dir, settings.entry_journey)
        return cls(
            journey=journey,
            scoring=load_scoring(settings.journeys_dir),
            task_queue=settings.temporal_task_queue,
            linked_journeys=load_linked_journeys(settings.journeys_dir, journey),
        )

    def admits(self, event_type: str) -> bool:
        return event_type in self.journey.entry.events


def normalise_email(email: str) -> str:
    return email.strip().lower()


def store_event(
    database_url: str,
    incoming: IncomingEvent,
    scanner: ScannerRule | None = None,
) -> StoredEvent:
    """Persist the event under its dedupe key; a duplicate stores nothing."""
    scanner = scanner or ScannerRule()
    with Session(get_engine(database_url)) as session:
        lead_id = _find_lead(session, incoming)
        now = utcnow()
        status = EventStatus.PENDING if lead_id is not None else EventStatus.UNMATCHED
        properties = dict(incoming.properties)
        relay_after = now + REQUEST_HEAD_START
        held = False
        if lead_id is not None and incoming.type == EMAIL_CLICK:
            delivered_at = _delivery_time(session, incoming.message_id)
            if delivered_at is not None and (
                incoming.occurred_at - delivered_at <= scanner.window
            ):
                # Possibly the first click of a scanner's burst: let the burst
                # arrive, then the relay decides (see `_classify_click`).
                # TODO: a person's click this soon after delivery is delayed by
                # the settle time too, and a scanner clicking fewer links than
                # `min_links` passes as a person.
                properties["scanner_suspect"] = True
                properties["delivered_at"] = delivered_at.isoformat()
                relay_after = now + scanner.settle
                held = True
        lead_ref = (
            str(incoming.lead_id) if incoming.lead_id is not None else incoming.email
        )
        result = session.execute(
            insert(LeadEvent)
            .values(
                dedupe_key=incoming.dedupe_key,
                lead_id=lead_id,
                type=incoming.type,
                source=incoming.source,
                properties=properties,
                status=status,
                occurred_at=incoming.occurred_at,
                received_at=now,
                lead_ref=lead_ref,
                message_id=incoming.message_id,
                relay_after=relay_after,
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(col(LeadEvent.id))
        )
        new_id = result.scalar_one_or_none()
        # Suppression marks are idempotent and applied even for a repeat (a
        # second click on an unsubscribe link must leave the lead unsubscribed).
        if lead_id is not None and (new_id is not None or incoming.type in _MARKS):
            _apply_to_lead(session, lead_id, incoming)
        session.commit()
        if new_id is not None:
            return StoredEvent(
                id=new_id,
                lead_id=lead_id,
                created=True,
                status=status,
                deliver_now=status == EventStatus.PENDING and not held,
            )
        existing = session.exec(
            select(LeadEvent).where(LeadEvent.dedupe_key == incoming.dedupe_key)
        ).one()
        assert existing.id is not None
        return StoredEvent(
            id=existing.id,
            lead_id=existing.lead_id,
            created=False,
            status=existing.status,
            deliver_now=False,
        )


def _find_lead(session: Session, incoming: IncomingEvent) -> int | None:
    """By id, then by the send record of the message, then by address."""
    if incoming.lead_id is not None:
        lead = session.get(Lead, incoming.lead_id)
        if lead is not None:
            return lead.id
    if incoming.message_id:
        send_lead = session.exec(
            select(EmailSend.lead_id)
            .where(EmailSend.provider_message_id == incoming.message_id)
            .limit(1)
        ).first()
        if send_lead is not None:
            return send_lead
    if incoming.email:
        lead = session.exec(
            select(Lead).where(Lead.email == normalise_email(incoming.email))
        ).first()
        if lead is not None:
            return lead.id
    return None


def _apply_to_lead(session: Session, lead_id: int, incoming: IncomingEvent) -> None:
    """Suppression marks the email activity checks before every send, and
    attribute updates that fit scoring reads."""
    column = _MARKS.get(incoming.type)
    if column is not None:
        # The first time counts; a later repeat does not move it.
        session.execute(
            update(Lead)
            .where(col(Lead.id) == lead_id)
            .values(
                {
                    column: func.coalesce(column, incoming.occurred_at),
                    Lead.updated_at: utcnow(),
                }
            )
        )
        return
    if incoming.type == ATTRIBUTE_UPDATE:
        changes = incoming.properties.get("attributes")
        if isinstance(changes, dict) and changes:
            lead = session.get(Lead, lead_id)
            assert lead is not None
            # TODO: updates are applied in arrival order; an older update
            # arriving after a newer one wins (no per-attribute timestamps).
            lead.attributes = {**lead.attributes, **changes}
            lead.updated_at = utcnow()
            session.add(lead)


def _delivery_time(session: Session, message_id: str | None) -> datetime | None:
    """When the message reached the inbox (its delivered event), or was sent."""
    if not message_id:
        return None
    delivered = session.exec(
        select(func.min(LeadEvent.occurred_at)).where(
            LeadEvent.message_id == message_id, LeadEvent.type == EMAIL_DELIVERED
        )
    ).one()
    if delivered is not None:
        return delivered
    # TODO: a click whose delivered event has not arrived yet and whose send
    # record is not ours counts as a person's click.
    return session.exec(
        select(EmailSend.sent_at)
        .where(EmailSend.provider_message_id == message_id)
        .limit(1)
    ).first()


def _classify_click(session: Session, row: LeadEvent, scanner: ScannerRule) -> None:
    """Turn a suspected click into a scanner click when its message's links got
    clicks on at least `min_links` distinct URLs within the window."""
    properties = dict(row.properties)
    if not properties.pop("scanner_suspect", False) or row.type != EMAIL_CLICK:
        return
    delivered_at = datetime.fromisoformat(str(properties["delivered_at"]))
    urls = session.exec(
        select(func.count(func.distinct(LeadEvent.properties["url"].astext))).where(
            LeadEvent.message_id == row.message_id,
            col(LeadEvent.type).in_([EMAIL_CLICK, SCANNER_CLICK]),
            col(LeadEvent.occurred_at) >= delivered_at,
            col(LeadEvent.occurred_at) <= delivered_at + scanner.window,
        )
    ).one()
    if urls >= scanner.min_links:
        row.type = SCANNER_CLICK
        properties["scanner"] = f"{urls} links clicked within the window"
    row.properties = properties
    session.add(row)
    session.commit()


async def deliver_event(
    client: Client,
    database_url: str,
    event_id: int,
    *,
    entry: JourneyEntry | None = None,
    scanner: ScannerRule | None = None,
    signal_timeout: float | None = None,
) -> str:
    """Signal a stored pending event to its lead's journey; return its status.

    With `entry`, an event the entry journey admits starts that journey for a
    lead that has none (signal-with-start: a running journey just gets the
    signal, so never two). Without it, such events are kept as `no_journey`.
    `pending` means Temporal could not be reached; the relay tries again.
    """
    prepared = await asyncio.to_thread(
        _prepare, database_url, event_id, scanner or ScannerRule(), entry
    )
    if isinstance(prepared, str):
        return prepared
    lead_id, message, enrolment = prepared

    try:
        signalled = _signal(client, lead_id, message, entry, enrolment)
        status = await asyncio.wait_for(signalled, signal_timeout)
    except (RPCError, TimeoutError, RuntimeError) as error:
        transient = not isinstance(error, RPCError) or error.status in _TRANSIENT
        return await asyncio.to_thread(
            _record_failure, database_url, event_id, error, transient=transient
        )

    await asyncio.to_thread(_record_delivery, database_url, event_id, status)
    log.debug("event.delivered", event_id=event_id, lead_id=lead_id, status=status)
    return status


def _prepare(
    database_url: str,
    event_id: int,
    scanner: ScannerRule,
    entry: JourneyEntry | None,
) -> "str | tuple[int, EventMessage, Enrolment | None]":
    """The message to signal, and the lead's profile when it may start a
    journey; or the status of an event that is not to be delivered."""
    with Session(get_engine(database_url)) as session:
        row = session.get(LeadEvent, event_id)
        if row is None or row.status != EventStatus.PENDING or row.lead_id is None:
            return row.status if row else "missing"
        _classify_click(session, row, scanner)
        message = EventMessage(
            event_id=row.dedupe_key,
            type=row.type,
            occurred_at=row.occurred_at,
            properties=row.properties,
        )
        lead_id = row.lead_id
    enrolment = None
    if entry is not None and entry.admits(message.type):
        from core.enrolment import enrolments_for

        enrolment = enrolments_for(database_url, [lead_id])[0]
    return lead_id, message, enrolment


def _record_delivery(database_url: str, event_id: int, status: str) -> None:
    with Session(get_engine(database_url)) as session:
        session.execute(
            update(LeadEvent)
            .where(col(LeadEvent.id) == event_id)
            .where(col(LeadEvent.status) == EventStatus.PENDING)
            .values(status=status, delivered_at=utcnow(), last_error=None)
        )
        session.commit()


async def _signal(
    client: Client,
    lead_id: int,
    message: EventMessage,
    entry: JourneyEntry | None,
    enrolment: "Enrolment | None",
) -> str:
    workflow_id = workflow_id_for(lead_id)
    if entry is not None and enrolment is not None:
        journey = entry.journey
        reuse = (
            WorkflowIDReusePolicy.ALLOW_DUPLICATE
            if journey.entry.reenrol
            else WorkflowIDReusePolicy.REJECT_DUPLICATE
        )
        try:
            await client.start_workflow(
                LeadJourney.run,
                JourneyStart(
                    lead_id=lead_id,
                    journey=journey,
                    scoring=entry.scoring,
                    # Seeded history from an import is applied first.
                    pending_events=enrolment.pending_events,
                    time_zone=enrolment.time_zone,
                    attributes=enrolment.attributes,
                    linked_journeys=entry.linked_journeys,
                ),
                id=workflow_id,
                task_queue=entry.task_queue,
                id_reuse_policy=reuse,
                # A running journey gets the signal; nothing new starts.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal="record_event",
                start_signal_args=[message],
                static_summary=(
                    f"{journey.name} v{journey.version} for lead {lead_id} "
                    f"(entered on {message.type})"
                ),
                search_attributes=_initial_search_attributes(journey),
            )
        except WorkflowAlreadyStartedError:
            # Only a finished journey that may not re-enrol refuses the start.
            return EventStatus.JOURNEY_FINISHED
        return EventStatus.DELIVERED

    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.signal(LeadJourney.record_event, message)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        return EventStatus.DELIVERED
    # No running journey: has there ever been one?
    try:
        await handle.describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # TODO: an event kept as no_journey is not handed to a journey that a
        # cohort starts for the lead later; nor is an unmatched event matched
        # when its lead appears.
        return EventStatus.NO_JOURNEY
    return EventStatus.JOURNEY_FINISHED


def _initial_search_attributes(journey: Journey) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.LEAD_STAGE, "nurturing"),
            SearchAttributePair(sa.LEAD_SCORE, 0),
            SearchAttributePair(sa.JOURNEY, journey.name),
            SearchAttributePair(sa.JOURNEY_VERSION, journey.version),
            SearchAttributePair(sa.MQL_STATE, "none"),
        ]
    )


def _record_failure(
    database_url: str, event_id: int, error: BaseException, *, transient: bool
) -> str:
    """Keep the event pending for the relay, or fail it after many refusals."""
    reason = f"{type(error).__name__}: {error}"[:500]
    with Session(get_engine(database_url)) as session:
        row = session.get(LeadEvent, event_id)
        assert row is not None
        row.attempts += 1
        row.last_error = reason
        # Available to the relay at once; it paces itself.
        row.relay_after = utcnow()
        if not transient and row.attempts >= MAX_ATTEMPTS:
            row.status = EventStatus.FAILED
        session.add(row)
        session.commit()
        status = row.status
    log.warning(
        "event.delivery_failed",
        event_id=event_id,
        transient=transient,
        status=status,
        error=type(error).__name__,
    )
    return status
