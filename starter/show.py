"""`starter show LEAD`: one lead's journey (asked of the workflow), how its score
is made up (from the last score change), its recent events and sends, and where
to see it in the Temporal UI."""

from typing import Any

from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.db import get_engine, resolve_database_url, upgrade
from core.intake import normalise_email
from core.settings import Settings
from core.temporal import connect, journey_url
from models.tables import EmailSend, Lead, LeadEvent, ScoreChange
from workflows.journey import LeadJourney, workflow_id_for

RECENT = 10


def find_lead(session: Session, reference: str) -> Lead | None:
    """By id, external id or email, in that order."""
    if reference.isdigit():
        lead = session.get(Lead, int(reference))
        if lead is not None:
            return lead
    lead = session.exec(select(Lead).where(Lead.external_id == reference)).first()
    if lead is not None:
        return lead
    email = normalise_email(reference)
    return session.exec(select(Lead).where(Lead.email == email)).first()


async def journey_state(client: Client, lead_id: int) -> dict[str, Any] | None:
    handle = client.get_workflow_handle(workflow_id_for(lead_id))
    try:
        state: dict[str, Any] = await handle.query(LeadJourney.state)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        # The journey exists but cannot answer now (no worker polling, for
        # example): say so rather than fail the whole command.
        return {"unavailable": error.message}
    return state


async def run_show(settings: Settings, reference: str) -> int:
    console = Console()
    database_url = resolve_database_url(settings)
    upgrade(database_url)
    with Session(get_engine(database_url)) as session:
        lead = find_lead(session, reference)
        if lead is None:
            console.print(f"no lead has the id, external id or email {reference!r}")
            return 1
        assert lead.id is not None
        change = session.exec(
            select(ScoreChange)
            .where(ScoreChange.lead_id == lead.id)
            .order_by(col(ScoreChange.id).desc())
        ).first()
        events = session.exec(
            select(LeadEvent)
            .where(LeadEvent.lead_id == lead.id)
            .order_by(col(LeadEvent.id).desc())
            .limit(RECENT)
        ).all()
        sends = session.exec(
            select(EmailSend)
            .where(EmailSend.lead_id == lead.id)
            .order_by(col(EmailSend.id).desc())
            .limit(RECENT)
        ).all()

    suppressed = [
        reason
        for reason, flag in (
            ("do not email", lead.do_not_email),
            ("unsubscribed", lead.unsubscribed_at),
            ("bounced", lead.bounced_at),
        )
        if flag
    ]
    console.print(
        f"[bold]lead {lead.id}[/bold] {lead.email} (external id "
        f"{lead.external_id or '-'}), score {lead.score}, "
        f"{'suppressed: ' + ', '.join(suppressed) if suppressed else 'may be emailed'}"
    )

    client = await connect(settings)
    state = await journey_state(client, lead.id)
    if state is None:
        console.print("journey: none started")
    elif "unavailable" in state:
        console.print(f"journey: its state is unavailable now ({state['unavailable']})")
    else:
        shown = ("stage", "score", "step_index", "mql_episode", "mql_status", "paused")
        console.print(
            "journey: " + ", ".join(f"{name} {state.get(name)}" for name in shown)
        )
        if state.get("next_touch_at"):
            console.print(f"next touch: {state['next_touch_at']}")
    console.print(f"Temporal UI: {journey_url(settings, lead.id)}")

    breakdown = Table(title="Score breakdown (last change)")
    breakdown.add_column("rule")
    breakdown.add_column("points", justify="right")
    if change is not None:
        for rule, points in sorted(change.breakdown.items()):
            breakdown.add_row(rule, str(points))
        breakdown.caption = (
            f"{change.old_score} -> {change.new_score} because {change.reason}"
        )
    console.print(breakdown)

    recent = Table(title="Recent events")
    for column in ("when", "type", "source", "status"):
        recent.add_column(column)
    for event in events:
        recent.add_row(
            event.occurred_at.isoformat(timespec="seconds"),
            event.type,
            event.source,
            event.status,
        )
    console.print(recent)

    touches = Table(title="Recent sends")
    for column in ("when", "journey", "step", "status", "reason"):
        touches.add_column(column)
    for send in sends:
        touches.add_row(
            send.created_at.isoformat(timespec="seconds"),
            send.journey,
            send.step,
            send.status,
            send.reason or "",
        )
    console.print(touches)
    return 0
