"""Sending a journey's email touch: once, and never to a suppressed lead.

How a touch is sent exactly once (`send_email`):

1. A touch already recorded as sent or suppressed under its idempotency key
   returns the recorded outcome; a touch the provider refused for good fails
   again the same way.
2. The lead's row is locked, and consent, unsubscribe, bounce, complaint and
   the address itself are checked; a suppressed touch is recorded with its
   reason and never reaches the provider.
3. The frequency cap and quiet hours may defer the touch. Nothing is recorded
   under the key then, so the journey can ask again with the same key later.
4. The key is recorded in a unique row (status `sending`) and committed.
5. The provider is called.
6. The provider's message id is recorded (status `sent`) and committed.

A retry after a crash between 4 and 5 finds the `sending` row and sends: the
message had not gone out. The one window in which a touch can go out twice is
a crash (or a lost answer, such as a timeout) after the provider accepted the
message in 5 and before the commit in 6: the retry cannot tell that the
message went out, and sends it again. SendGrid's v3 Mail Send API takes no
idempotency key, so the window cannot be closed from this side; it is kept to
one HTTP response and one single-row UPDATE.

Suppression has a window of the same size: an unsubscribe committed after the
claim in 4 and before the call in 5 does not stop that one touch. Holding the
lead's row lock across the provider call would close it, at the price of a
database connection held for the length of an HTTP request.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from jinja2 import ChainableUndefined, Environment, FileSystemLoader
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.backends import (
    EmailBackend,
    OutgoingEmail,
    ProviderBusy,
    ProviderRejected,
    ProviderUnavailable,
)
from activities.send_policy import SendPolicy
from core.db import get_engine
from core.signing import unsubscribe_url
from models.messages import EMAIL_REJECTED, EmailOutcome, EmailRequest
from models.tables import EmailSend, Lead, SendStatus, utcnow

log = structlog.get_logger(__name__)

DEFERRED = "deferred"
MARKETING = "marketing"

# Error types the workflow can tell apart (`ApplicationError.type`).
PROVIDER_BUSY = "EmailProviderBusy"
PROVIDER_UNAVAILABLE = "EmailProviderUnavailable"

FOOTER_TEMPLATE = "_footer"


def suppression_reason(lead: Lead) -> str | None:
    """Why this lead may not get marketing email, or None when it may."""
    if lead.do_not_email:
        return "do not email"
    if lead.unsubscribed_at is not None:
        return "unsubscribed"
    if lead.bounced_at is not None:
        return "bounced"
    if lead.complained_at is not None:
        return "spam complaint"
    if lead.email_invalid_at is not None:
        # TODO: nothing clears this mark when the lead's address is corrected
        # (a cohort re-import with a new address); an operator must clear it.
        return f"invalid address: {lead.email_invalid_reason or 'refused'}"
    return None


_LOCAL_PART = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def address_problem(address: str) -> str | None:
    """Why `address` cannot be sent to, or None when it can. The reason never
    repeats the address, so it can be logged and stored beside the lead."""
    if not address or any(character.isspace() for character in address):
        return "the address is empty or contains spaces"
    if address.count("@") != 1:
        return f"an address has exactly one '@', this one has {address.count('@')}"
    local, domain = address.split("@")
    if not local or not domain:
        return "the address has nothing before or after the '@'"
    if not local.isascii():
        return (
            "the part before the '@' has non-ASCII characters, which SendGrid refuses"
        )
    if len(local) > 64:
        return f"the part before the '@' has {len(local)} characters; at most 64 fit"
    if not _LOCAL_PART.match(local):
        return "the part before the '@' has characters an address cannot have there"
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "the part after the '@' is not a domain name"
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return "the part after the '@' is not a domain name"
    if labels[-1].isdigit():
        return "the part after the '@' ends in a number, not a top-level domain"
    if len(local) + 1 + len(ascii_domain) > 254:
        return "the address is longer than 254 characters"
    return None


def sendable_address(address: str) -> str:
    """The address as the provider takes it: an international domain in its
    ASCII (punycode) form. Only for addresses without an `address_problem`."""
    local, domain = address.split("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None


class TemplateRenderer:
    """Jinja2 templates from the journeys folder, per template name:

    - `<name>.txt.j2`: the text part (required);
    - `<name>.html.j2`: the HTML part (optional, autoescaped);
    - `<name>.subject.j2`: the subject, used when the step gives none.

    Missing lead fields render as empty, never as an error, even through
    attribute chains (`{{ attributes.company.name }}`); templates choose their
    own fallbacks (`{{ first_name or "there" }}`). A marketing email whose
    template forgot the footer (postal address and unsubscribe link) gets
    `_footer.txt.j2` / `_footer.html.j2` appended.
    """

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        loader = FileSystemLoader(templates_dir)
        self._text = Environment(
            loader=loader, autoescape=False, undefined=ChainableUndefined
        )
        self._html = Environment(
            loader=loader, autoescape=True, undefined=ChainableUndefined
        )

    def render(
        self, template: str, subject: str, context: dict[str, Any]
    ) -> RenderedEmail:
        subject_source = subject
        if not subject_source.strip():
            subject_source = self._source(f"{template}.subject.j2")
        rendered_subject = self._text.from_string(subject_source).render(context)
        # A subject is one header line: line breaks would be header injection.
        rendered_subject = " ".join(rendered_subject.split())
        if not rendered_subject:
            message = f"template {template!r} renders an empty subject."
            raise ValueError(message)

        text = self._text.get_template(f"{template}.txt.j2").render(context)
        html: str | None = None
        if (self.templates_dir / f"{template}.html.j2").exists():
            html = self._html.get_template(f"{template}.html.j2").render(context)

        link = context.get("unsubscribe_url")
        if isinstance(link, str):
            text = self._with_footer(text, link, "txt", self._text, context)
            if html is not None:
                html = self._with_footer(html, link, "html", self._html, context)
        return RenderedEmail(rendered_subject, text, html)

    def _source(self, name: str) -> str:
        path = self.templates_dir / name
        if not path.exists():
            message = f"the step gives no subject and {name} does not exist."
            raise ValueError(message)
        return path.read_text(encoding="utf-8")

    def _with_footer(
        self,
        body: str,
        link: str,
        kind: str,
        environment: Environment,
        context: dict[str, Any],
    ) -> str:
        if link in body:
            return body
        footer = environment.get_template(f"{FOOTER_TEMPLATE}.{kind}.j2")
        return body.rstrip() + "\n" + footer.render(context)


def claim_touch(
    session: Session,
    *,
    idempotency_key: str,
    lead_id: int,
    journey: str,
    step: str,
    template: str,
    kind: str,
) -> EmailSend:
    """Record the key in its unique row (status `sending`) unless it is there,
    commit, and return the row."""
    session.execute(
        insert(EmailSend)
        .values(
            idempotency_key=idempotency_key,
            lead_id=lead_id,
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
    return session.exec(
        select(EmailSend).where(EmailSend.idempotency_key == idempotency_key)
    ).one()


def recorded_outcome(record: EmailSend | None) -> EmailOutcome | None:
    """The outcome of a touch already decided under its key, or None when it is
    still to send. A touch refused for good fails again, without a retry."""
    if record is None or record.status == SendStatus.SENDING:
        return None
    if record.status == SendStatus.FAILED:
        message = (
            f"touch {record.idempotency_key} was refused by the provider "
            f"earlier and is not sent again: {record.error}"
        )
        raise ApplicationError(message, type=EMAIL_REJECTED, non_retryable=True)
    return EmailOutcome(
        status=record.status,
        reason=record.reason,
        message_id=record.provider_message_id,
    )


def deliver_touch(
    session: Session,
    backend: EmailBackend,
    record: EmailSend,
    message: OutgoingEmail,
    *,
    mark_lead: bool = True,
) -> EmailOutcome:
    """Call the provider for a claimed touch and record what it answered.
    `mark_lead`: a refused recipient address is the lead's own (not sales')."""
    try:
        message_id = backend.deliver(message)
    except ProviderBusy as busy:
        log.warning(
            "email.rate_limited",
            key=record.idempotency_key,
            retry_in_seconds=busy.retry_after.total_seconds(),
        )
        raise ApplicationError(
            str(busy), type=PROVIDER_BUSY, next_retry_delay=busy.retry_after
        ) from busy
    except ProviderUnavailable as unavailable:
        log.warning(
            "email.provider_unavailable",
            key=record.idempotency_key,
            error=str(unavailable),
        )
        raise ApplicationError(str(unavailable), type=PROVIDER_UNAVAILABLE) from None
    except ProviderRejected as rejected:
        _record_rejection(session, record, rejected, mark_lead=mark_lead)
        raise ApplicationError(
            str(rejected), rejected.body, type=EMAIL_REJECTED, non_retryable=True
        ) from None

    # The crash window (see the module docstring) is from here to the commit.
    record.status = SendStatus.SENT
    record.subject = message.subject
    record.provider_message_id = message_id
    record.sent_at = utcnow()
    session.add(record)
    session.commit()
    return EmailOutcome(status=SendStatus.SENT, message_id=message_id)


def _record_rejection(
    session: Session, record: EmailSend, rejected: ProviderRejected, *, mark_lead: bool
) -> None:
    now = utcnow()
    record.status = SendStatus.FAILED
    record.error = f"{rejected.status}: {rejected.body}"
    record.failed_at = now
    session.add(record)
    if rejected.address_refused and mark_lead:
        lead = session.get(Lead, record.lead_id)
        if lead is not None:
            lead.email_invalid_at = now
            lead.email_invalid_reason = f"refused by the provider ({rejected.status})"
            lead.updated_at = now
            session.add(lead)
    session.commit()
    # The error body names fields, not addresses; it is what an operator needs.
    log.warning(
        "email.rejected",
        key=record.idempotency_key,
        lead_id=record.lead_id,
        status=rejected.status,
        address_refused=rejected.address_refused,
        provider_error=rejected.body,
    )


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
        policy: SendPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database_url = database_url
        self.backend = backend
        self.renderer = renderer
        self.from_email = from_email
        self.from_name = from_name
        self.postal_address = postal_address
        self.public_url = public_url
        self.unsubscribe_secret = unsubscribe_secret
        self.policy = policy or SendPolicy()
        # What "now" is for the frequency cap and quiet hours (tests on the
        # time-skipping server read the server's clock instead).
        self.clock = clock

    @activity.defn(name="send_email")
    def send_email(self, request: EmailRequest) -> EmailOutcome:
        key = request.idempotency_key
        with Session(get_engine(self.database_url)) as session:
            earlier = recorded_outcome(self._record(session, key))
            if earlier is not None:
                log.info("email.already_recorded", key=key, status=earlier.status)
                return earlier

            # Locked until the touch is claimed: a concurrent touch for the
            # same lead waits, so the frequency cap counts it, and a suppression
            # written meanwhile is seen.
            lead = session.exec(
                select(Lead).where(Lead.id == request.lead_id).with_for_update()
            ).first()
            if lead is None:
                missing = f"lead {request.lead_id} does not exist"
                return EmailOutcome(status=SendStatus.SUPPRESSED, reason=missing)

            reason = suppression_reason(lead) or self._address_reason(session, lead)
            if reason is not None:
                self._record_suppressed(session, request, reason)
                log.info(
                    "email.suppressed",
                    lead_id=lead.id,
                    step=request.step,
                    reason=reason,
                )
                return EmailOutcome(status=SendStatus.SUPPRESSED, reason=reason)

            now = self.clock()
            recent = self._recent_sends(session, lead, key, now)
            defer_until = self.policy.defer_until(now, recent, lead.time_zone)
            if defer_until is not None:
                session.rollback()
                log.info(
                    "email.deferred",
                    lead_id=request.lead_id,
                    step=request.step,
                    defer_until=defer_until.isoformat(),
                    recent_sends=len(recent),
                )
                return EmailOutcome(
                    status=DEFERRED,
                    reason=self._deferral_reason(now, recent),
                    defer_until=defer_until,
                )

            message = self._build(lead, request)
            record = claim_touch(
                session,
                idempotency_key=key,
                lead_id=request.lead_id,
                journey=request.journey,
                step=request.step,
                template=request.template,
                kind=MARKETING,
            )
            # An attempt that overran its timeout may have finished meanwhile.
            finished = recorded_outcome(record)
            if finished is not None:
                return finished
            outcome = self._deliver(session, record, message)
        log.info(
            "email.sent",
            lead_id=request.lead_id,
            journey=request.journey,
            step=request.step,
            status=outcome.status,
        )
        return outcome

    def _deliver(
        self, session: Session, record: EmailSend, message: OutgoingEmail
    ) -> EmailOutcome:
        """The provider call and its record; a seam for crash tests."""
        return deliver_touch(session, self.backend, record, message)

    @staticmethod
    def _record(session: Session, key: str) -> EmailSend | None:
        return session.exec(
            select(EmailSend).where(EmailSend.idempotency_key == key)
        ).first()

    @staticmethod
    def _address_reason(session: Session, lead: Lead) -> str | None:
        """An address that cannot be sent to marks the lead, before any call."""
        problem = address_problem(lead.email)
        if problem is None:
            return None
        now = utcnow()
        lead.email_invalid_at = now
        lead.email_invalid_reason = problem
        lead.updated_at = now
        session.add(lead)
        return f"invalid address: {problem}"

    def _recent_sends(
        self, session: Session, lead: Lead, key: str, now: datetime
    ) -> list[datetime]:
        """When the lead's other marketing touches went (or are going) out."""
        when = func.coalesce(EmailSend.sent_at, EmailSend.created_at)
        rows = session.exec(
            select(when).where(
                EmailSend.lead_id == lead.id,
                EmailSend.kind == MARKETING,
                col(EmailSend.status).in_([SendStatus.SENT, SendStatus.SENDING]),
                EmailSend.idempotency_key != key,
                EmailSend.created_at > now - self.policy.period - timedelta(days=1),
            )
        ).all()
        return list(rows)

    def _deferral_reason(self, now: datetime, recent: list[datetime]) -> str:
        in_window = [sent for sent in recent if sent > now - self.policy.period]
        if self.policy.cap > 0 and len(in_window) >= self.policy.cap:
            return (
                f"frequency cap: {len(in_window)} marketing emails in the last "
                f"{self.policy.period.days} days, at most {self.policy.cap}"
            )
        return "quiet hours in the lead's time zone"

    def _build(self, lead: Lead, request: EmailRequest) -> OutgoingEmail:
        assert lead.id is not None
        unsubscribe = unsubscribe_url(self.public_url, self.unsubscribe_secret, lead.id)
        context: dict[str, Any] = {
            "first_name": _present(lead.first_name),
            "last_name": _present(lead.last_name),
            "attributes": lead.attributes or {},
            "journey": request.journey,
            "step": request.step,
            "unsubscribe_url": unsubscribe,
            "postal_address": self.postal_address,
        }
        rendered = self.renderer.render(request.template, request.subject, context)
        return OutgoingEmail(
            idempotency_key=request.idempotency_key,
            to_email=sendable_address(lead.email),
            from_email=self.from_email,
            from_name=self.from_name,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
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
            categories=(MARKETING, request.journey, request.step),
        )

    def _record_suppressed(
        self, session: Session, request: EmailRequest, reason: str
    ) -> None:
        """Record the suppression under the key; a `sending` row left by an
        earlier attempt that crashed becomes suppressed too (had the provider
        accepted that attempt, it sits in the crash window described above)."""
        statement = insert(EmailSend).values(
            idempotency_key=request.idempotency_key,
            lead_id=request.lead_id,
            journey=request.journey,
            step=request.step,
            template=request.template,
            kind=MARKETING,
            status=SendStatus.SUPPRESSED,
            reason=reason,
            created_at=utcnow(),
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["idempotency_key"],
                set_={"status": SendStatus.SUPPRESSED, "reason": reason},
                where=EmailSend.status == SendStatus.SENDING,  # type: ignore[arg-type]
            )
        )
        session.commit()


def _present(value: str | None) -> str | None:
    """A blank field counts as missing, so template fallbacks apply to it."""
    if value is None or not value.strip():
        return None
    return value.strip()
