"""Handing a lead to sales: one notification per MQL episode."""

import structlog
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.backends import EmailBackend, OutgoingEmail
from activities.email import TemplateRenderer, deliver_once
from core.db import get_engine
from models.messages import HandoffOutcome, HandoffRequest
from models.tables import Lead, SalesHandoff, utcnow

log = structlog.get_logger(__name__)

HANDOFF_TEMPLATE = "sales_handoff"


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
    ) -> None:
        self.database_url = database_url
        self.backend = backend
        self.renderer = renderer
        self.from_email = from_email
        self.from_name = from_name
        self.default_owner = default_owner
        self.temporal_ui_url = temporal_ui_url
        self.namespace = namespace

    @activity.defn(name="notify_sales")
    def notify_sales(self, request: HandoffRequest) -> HandoffOutcome:
        with Session(get_engine(self.database_url)) as session:
            lead = session.get(Lead, request.lead_id)
            if lead is None:
                message = f"lead {request.lead_id} does not exist"
                raise ApplicationError(message, non_retryable=True)
            owner = (lead.owner_email or self.default_owner).strip().lower()

            inserted = session.execute(
                insert(SalesHandoff)
                .values(
                    lead_id=request.lead_id,
                    episode=request.episode,
                    owner_email=owner,
                    score=request.score,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["lead_id", "episode"])
            )
            created = bool(inserted.rowcount)  # type: ignore[attr-defined]
            lead.stage = "mql"
            lead.updated_at = utcnow()
            session.add(lead)
            session.commit()

            key = f"handoff:lead-{request.lead_id}:episode-{request.episode}"
            deliver_once(
                session,
                self.backend,
                idempotency_key=key,
                lead=lead,
                journey="sales",
                step=f"mql-{request.episode}",
                template=HANDOFF_TEMPLATE,
                kind="sales",
                build=lambda: self._build(key, owner, lead, request),
            )
        log.info(
            "sales.notified",
            lead_id=request.lead_id,
            episode=request.episode,
            created=created,
        )
        return HandoffOutcome(owner_email=owner, created=created)

    def _build(
        self, key: str, owner: str, lead: Lead, request: HandoffRequest
    ) -> OutgoingEmail:
        journey_url = (
            f"{self.temporal_ui_url.rstrip('/')}/namespaces/{self.namespace}"
            f"/workflows/lead-{request.lead_id}"
        )
        context: dict[str, object] = {
            "lead": lead,
            "episode": request.episode,
            "score": request.score,
            "reason": request.reason,
            "recent_events": request.recent_events,
            "journey_url": journey_url,
        }
        subject, text, html = self.renderer.render(
            HANDOFF_TEMPLATE,
            "New MQL: lead {{ lead.id }} scored {{ score }}",
            context,
        )
        return OutgoingEmail(
            idempotency_key=key,
            to_email=owner,
            from_email=self.from_email,
            from_name=self.from_name,
            subject=subject,
            text=text,
            html=html,
            custom_args={"lead_id": str(lead.id), "idempotency_key": key},
            categories=("sales-handoff",),
        )
