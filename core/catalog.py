"""Loading journey and scoring definitions from the journeys folder."""

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from models.journey import EndStep, Journey, ScoringRules, describe_location

ModelT = TypeVar("ModelT", bound=BaseModel)

SCORING_FILE = "scoring.yaml"


class DefinitionError(ValueError):
    """A journey or scoring file that cannot be used, with where and why."""


def _load(path: Path, model: type[ModelT]) -> ModelT:
    if not path.exists():
        message = f"{path}: no such file"
        raise DefinitionError(message)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        message = f"{path}: not valid YAML: {error}"
        raise DefinitionError(message) from error
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{describe_location(raw, problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        message = f"{path}: {problems}"
        raise DefinitionError(message) from error


def load_journey(journeys_dir: Path, name: str) -> Journey:
    return _load(journeys_dir / f"{name}.yaml", Journey)


def load_scoring(journeys_dir: Path) -> ScoringRules:
    return _load(journeys_dir / SCORING_FILE, ScoringRules)


def load_linked_journeys(journeys_dir: Path, journey: Journey) -> dict[str, Journey]:
    """Every journey an `end` step of `journey` moves into, and theirs in turn,
    so that the workflow can go on in them without reading files."""
    linked: dict[str, Journey] = {}
    pending = [journey]
    while pending:
        current = pending.pop()
        for step in current.steps:
            if isinstance(step, EndStep) and step.into and step.into not in linked:
                linked[step.into] = load_journey(journeys_dir, step.into)
                pending.append(linked[step.into])
    return linked


def missing_templates(journeys_dir: Path, journey: Journey) -> list[str]:
    """Problems with the email templates a journey names, one sentence each."""
    problems = []
    for number, step in enumerate(journey.steps, start=1):
        template = getattr(step, "template", None)
        path = journeys_dir / "templates" / f"{template}.txt.j2"
        if template is not None and not path.exists():
            problems.append(
                f"step {number} {step.id!r} (email), field template: expected "
                f"templates/{template}.txt.j2 to exist, found no such file"
            )
    return problems
