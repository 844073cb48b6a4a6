"""Loading journey and scoring definitions from the journeys folder."""

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from models.journey import Journey, ScoringRules

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
            f"{'.'.join(str(part) for part in problem['loc']) or 'top level'}: "
            f"{problem['msg']}"
            for problem in error.errors()
        )
        message = f"{path}: {problems}"
        raise DefinitionError(message) from error


def load_journey(journeys_dir: Path, name: str) -> Journey:
    return _load(journeys_dir / f"{name}.yaml", Journey)


def load_scoring(journeys_dir: Path) -> ScoringRules:
    return _load(journeys_dir / SCORING_FILE, ScoringRules)
