"""Handing a lead to sales: one notification per MQL episode.

The handoff row (unique per lead and episode) is written first and keeps whom
it went to; the email to sales goes through the same once-only path as a
journey's touch (key `handoff:lead-<id>:episode-<n>`), and the optional
Slack-compatible incoming webhook is posted once, marked on the row when it
was accepted. A retry after a crash repeats only what is not marked yet; the
crash window of `activities.email` applies to both channels.
"""

import re
from typing import Any

import httpx
import structlog
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.backends import EmailBackend, OutgoingEmail
from activities.email import (
    TemplateRenderer,
    address_problem,
    claim_touch,
    deliver_touch,
    recorded_outcome,
)
from core.db import get_engine
from models.messages import EMAIL_REJECTED, HandoffOutcome, HandoffRequest
from models.tables import Lead, LeadEvent, SalesHandoff, ScoreChange, utcnow

log = structlog.get_logger(__name__)

HANDOFF_TEMPLATE = "sales_handoff"
HANDOFF_SUBJECT = "New MQL: lead {{ lead.id }} scored {{ score }}"
ESCALATION_SUBJECT = (
    "Reminder: MQL lead {{ lead.id }} (score {{ score }}) has no answer yet"
)
RECENT_EVENTS_SHOWN = 10
CHAT_TYPE = "SalesChatUnavailable"

_SEPARATORS = re.compile(r"[,;]")


def handoff_recipients(owner: str | None, queue: str, copies: str = "") -> list[str]:
    """Who hears about a handoff: the lead's owner (one or more addresses), or
    the sales queue when there is no usable owner, plus the configured copies.
    Each address once, whatever its case; usable addresses only."""
    owners = _addresses(owner or "")
    chosen = owners or _addresses(queue)
    chosen += _addresses(copies)
    seen: set[str] = set()
    recipients: list[str] = []
    for address in chosen:
        if address.casefold() in seen:
            continue
        seen.add(address.casefold())
        recipients.append(address)
    return recipients


def _addresses(field: str) -> list[str]:
    found: list[str] = []
    for part in _SEPARATORS.split(field):
        address = part.strip()
        if not address:
            continue
        problem = address_problem(address)
        if problem is not None:
            log.warning("sales.recipient_skipped", problem=problem)
            continue
        found.append(address.lower())
    return found


def journey_link(temporal_ui_url: str, namespace: str, lead_id: int) -> str:
    return (
        f"{temporal_ui_url.rstrip('/')}/namespaces/{namespace}/workflows/lead-{lead_id}"
    )


class SalesActivities:
    def __init__(
        self,
        database_url: str,
        backend: EmailBackend,
        renderer: TemplateRenderer,
        *,
        from_email: str,
        from_name: str,
        default_owner: str,
        temporal_ui_url: str,
        namespace: str,
        copies: str = "",
        chat_webhook_url: str | None = None,
        chat_timeout: float = 10,
    ) -> None:
        self.database_url = database_url
        self.backend = backend
        self.renderer = renderer
        self.from_email = from_email
        self.from_name = from_name
        self.default_owner = default_owner
        self.temporal_ui_url = temporal_ui_url
        self.namespace = namespace
        self.copies = copies
        self.chat_webhook_url = chat_webhook_url
        self.chat_timeout = chat_timeout

    @activity.defn(name="notify_sales")
    def notify_sales(self, request: HandoffRequest) -> HandoffOutcome:
        with Session(get_engine(self.database_url)) as session:
            lead = session.get(Lead, request.lead_id)
            if lead is None:
                message = (
                    f"a handoff needs an existing lead; lead {request.lead_id} "
                    "does not exist."
                )
                raise ApplicationError(message, non_retryable=True)

            handoff, created = self._record_handoff(session, lead, request)
            link = journey_link(self.temporal_ui_url, self.namespace, request.lead_id)
            context = self._context(session, lead, handoff, request, link)
            self._email(session, lead, handoff, request, context)
            if not request.escalation:
                # TODO: escalations go by email only; posting them to chat once
                # needs a mark of its own on the handoff row.
                self._post_to_chat(session, handoff, request, link)
            outcome = HandoffOutcome(owner_email=handoff.owner_email, created=created)
            recipients = len(handoff.recipients)
        log.info(
            "sales.notified",
            lead_id=request.lead_id,
            episode=request.episode,
            created=created,
            recipients=recipients,
        )
        return outcome

    def _record_handoff(
        self, session: Session, lead: Lead, request: HandoffRequest
    ) -> tuple[SalesHandoff, bool]:
        """The episode's row, written once; a retry keeps its recipients even if
        the lead's owner changed in between."""
        recipients = handoff_recipients(
            lead.owner_email, self.default_owner, self.copies
        )
        if not recipients:
            message = (
                "a handoff needs at least one usable recipient; neither the "
                f"owner of lead {lead.id} nor the sales queue is an address."
            )
            raise ApplicationError(message, non_retryable=True)
        inserted = session.execute(
            insert(SalesHandoff)
            .values(
                lead_id=request.lead_id,
                episode=request.episode,
                owner_email=recipients[0],
                recipients=recipients,
                score=request.score,
                reason=request.reason,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["lead_id", "episode"])
            .returning(col(SalesHandoff.id))
        )
        created = inserted.scalar_one_or_none() is not None
        lead.stage = "mql"
        lead.updated_at = utcnow()
        session.add(lead)
        session.commit()
        handoff = session.exec(
            select(SalesHandoff).where(
                SalesHandoff.lead_id == request.lead_id,
                SalesHandoff.episode == request.episode,
            )
        ).one()
        return handoff, created

    def _context(
        self,
        session: Session,
        lead: Lead,
        handoff: SalesHandoff,
        request: HandoffRequest,
        link: str,
    ) -> dict[str, Any]:
        latest = session.exec(
            select(ScoreChange)
            .where(ScoreChange.lead_id == lead.id)
            .order_by(col(ScoreChange.id).desc())
            .limit(1)
        ).first()
        stored_events = session.exec(
            select(LeadEvent)
            .where(LeadEvent.lead_id == lead.id)
            .order_by(col(LeadEvent.occurred_at).desc())
            .limit(RECENT_EVENTS_SHOWN)
        ).all()
        return {
            "lead": lead,
            "episode": request.episode,
            "score": request.score,
            "reason": request.reason,
            "breakdown": dict(latest.breakdown) if latest is not None else {},
            "recent_events": request.recent_events,
            "stored_events": [
                f"{event.type} at {event.occurred_at.isoformat()}"
                for event in stored_events
            ],
            "journey_url": link,
            "recipients": handoff.recipients,
            "escalation": request.escalation,
        }

    def _email(
        self,
        session: Session,
        lead: Lead,
        handoff: SalesHandoff,
        request: HandoffRequest,
        context: dict[str, Any],
    ) -> None:
        assert lead.id is not None
        key = f"handoff:lead-{lead.id}:episode-{request.episode}"
        step = f"mql-{request.episode}"
        subject = HANDOFF_SUBJECT
        recipients = list(handoff.recipients) or [handoff.owner_email]
        if request.escalation:
            # Once per episode too, and the sales queue hears of it as well.
            key = f"{key}:escalation"
            step = f"{step}-escalation"
            subject = ESCALATION_SUBJECT
            recipients = handoff_recipients(
                ", ".join(recipients), self.default_owner, self.default_owner
            )
        record = claim_touch(
            session,
            idempotency_key=key,
            lead_id=lead.id,
            journey="sales",
            step=step,
            template=HANDOFF_TEMPLATE,
            kind="sales",
        )
        try:
            if recorded_outcome(record) is None:
                rendered = self.renderer.render(HANDOFF_TEMPLATE, subject, context)
                message = OutgoingEmail(
                    idempotency_key=key,
                    to_email=recipients[0],
                    cc=tuple(recipients[1:]),
                    from_email=self.from_email,
                    from_name=self.from_name,
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    custom_args={
                        "lead_id": str(lead.id),
                        "journey": "sales",
                        "step": step,
                        "idempotency_key": key,
                    },
                    categories=("sales-handoff",),
                )
                deliver_touch(session, self.backend, record, message, mark_lead=False)
        except ApplicationError as error:
            if error.type != EMAIL_REJECTED:
                raise
            # The provider refuses the sales address for good: the handoff stays
            # recorded (and goes to chat when configured) rather than failing
            # the lead's journey.
            # TODO: fall back to the sales queue when an owner's address is
            # refused, instead of only logging it.
            log.error("sales.email_refused", lead_id=lead.id, episode=request.episode)
            return
        if handoff.emailed_at is None and not request.escalation:
            handoff.emailed_at = utcnow()
            session.add(handoff)
            session.commit()

    def _post_to_chat(
        self,
        session: Session,
        handoff: SalesHandoff,
        request: HandoffRequest,
        link: str,
    ) -> None:
        if not self.chat_webhook_url or handoff.chat_notified_at is not None:
            return
        reason = request.reason or "score crossed the MQL threshold"
        text = (
            f"New MQL: lead {request.lead_id} scored {request.score} "
            f"(episode {request.episode}, {reason}). Journey: <{link}>"
        )
        try:
            response = httpx.post(
                self.chat_webhook_url, json={"text": text}, timeout=self.chat_timeout
            )
        except httpx.HTTPError as error:
            message = f"the sales chat webhook did not answer: {error!r}."
            raise ApplicationError(message, type=CHAT_TYPE) from None
        if response.status_code == 429 or response.status_code >= 500:
            message = (
                "the sales chat webhook should accept the handoff, and answered "
                f"{response.status_code}: {response.text[:500]}"
            )
            raise ApplicationError(message, type=CHAT_TYPE)
        if response.status_code >= 400:
            # Retrying a refused post cannot help; the email already went out.
            log.error(
                "sales.chat_refused",
                lead_id=request.lead_id,
                status=response.status_code,
                body=response.text[:500],
            )
            return
        handoff.chat_notified_at = utcnow()
        session.add(handoff)
        session.commit()
