"""Sending a journey's email touch: once, and never to a suppressed lead."""

from collections.abc import Callable
from pathlib import Path

import structlog
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, select
from temporalio import activity

from activities.backends import EmailBackend, OutgoingEmail
from core.db import get_engine
from core.signing import unsubscribe_url
from models.messages import EmailOutcome, EmailRequest
from models.tables import EmailSend, Lead, SendStatus, utcnow

log = structlog.get_logger(__name__)


def suppression_reason(lead: Lead) -> str | None:
    """Why this lead may not get marketing email, or None when it may."""
    if lead.do_not_email:
        return "do not email"
    if lead.unsubscribed_at is not None:
        return "unsubscribed"
    if lead.bounced_at is not None:
        return "bounced"
    return None


class TemplateRenderer:
    """Jinja2 templates from the journeys folder: `<name>.txt.j2`, and optionally
    `<name>.html.j2`. Missing lead fields render as empty, never as an error;
    templates give their own fallbacks (`{{ first_name or "there" }}`)."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self._text = Environment(
            loader=FileSystemLoader(templates_dir), autoescape=False
        )
        self._html = Environment(
            loader=FileSystemLoader(templates_dir),
            autoescape=select_autoescape(default=True),
        )
        self._subject = Environment(autoescape=False, undefined=StrictUndefined)

    def render(
        self, template: str, subject: str, context: dict[str, object]
    ) -> tuple[str, str, str | None]:
        rendered_subject = self._subject.from_string(subject).render(context)
        text = self._text.get_template(f"{template}.txt.j2").render(context)
        html_name = f"{template}.html.j2"
        html = (
            self._html.get_template(html_name).render(context)
            if (self.templates_dir / html_name).exists()
            else None
        )
        return rendered_subject.strip(), text, html


def deliver_once(
    session: Session,
    backend: EmailBackend,
    *,
    idempotency_key: str,
    lead: Lead,
    journey: str,
    step: str,
    template: str,
    kind: str,
    build: Callable[[], OutgoingEmail],
) -> EmailOutcome:
    """Record the key, deliver, record the provider's id.

    A retry that finds the key already sent returns the first outcome. The one
    window for a repeat is a crash after the backend accepted the message and
    before the `sent` row committed; it is as small as one UPDATE.
    """
    assert lead.id is not None
    session.execute(
        insert(EmailSend)
        .values(
            idempotency_key=idempotency_key,
            lead_id=lead.id,
            journey=journey,
            step=step,
            template=template,
            kind=kind,
            status=SendStatus.SENDING,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    session.commit()
    record = session.exec(
        select(EmailSend).where(EmailSend.idempotency_key == idempotency_key)
    ).one()
    if record.status in (SendStatus.SENT, SendStatus.SUPPRESSED):
        log.info("email.already_recorded", key=idempotency_key, status=record.status)
        return EmailOutcome(
            status=record.status,
            reason=record.reason,
            message_id=record.provider_message_id,
        )

    message = build()
    message_id = backend.deliver(message)

    record.status = SendStatus.SENT
    record.subject = message.subject
    record.provider_message_id = message_id
    record.sent_at = utcnow()
    session.add(record)
    session.commit()
    return EmailOutcome(status=SendStatus.SENT, message_id=message_id)


class EmailActivities:
    def __init__(
        self,
        database_url: str,
        backend: EmailBackend,
        renderer: TemplateRenderer,
        *,
        from_email: str,
        from_name: str,
        postal_address: str,
        public_url: str,
        unsubscribe_secret: str,
    ) -> None:
        self.database_url = database_url
        self.backend = backend
        self.renderer = renderer
        self.from_email = from_email
        self.from_name = from_name
        self.postal_address = postal_address
        self.public_url = public_url
        self.unsubscribe_secret = unsubscribe_secret

    @activity.defn(name="send_email")
    def send_email(self, request: EmailRequest) -> EmailOutcome:
        with Session(get_engine(self.database_url)) as session:
            lead = session.get(Lead, request.lead_id)
            if lead is None:
                missing = f"lead {request.lead_id} does not exist"
                return EmailOutcome(status=SendStatus.SUPPRESSED, reason=missing)

            # Re-checked right before sending: the lead may have unsubscribed
            # while this touch was queued.
            reason = suppression_reason(lead)
            if reason is not None:
                self._record_suppressed(session, request, reason)
                log.info(
                    "email.suppressed",
                    lead_id=lead.id,
                    step=request.step,
                    reason=reason,
                )
                return EmailOutcome(status=SendStatus.SUPPRESSED, reason=reason)

            outcome = deliver_once(
                session,
                self.backend,
                idempotency_key=request.idempotency_key,
                lead=lead,
                journey=request.journey,
                step=request.step,
                template=request.template,
                kind="marketing",
                build=lambda: self._build(lead, request),
            )
        log.info(
            "email.sent",
            lead_id=request.lead_id,
            journey=request.journey,
            step=request.step,
            status=outcome.status,
        )
        return outcome

    def _build(self, lead: Lead, request: EmailRequest) -> OutgoingEmail:
        assert lead.id is not None
        unsubscribe = unsubscribe_url(self.public_url, self.unsubscribe_secret, lead.id)
        context: dict[str, object] = {
            "first_name": lead.first_name,
            "last_name": lead.last_name,
            "attributes": lead.attributes,
            "unsubscribe_url": unsubscribe,
            "postal_address": self.postal_address,
        }
        subject, text, html = self.renderer.render(
            request.template, request.subject, context
        )
        return OutgoingEmail(
            idempotency_key=request.idempotency_key,
            to_email=lead.email,
            from_email=self.from_email,
            from_name=self.from_name,
            subject=subject,
            text=text,
            html=html,
            headers={
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            custom_args={
                "lead_id": str(lead.id),
                "journey": request.journey,
                "step": request.step,
                "idempotency_key": request.idempotency_key,
            },
            categories=(request.journey, request.step),
        )

    def _record_suppressed(
        self, session: Session, request: EmailRequest, reason: str
    ) -> None:
        session.execute(
            insert(EmailSend)
            .values(
                idempotency_key=request.idempotency_key,
                lead_id=request.lead_id,
                journey=request.journey,
                step=request.step,
                template=request.template,
                kind="marketing",
                status=SendStatus.SUPPRESSED,
                reason=reason,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
        )
        session.commit()
