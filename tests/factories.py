"""Test data built in one place: journeys, scoring rules and lead CSVs."""

from datetime import timedelta
from pathlib import Path

from core.catalog import load_journey, load_scoring
from models.journey import EmailStep, Journey, ScoreStep, ScoringRules, WaitStep

REPO = Path(__file__).resolve().parent.parent
JOURNEYS = REPO / "journeys"


def welcome_journey() -> Journey:
    return load_journey(JOURNEYS, "welcome")


def default_scoring() -> ScoringRules:
    return load_scoring(JOURNEYS)


def short_journey(wait: timedelta = timedelta(days=3)) -> Journey:
    """Welcome email, score, one wait, a second email."""
    return Journey(
        name="short",
        version=1,
        steps=[
            EmailStep(id="hello", template="welcome", subject="Hello"),
            ScoreStep(id="score"),
            WaitStep(id="pause", duration=wait),
            EmailStep(id="follow-up", template="getting_started", subject="Next"),
        ],
    )


def write_leads_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = [
        "email",
        "external_id",
        "first_name",
        "last_name",
        "time_zone",
        "do_not_email",
        "lead_source",
        "occupation",
    ]
    lines = [",".join(columns)]
    lines += [",".join(row.get(column, "") for column in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def made_up_lead(number: int, **overrides: str) -> dict[str, str]:
    row = {
        "email": f"person{number}@example.com",
        "external_id": f"T-{number}",
        "first_name": f"Person{number}",
        "last_name": "Example",
        "time_zone": "Europe/London",
        "do_not_email": "no",
        "lead_source": "Google",
        "occupation": "Student",
    }
    row.update(overrides)
    return row
