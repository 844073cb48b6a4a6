"""Lead scoring: fit points for who the lead is, behaviour points for what it did."""

from collections.abc import Mapping
from typing import Any

from models.journey import ScoringRules
from models.messages import ScoreResult


def compute_score(
    rules: ScoringRules,
    attributes: Mapping[str, Any],
    event_counts: Mapping[str, int],
) -> ScoreResult:
    """Apply the rules; the total is kept between 0 and the ceiling."""
    breakdown: dict[str, int] = {}

    for fit in rules.fit:
        value = attributes.get(fit.attribute)
        if value is not None and str(value) in fit.equals:
            label = f"fit:{fit.attribute}"
            breakdown[label] = breakdown.get(label, 0) + fit.points

    for behaviour in rules.behaviour:
        count = event_counts.get(behaviour.event, 0)
        if count == 0:
            continue
        points = behaviour.points * count
        if behaviour.max_points is not None:
            points = min(points, behaviour.max_points)
        breakdown[f"event:{behaviour.event}"] = points

    total = max(0, min(rules.ceiling, sum(breakdown.values())))
    return ScoreResult(score=total, breakdown=breakdown)
