"""Leads, touches and activities for the email and sales tests, in one place."""

import uuid
from collections.abc import Callable
from datetime import datetime, time
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from activities.backends import EmailBackend
from activities.email import EmailActivities, TemplateRenderer
from activities.send_policy import SendPolicy
from core.db import get_engine
from models.messages import EmailRequest
from models.tables import EmailSend, Lead, SendStatus, utcnow

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "journeys" / "templates"
POSTAL_ADDRESS = "Test Ltd, 2 Test Road, Testville"
PUBLIC_URL = "http://127.0.0.1:9"
UNSUBSCRIBE_SECRET = "test-unsubscribe-secret"

# Neither a cap nor quiet hours: for tests about something else.
NO_LIMITS = SendPolicy(cap=0, quiet_start=time(0, 0), quiet_end=time(0, 0))


def unique_email(prefix: str = "lead") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def make_lead(database_url: str, **fields: Any) -> int:
    fields.setdefault("email", unique_email())
    with Session(get_engine(database_url)) as session:
        lead = Lead(**fields)
        session.add(lead)
        session.commit()
        assert lead.id is not None
        return lead.id


def update_lead(database_url: str, lead_id: int, **fields: Any) -> None:
    with Session(get_engine(database_url)) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        for name, value in fields.items():
            setattr(lead, name, value)
        session.add(lead)
        session.commit()


def get_lead(database_url: str, lead_id: int) -> Lead:
    with Session(get_engine(database_url)) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        return lead


def touch(database_url: str, key: str) -> EmailSend | None:
    with Session(get_engine(database_url)) as session:
        return session.exec(
            select(EmailSend).where(EmailSend.idempotency_key == key)
        ).first()


def record_sent(database_url: str, lead_id: int, sent_at: datetime) -> None:
    """A marketing touch the lead already got, for the frequency cap."""
    with Session(get_engine(database_url)) as session:
        session.add(
            EmailSend(
                idempotency_key=f"earlier-{uuid.uuid4().hex}",
                lead_id=lead_id,
                journey="other",
                step="earlier",
                template="welcome",
                kind="marketing",
                status=SendStatus.SENT,
                created_at=sent_at,
                sent_at=sent_at,
            )
        )
        session.commit()


def email_request(lead_id: int, **fields: Any) -> EmailRequest:
    values: dict[str, Any] = {
        "lead_id": lead_id,
        "journey": "welcome",
        "journey_version": 1,
        "step": "welcome",
        "template": "welcome",
        "subject": "Welcome aboard, {{ first_name or 'there' }}",
        "idempotency_key": f"lead-{lead_id}:welcome:welcome:{uuid.uuid4().hex[:6]}",
    }
    values.update(fields)
    return EmailRequest(**values)


def email_activities(
    database_url: str,
    backend: EmailBackend,
    policy: SendPolicy = NO_LIMITS,
    activities_class: type[EmailActivities] = EmailActivities,
    clock: Callable[[], datetime] = utcnow,
) -> EmailActivities:
    return activities_class(
        database_url,
        backend,
        TemplateRenderer(TEMPLATES),
        from_email="hello@example.com",
        from_name="Lead Nurture",
        postal_address=POSTAL_ADDRESS,
        public_url=PUBLIC_URL,
        unsubscribe_secret=UNSUBSCRIBE_SECRET,
        policy=policy,
        clock=clock,
    )
