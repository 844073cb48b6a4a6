"""Database tables. The database is the record for reporting and idempotency;
the workflow is the record of where each journey stands."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime, Index, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Lead(SQLModel, table=True):
    """A person we nurture. `email` is stored normalised (trimmed, lower case)."""

    __tablename__ = "leads"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str | None = Field(default=None, unique=True, index=True)
    email: str = Field(unique=True, index=True)
    first_name: str | None = None
    last_name: str | None = None
    owner_email: str | None = None
    time_zone: str | None = None
    do_not_email: bool = False
    attributes: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False)
    )
    stage: str = "new"
    score: int = 0
    unsubscribed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    bounced_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    complained_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    # Set when the address cannot be sent to (refused before or by the provider).
    email_invalid_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    email_invalid_reason: str | None = None
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False),
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False),
    )


class EventStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    UNMATCHED = "unmatched"
    NO_JOURNEY = "no_journey"
    # The lead's journey had finished and its entry rule does not re-enrol.
    JOURNEY_FINISHED = "journey_finished"
    # Temporal refused it for good (not merely unreachable); `last_error` says why.
    FAILED = "failed"


class LeadEvent(SQLModel, table=True):
    """Something a lead (or sales) did. Stored before it is signalled."""

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "ix_events_pending_relay_after",
            "relay_after",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True, index=True)
    lead_id: int | None = Field(default=None, foreign_key="leads.id", index=True)
    type: str
    source: str
    properties: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False)
    )
    status: str = Field(default=EventStatus.PENDING, index=True)
    occurred_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    received_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False),
    )
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    # How the sender named the lead (id or address), for unmatched events.
    lead_ref: str | None = None
    # The provider's message id, for SendGrid events.
    message_id: str | None = Field(default=None, index=True)
    # From when the relay may deliver a pending event (see core/relay.py).
    # TODO: events (and so their dedupe keys) are kept forever; no retention.
    relay_after: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_error: str | None = None


class SendStatus(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    SUPPRESSED = "suppressed"
    FAILED = "failed"


class EmailSend(SQLModel, table=True):
    """One touch. The unique idempotency key makes a retried send a no-op."""

    __tablename__ = "email_sends"
    __table_args__ = (
        Index("ix_email_sends_lead_kind_created", "lead_id", "kind", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    journey: str
    step: str
    template: str
    kind: str = "marketing"
    status: str = SendStatus.SENDING
    reason: str | None = None
    subject: str | None = None
    provider_message_id: str | None = Field(default=None, index=True)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False),
    )
    sent_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    # The provider's answer when it refused the touch for good.
    error: str | None = None
    failed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )


class ScoreChange(SQLModel, table=True):
    """Why a lead's score moved: the breakdown is kept with every change."""

    __tablename__ = "score_changes"

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    old_score: int
    new_score: int
    reason: str
    breakdown: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False)
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False),
    )


class SalesHandoff(SQLModel, table=True):
    """A lead handed to sales: at most one per MQL episode."""

    __tablename__ = "sales_handoffs"
    __table_args__ = (UniqueConstraint("lead_id", "episode"),)

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    episode: int
    owner_email: str
    score: int
    reason: str | None = None
    recipients: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False),
    )
    emailed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    # The Slack-compatible incoming webhook, when one is configured.
    chat_notified_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )


class CohortImport(SQLModel, table=True):
    """One run of `starter cohort` over a file: what became of its rows. Runs of
    the same file (same fingerprint) are re-runs of one import."""

    __tablename__ = "cohort_imports"

    id: int | None = Field(default=None, primary_key=True)
    file_name: str
    file_sha256: str = Field(index=True)
    journey: str
    rows: int
    accepted: int
    merged: int
    rejected: int
    started: int = 0
    already_enrolled: int = 0
    completed: bool = False
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False),
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
