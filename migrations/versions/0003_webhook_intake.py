"""webhook intake: relay bookkeeping on events, send lookup by message id

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # How the sender named the lead (an id or an address), kept so that an
    # unmatched event can be matched by hand later.
    op.add_column("events", sa.Column("lead_ref", sa.String(), nullable=True))
    # The provider's message id (the part before the first dot of
    # sg_message_id): ties opens and clicks to a delivery.
    op.add_column("events", sa.Column("message_id", sa.String(), nullable=True))
    op.create_index("ix_events_message_id", "events", ["message_id"])
    # A pending event is the relay's to deliver from this moment on; the
    # request that stored it gets a head start, a suspected scanner click
    # waits for the rest of its burst.
    op.add_column(
        "events",
        sa.Column("relay_after", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "events",
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("events", sa.Column("last_error", sa.String(), nullable=True))
    op.create_index(
        "ix_events_pending_relay_after",
        "events",
        ["relay_after"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    # SendGrid events without custom_args map back through the send record.
    op.create_index(
        "ix_email_sends_provider_message_id", "email_sends", ["provider_message_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_email_sends_provider_message_id", table_name="email_sends")
    op.drop_index("ix_events_pending_relay_after", table_name="events")
    op.drop_column("events", "last_error")
    op.drop_column("events", "attempts")
    op.drop_column("events", "relay_after")
    op.drop_index("ix_events_message_id", table_name="events")
    op.drop_column("events", "message_id")
    op.drop_column("events", "lead_ref")
