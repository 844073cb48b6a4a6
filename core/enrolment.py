"""Enrolling leads: upsert them, then start one journey each, idempotently."""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.db import get_engine
from core.intake import normalise_email
from models import search_attributes as sa
from models.journey import Journey, ScoringRules
from models.messages import JourneyStart
from models.tables import Lead, utcnow
from workflows.journey import LeadJourney, workflow_id_for


@dataclass(frozen=True)
class LeadRecord:
    """A lead as an import hands it over: already validated."""

    email: str
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    owner_email: str | None = None
    time_zone: str | None = None
    do_not_email: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)


def upsert_leads(database_url: str, records: Iterable[LeadRecord]) -> list[int]:
    """Insert or update leads by normalised email; return their ids in order."""
    ids: list[int] = []
    with Session(get_engine(database_url)) as session:
        for record in records:
            values = {
                "email": normalise_email(record.email),
                "external_id": record.external_id,
                "first_name": record.first_name,
                "last_name": record.last_name,
                "owner_email": record.owner_email,
                "time_zone": record.time_zone,
                "do_not_email": record.do_not_email,
                "attributes": record.attributes,
            }
            now = utcnow()
            statement = (
                insert(Lead)
                .values(**values, stage="new", score=0, created_at=now, updated_at=now)
                .on_conflict_do_update(
                    index_elements=["email"], set_={**values, "updated_at": now}
                )
                .returning(col(Lead.id))
            )
            ids.append(session.execute(statement).scalar_one())
        session.commit()
    return ids


async def start_journey(
    client: Client,
    task_queue: str,
    lead_id: int,
    journey: Journey,
    scoring: ScoringRules,
) -> bool:
    """Start the lead's journey; False when the lead already has one.

    The id is `lead-<id>`. A finished journey is not started again: re-enrolment
    is a journey rule, not something a repeated import may do by accident.
    """
    try:
        await client.start_workflow(
            LeadJourney.run,
            JourneyStart(lead_id=lead_id, journey=journey, scoring=scoring),
            id=workflow_id_for(lead_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"{journey.name} v{journey.version} for lead {lead_id}",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.LEAD_STAGE, "nurturing"),
                    SearchAttributePair(sa.LEAD_SCORE, 0),
                    SearchAttributePair(sa.JOURNEY, journey.name),
                    SearchAttributePair(sa.JOURNEY_VERSION, journey.version),
                    SearchAttributePair(sa.MQL_STATE, "none"),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


@dataclass
class CohortOutcome:
    started: int = 0
    already_enrolled: int = 0


async def start_cohort(
    client: Client,
    task_queue: str,
    lead_ids: Iterable[int],
    journey: Journey,
    scoring: ScoringRules,
    concurrency: int = 32,
) -> CohortOutcome:
    """Start journeys for many leads with at most `concurrency` starts in flight."""
    outcome = CohortOutcome()
    gate = asyncio.Semaphore(concurrency)

    async def start_one(lead_id: int) -> None:
        try:
            started = await start_journey(client, task_queue, lead_id, journey, scoring)
        finally:
            gate.release()
        if started:
            outcome.started += 1
        else:
            outcome.already_enrolled += 1

    async with asyncio.TaskGroup() as group:
        for lead_id in lead_ids:
            # Acquire before creating the task, so that a large cohort never
            # holds more than `concurrency` pending starts in memory.
            await gate.acquire()
            group.create_task(start_one(lead_id))
    return outcome


def journey_handle(client: Client, lead_id: int) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(workflow_id_for(lead_id))
