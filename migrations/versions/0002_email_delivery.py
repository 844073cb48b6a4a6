"""email delivery: invalid addresses, complaints, failed touches, handoff record

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A lead whose address the provider refused (or that cannot be an address):
    # never emailed again until someone fixes the address.
    op.add_column(
        "leads",
        sa.Column("email_invalid_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "leads", sa.Column("email_invalid_reason", sa.String(), nullable=True)
    )
    # A spam complaint suppresses the lead like a bounce does.
    op.add_column(
        "leads", sa.Column("complained_at", sa.DateTime(timezone=True), nullable=True)
    )

    # A touch the provider refused for good keeps the provider's answer.
    op.add_column("email_sends", sa.Column("error", sa.String(), nullable=True))
    op.add_column(
        "email_sends",
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The frequency cap counts a lead's recent marketing sends.
    op.create_index(
        "ix_email_sends_lead_kind_created",
        "email_sends",
        ["lead_id", "kind", "created_at"],
    )

    # What a handoff told sales, to whom, and which channels went out.
    op.add_column("sales_handoffs", sa.Column("reason", sa.String(), nullable=True))
    op.add_column(
        "sales_handoffs",
        sa.Column(
            "recipients",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )
    op.add_column(
        "sales_handoffs",
        sa.Column("emailed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "sales_handoffs",
        sa.Column("chat_notified_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("sales_handoffs", "chat_notified_at")
    op.drop_column("sales_handoffs", "emailed_at")
    op.drop_column("sales_handoffs", "recipients")
    op.drop_column("sales_handoffs", "reason")
    op.drop_index("ix_email_sends_lead_kind_created", table_name="email_sends")
    op.drop_column("email_sends", "failed_at")
    op.drop_column("email_sends", "error")
    op.drop_column("leads", "complained_at")
    op.drop_column("leads", "email_invalid_reason")
    op.drop_column("leads", "email_invalid_at")
