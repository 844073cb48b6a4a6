"""Scoring a lead: apply the rules, store the new score and why it changed."""

import structlog
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.db import get_engine
from models.messages import ScoreRequest, ScoreResult
from models.tables import Lead, ScoreChange, utcnow
from workflows.scoring import compute_score

log = structlog.get_logger(__name__)


class ScoringActivities:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    @activity.defn(name="score_lead")
    def score_lead(self, request: ScoreRequest) -> ScoreResult:
        with Session(get_engine(self.database_url)) as session:
            lead = session.get(Lead, request.lead_id, with_for_update=True)
            if lead is None:
                message = f"lead {request.lead_id} does not exist"
                raise ApplicationError(message, non_retryable=True)

            result = compute_score(
                request.rules,
                lead.attributes,
                request.event_counts,
                touches=request.touches,
                as_of=request.as_of,
            )

            if result.score != lead.score:
                session.add(
                    ScoreChange(
                        lead_id=request.lead_id,
                        old_score=lead.score,
                        new_score=result.score,
                        reason=request.reason,
                        breakdown=result.breakdown,
                    )
                )
                lead.score = result.score
                lead.updated_at = utcnow()
                session.add(lead)
            session.commit()
        log.info("lead.scored", lead_id=request.lead_id, score=result.score)
        return result
