"""Event intake, shared by the webhook service and the starter: store the event
first (a unique dedupe key makes a repeat a no-op), then signal the lead's
journey. An event that cannot be signalled yet stays pending in the database."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.db import get_engine
from models.messages import LeadEvent as EventMessage
from models.tables import EventStatus, Lead, LeadEvent, utcnow
from workflows.journey import LeadJourney, workflow_id_for

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class IncomingEvent:
    dedupe_key: str
    type: str
    occurred_at: datetime
    source: str
    lead_id: int | None = None
    email: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    id: int
    lead_id: int | None
    created: bool


def normalise_email(email: str) -> str:
    return email.strip().lower()


def store_event(database_url: str, incoming: IncomingEvent) -> StoredEvent:
    """Persist the event under its dedupe key; a duplicate stores nothing."""
    with Session(get_engine(database_url)) as session:
        lead_id = _find_lead(session, incoming)
        status = EventStatus.PENDING if lead_id is not None else EventStatus.UNMATCHED
        result = session.execute(
            insert(LeadEvent)
            .values(
                dedupe_key=incoming.dedupe_key,
                lead_id=lead_id,
                type=incoming.type,
                source=incoming.source,
                properties=incoming.properties,
                status=status,
                occurred_at=incoming.occurred_at,
                received_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(col(LeadEvent.id))
        )
        new_id = result.scalar_one_or_none()
        session.commit()
        if new_id is not None:
            return StoredEvent(id=new_id, lead_id=lead_id, created=True)
        existing = session.exec(
            select(LeadEvent).where(LeadEvent.dedupe_key == incoming.dedupe_key)
        ).one()
        assert existing.id is not None
        return StoredEvent(id=existing.id, lead_id=existing.lead_id, created=False)


def _find_lead(session: Session, incoming: IncomingEvent) -> int | None:
    if incoming.lead_id is not None:
        lead = session.get(Lead, incoming.lead_id)
        return lead.id if lead else None
    if incoming.email:
        lead = session.exec(
            select(Lead).where(Lead.email == normalise_email(incoming.email))
        ).first()
        return lead.id if lead else None
    return None


async def deliver_event(client: Client, database_url: str, event_id: int) -> str:
    """Signal a stored pending event to its lead's journey; return its status."""
    with Session(get_engine(database_url)) as session:
        row = session.get(LeadEvent, event_id)
        if row is None or row.status != EventStatus.PENDING or row.lead_id is None:
            return row.status if row else "missing"
        message = EventMessage(
            event_id=row.dedupe_key,
            type=row.type,
            occurred_at=row.occurred_at,
            properties=row.properties,
        )
        lead_id = row.lead_id

    handle = client.get_workflow_handle(workflow_id_for(lead_id))
    try:
        await handle.signal(LeadJourney.record_event, message)
        status = EventStatus.DELIVERED
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            # Temporal is unreachable or overloaded: the row stays pending.
            log.warning("event.delivery_failed", event_id=event_id, status=error.status)
            return EventStatus.PENDING
        # TODO: issue #5 starts a journey for a lead that has none
        # (signal-with-start); until then the event is kept, not applied.
        status = EventStatus.NO_JOURNEY

    with Session(get_engine(database_url)) as session:
        row = session.get(LeadEvent, event_id)
        assert row is not None
        row.status = status
        row.delivered_at = utcnow()
        session.add(row)
        session.commit()
    log.info("event.delivered", event_id=event_id, lead_id=lead_id, status=status)
    return status
