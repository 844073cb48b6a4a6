"""Journey and scoring definitions: the data a journey workflow interprets.

Pure pydantic, safe inside the workflow sandbox. Both are validated when loaded
from YAML and passed whole into the workflow at start, so a lead keeps the
version it started on even after the file changes.
"""

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^\s*(\d+)\s*(d|h|m|s)\s*$")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def _parse_duration(value: object) -> object:
    """Accept "30d", "12h", "90m" and "45s" besides what pydantic accepts."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            amount, unit = match.groups()
            return timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")


class EmailStep(_Step):
    """Render a template and send it to the lead."""

    kind: Literal["email"] = "email"
    template: str
    subject: str


class WaitStep(_Step):
    """Sleep for a while. Events that arrive meanwhile are handled at once."""

    kind: Literal["wait"] = "wait"
    duration: Duration


class ScoreStep(_Step):
    """Re-score the lead from its attributes and the events seen so far."""

    kind: Literal["score"] = "score"


class NotifySalesStep(_Step):
    """Hand the lead to sales now, whatever its score."""

    kind: Literal["notify_sales"] = "notify_sales"


class EndStep(_Step):
    kind: Literal["end"] = "end"


Step = Annotated[
    EmailStep | WaitStep | ScoreStep | NotifySalesStep | EndStep,
    Field(discriminator="kind"),
]


class EntryRule(BaseModel):
    """Who may enter the journey outside a cohort start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Event types that enrol a lead that has no journey yet (for example a
    # form submission from an unknown visitor).
    events: list[str] = []
    # Whether such an event re-enrols a lead whose journey has finished.
    reenrol: bool = False


class Journey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: int = Field(ge=1)
    description: str = ""
    entry: EntryRule = EntryRule()
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _step_ids_are_unique(self) -> "Journey":
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                message = f"step id {step.id!r} is used twice"
                raise ValueError(message)
            seen.add(step.id)
        return self


class FitRule(BaseModel):
    """Points for who the lead is: an attribute equal to one of some values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str
    equals: list[str]
    points: int


class BehaviourRule(BaseModel):
    """Points for each event of a type, up to `max_points` in all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: str
    points: int
    max_points: int | None = None


class ScoringRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mql_threshold: int = Field(ge=1)
    rearm_below: int = Field(ge=0)
    ceiling: int = Field(default=100, ge=1)
    fit: list[FitRule] = []
    behaviour: list[BehaviourRule] = []

    @model_validator(mode="after")
    def _rearm_level_is_below_threshold(self) -> "ScoringRules":
        if self.rearm_below >= self.mql_threshold:
            message = (
                f"rearm_below ({self.rearm_below}) must be lower than "
                f"mql_threshold ({self.mql_threshold})"
            )
            raise ValueError(message)
        return self
