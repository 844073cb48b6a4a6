"""Lead scoring: fit points for who the lead is, behaviour points for what it did.

Pure functions shared by the journey workflow (which earns and keeps behaviour
points as events arrive) and the scoring activity (which adds the fit points
from the stored lead and records the result).
"""

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from models.journey import BehaviourRule, ScoringRules
from models.messages import LeadEvent, ScoredTouch, ScoreResult

# Touches worth less than this after fading are forgotten.
FADED_BELOW = 0.05
# At most this many touches are kept; the oldest go first.
TOUCHES_KEPT = 500


def compute_score(
    rules: ScoringRules,
    attributes: Mapping[str, Any],
    event_counts: Mapping[str, int],
    touches: Sequence[ScoredTouch] | None = None,
    as_of: datetime | None = None,
) -> ScoreResult:
    """Apply the rules; the total is kept between 0 and the ceiling.

    With `touches` (and `as_of`), behaviour points are the touches' points
    faded by the half-life; without them, the older count-based rules apply.
    """
    breakdown: dict[str, float] = {}

    for fit in rules.fit:
        value = attributes.get(fit.attribute)
        if value is not None and str(value) in fit.equals:
            label = f"fit:{fit.attribute}"
            breakdown[label] = breakdown.get(label, 0) + fit.points

    if touches is not None:
        for touch in touches:
            label = f"event:{touch.event}"
            worth = faded(rules, touch, as_of or touch.at)
            breakdown[label] = breakdown.get(label, 0.0) + worth
    else:
        for behaviour in rules.behaviour:
            count = event_counts.get(behaviour.event, 0)
            # Property conditions need the events themselves, not counts.
            if count == 0 or behaviour.where:
                continue
            points = behaviour.points * count
            if behaviour.max_points is not None:
                points = min(points, behaviour.max_points)
            breakdown[f"event:{behaviour.event}"] = points

    rounded = {label: round(points) for label, points in breakdown.items()}
    total = max(0, min(rules.ceiling, round(sum(breakdown.values()))))
    return ScoreResult(score=total, breakdown=rounded)


def faded(rules: ScoringRules, touch: ScoredTouch, as_of: datetime) -> float:
    """What a touch is worth at `as_of` after halving every half-life."""
    if rules.half_life is None:
        return float(touch.points)
    age = max(timedelta(0), as_of - touch.at)
    return touch.points * math.pow(0.5, age / rules.half_life)


def matches(rule: BehaviourRule, event: LeadEvent) -> bool:
    if rule.event != event.type:
        return False
    return all(
        fnmatchcase(str(event.properties.get(key, "")), pattern)
        for key, pattern in rule.where.items()
    )


def earn(
    rules: ScoringRules, touches: Sequence[ScoredTouch], event: LeadEvent
) -> list[ScoredTouch]:
    """The touches an event earns: one per matching rule, within its cap.

    A cap with `per` counts the points already earned in the same period
    (periods are aligned to the Unix epoch, so they do not drift with events).
    """
    earned: list[ScoredTouch] = []
    for index, rule in enumerate(rules.behaviour):
        if not matches(rule, event):
            continue
        points = rule.points
        if rule.max_points is not None and points > 0:
            so_far = sum(
                touch.points
                for touch in touches
                if touch.rule == index
                and _same_period(rule, touch.at, event.occurred_at)
            )
            points = min(points, max(0, rule.max_points - so_far))
        if points != 0:
            earned.append(
                ScoredTouch(
                    rule=index, event=event.type, points=points, at=event.occurred_at
                )
            )
    return earned


def _same_period(rule: BehaviourRule, first: datetime, second: datetime) -> bool:
    if rule.per is None:
        return True
    size = rule.per.total_seconds()
    return math.floor(first.timestamp() / size) == math.floor(second.timestamp() / size)


def prune(
    rules: ScoringRules, touches: list[ScoredTouch], as_of: datetime
) -> list[ScoredTouch]:
    """Drop touches that have faded to nothing, and the oldest beyond the bound.

    Touches that still count towards a cap are kept even when faded.

    TODO: a lifetime cap (`max_points` without `per`) keeps its touches only up
    to TOUCHES_KEPT, so past that bound a rule can earn again.
    """
    kept = [
        touch
        for touch in touches
        if abs(faded(rules, touch, as_of)) >= FADED_BELOW
        or _recent(rules, touch, as_of)
    ]
    return kept[-TOUCHES_KEPT:]


def _recent(rules: ScoringRules, touch: ScoredTouch, as_of: datetime) -> bool:
    """Whether a touch still counts towards its rule's cap in the current period."""
    rule = rules.behaviour[touch.rule] if touch.rule < len(rules.behaviour) else None
    if rule is None or rule.max_points is None:
        return False
    return _same_period(rule, touch.at, as_of)


def has_decay(rules: ScoringRules, touches: Sequence[ScoredTouch]) -> bool:
    """Whether a periodic re-score can change anything."""
    return rules.half_life is not None and any(touch.points for touch in touches)


def crosses_threshold(
    rules: ScoringRules, score: int, armed: bool
) -> tuple[bool, bool]:
    """(open a new MQL episode?, armed afterwards?) for a new score.

    An episode opens when the score reaches the threshold while armed; the
    lead is re-armed only when the score falls below the lower re-arm level.
    """
    if armed and score >= rules.mql_threshold:
        return True, False
    if not armed and score < rules.rearm_below:
        return False, True
    return False, armed
