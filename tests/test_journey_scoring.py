"""The pure scoring rules: fit, behaviour caps per period, decay, limits and
the MQL threshold with hysteresis."""

from datetime import UTC, datetime, timedelta
from typing import Any

from models.journey import ScoringRules
from models.messages import LeadEvent, ScoredTouch
from tests.factories import default_scoring
from workflows.scoring import compute_score, crosses_threshold, earn, prune

MONDAY = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def rules(**fields: Any) -> ScoringRules:
    return ScoringRules.model_validate(
        {"mql_threshold": 50, "rearm_below": 40, **fields}
    )


def event(kind: str, at: datetime, **properties: Any) -> LeadEvent:
    return LeadEvent(
        event_id=f"{kind}-{at.isoformat()}",
        type=kind,
        occurred_at=at,
        properties=properties,
    )


def earn_all(scoring: ScoringRules, events: list[LeadEvent]) -> list[ScoredTouch]:
    touches: list[ScoredTouch] = []
    for one in events:
        touches += earn(scoring, touches, one)
    return touches


def test_a_behaviour_cap_applies_per_period_and_opens_again_in_the_next() -> None:
    scoring = rules(
        behaviour=[{"event": "page_visit", "points": 3, "max_points": 7, "per": "7d"}]
    )
    # 1970-01-01 was a Thursday: periods of 7 days run Thursday to Wednesday.
    first_week = [
        event("page_visit", MONDAY + timedelta(hours=hour)) for hour in range(5)
    ]
    next_week = [event("page_visit", MONDAY + timedelta(days=7))]

    touches = earn_all(scoring, first_week + next_week)

    assert [touch.points for touch in touches] == [3, 3, 1, 3]


def test_property_patterns_pick_the_rule() -> None:
    scoring = default_scoring()

    pricing = earn(
        scoring, [], event("page_visit", MONDAY, url="https://x.test/pricing")
    )
    blog = earn(scoring, [], event("page_visit", MONDAY, url="https://x.test/blog"))

    assert sorted(touch.points for touch in pricing) == [3, 7]
    assert [touch.points for touch in blog] == [3]


def test_behaviour_points_halve_every_half_life_and_fit_points_do_not() -> None:
    scoring = rules(
        half_life="10d",
        fit=[
            {
                "attribute": "occupation",
                "equals": ["Working Professional"],
                "points": 15,
            }
        ],
        behaviour=[{"event": "demo_request", "points": 40}],
    )
    touches = earn_all(scoring, [event("demo_request", MONDAY)])
    attributes = {"occupation": "Working Professional"}

    at_once = compute_score(scoring, attributes, {}, touches, MONDAY)
    later = compute_score(scoring, attributes, {}, touches, MONDAY + timedelta(days=20))

    assert at_once.score == 55
    assert later.score == 25
    assert later.breakdown == {"fit:occupation": 15, "event:demo_request": 10}


def test_the_score_stays_between_zero_and_the_ceiling() -> None:
    scoring = rules(
        ceiling=80,
        behaviour=[
            {"event": "demo_request", "points": 60},
            {"event": "careers_page", "points": -30},
        ],
    )
    high = earn_all(scoring, [event("demo_request", MONDAY)] * 2)
    low = earn_all(scoring, [event("careers_page", MONDAY)])

    assert compute_score(scoring, {}, {}, high, MONDAY).score == 80
    assert compute_score(scoring, {}, {}, low, MONDAY).score == 0


def test_faded_touches_are_forgotten_but_recent_ones_are_kept() -> None:
    scoring = rules(half_life="1d", behaviour=[{"event": "reply", "points": 20}])
    touches = earn_all(
        scoring, [event("reply", MONDAY), event("reply", MONDAY + timedelta(days=20))]
    )

    kept = prune(scoring, touches, MONDAY + timedelta(days=20))

    assert [touch.at for touch in kept] == [MONDAY + timedelta(days=20)]


def test_scores_wobbling_around_the_threshold_open_one_episode() -> None:
    scoring = rules()
    armed = True
    opened = []

    for score in [48, 52, 49, 53, 51, 55, 39, 52]:
        opens, armed = crosses_threshold(scoring, score, armed)
        opened.append(opens)

    # Only the first crossing opens; falling below 40 re-arms for the last one.
    assert opened == [False, True, False, False, False, False, False, True]


def test_count_based_scoring_without_touches_still_works() -> None:
    scoring = default_scoring()

    result = compute_score(scoring, {"lead_source": "Reference"}, {"demo_request": 1})

    assert result.score == 60
