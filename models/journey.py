"""Journey and scoring definitions: the data a journey workflow interprets.

Pure pydantic, safe inside the workflow sandbox. Both are validated when loaded
from YAML and passed whole into the workflow at start, so a lead keeps the
version it started on even after the file changes.
"""

import re
from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+)\s*(w|d|h|m|s)\s*$")
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_STEP_ID = r"^[a-z0-9][a-z0-9_-]*$"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse_duration(value: object) -> object:
    """Accept "2w", "30d", "12h", "90m" and "45s" besides what pydantic accepts."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            amount, unit = match.groups()
            return timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
StepRef = Annotated[str, Field(pattern=_STEP_ID)]


def _positive(value: timedelta | None, name: str) -> None:
    if value is not None and value <= timedelta(0):
        message = f"{name} must be longer than zero, got {value}"
        raise ValueError(message)


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_STEP_ID)


class EmailStep(_Step):
    """Render a template and send it to the lead."""

    kind: Literal["email"] = "email"
    template: str
    subject: str


class SendWindow(BaseModel):
    """A local time of day on allowed weekdays, in the lead's time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time = time(9, 0)
    end: time = time(17, 0)
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default=["mon", "tue", "wed", "thu", "fri"], min_length=1
    )

    @model_validator(mode="after")
    def _start_is_before_end(self) -> "SendWindow":
        if self.start >= self.end:
            message = f"window start ({self.start}) must be before its end ({self.end})"
            raise ValueError(message)
        return self


class WaitStep(_Step):
    """Sleep for `duration`, then (when `window` is given) on until the lead's
    next local send window. Events that arrive meanwhile are handled at once."""

    kind: Literal["wait"] = "wait"
    duration: Duration | None = None
    window: SendWindow | None = None

    @model_validator(mode="after")
    def _waits_for_something(self) -> "WaitStep":
        if self.duration is None and self.window is None:
            message = "a wait step needs a duration, a window, or both; got neither"
            raise ValueError(message)
        _positive(self.duration, "duration")
        return self


class WaitForStep(_Step):
    """Wait up to `timeout` for one of `events`; go to `on_event` when one comes,
    to `on_timeout` when none does (either defaults to the next step)."""

    kind: Literal["wait_for"] = "wait_for"
    events: list[str] = Field(min_length=1)
    timeout: Duration
    on_event: StepRef | None = None
    on_timeout: StepRef | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout_is_positive(cls, value: timedelta) -> timedelta:
        _positive(value, "timeout")
        return value


class Condition(BaseModel):
    """What a branch tests: exactly one of an attribute, the score, or an event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The lead attribute equals one of `equals`.
    attribute: str | None = None
    equals: list[str] = []
    # The score is at least this much.
    score_at_least: int | None = None
    # An event of this type has happened (within `within`, when given).
    event: str | None = None
    within: Duration | None = None

    @model_validator(mode="after")
    def _tests_one_thing(self) -> "Condition":
        chosen = [
            name
            for name, value in (
                ("attribute", self.attribute),
                ("score_at_least", self.score_at_least),
                ("event", self.event),
            )
            if value is not None
        ]
        if len(chosen) != 1:
            message = (
                "a condition tests exactly one of attribute, score_at_least or "
                f"event; got {', '.join(chosen) or 'none'}"
            )
            raise ValueError(message)
        if self.attribute is not None and not self.equals:
            message = f"attribute {self.attribute!r} needs a non-empty 'equals' list"
            raise ValueError(message)
        if self.within is not None and self.event is None:
            message = "'within' applies only to an event condition"
            raise ValueError(message)
        return self


class BranchStep(_Step):
    """Go to `then` when the condition holds, else to `otherwise` (either
    defaults to the next step)."""

    kind: Literal["branch"] = "branch"
    when: Condition = Field(alias="if")
    then: StepRef | None = None
    otherwise: StepRef | None = Field(default=None, alias="else")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ScoreStep(_Step):
    """Re-score the lead from its attributes and the events seen so far."""

    kind: Literal["score"] = "score"


class NotifySalesStep(_Step):
    """Hand the lead to sales now, whatever its score (opens an MQL episode
    unless one is already open)."""

    kind: Literal["notify_sales"] = "notify_sales"


class GotoStep(_Step):
    kind: Literal["goto"] = "goto"
    to: StepRef


class EndStep(_Step):
    """Finish the journey; with `into`, the lead continues in that journey in
    the same workflow (continue-as-new), keeping its score and MQL state."""

    kind: Literal["end"] = "end"
    into: str | None = Field(default=None, pattern=_STEP_ID)


Step = Annotated[
    EmailStep
    | WaitStep
    | WaitForStep
    | BranchStep
    | ScoreStep
    | NotifySalesStep
    | GotoStep
    | EndStep,
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

    name: str = Field(pattern=_STEP_ID)
    version: int = Field(ge=1)
    description: str = ""
    entry: EntryRule = EntryRule()
    # Event types that end this journey at once, besides the built-in goals
    # (purchase, sales_won, unsubscribe, hard_bounce, spam_report).
    goals: list[str] = []
    # The zone for send windows when the lead has none.
    default_time_zone: str = "UTC"
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _steps_refer_to_steps(self) -> "Journey":
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                message = f"step id {step.id!r} is used twice"
                raise ValueError(message)
            seen.add(step.id)
        for index, step in enumerate(self.steps):
            for field, target in _targets(step):
                if target not in seen:
                    message = (
                        f"step {index + 1} {step.id!r} ({step.kind}), field "
                        f"{field}: names step {target!r}, which this journey "
                        "does not have"
                    )
                    raise ValueError(message)
        return self

    def index_of(self, step_id: str) -> int:
        for index, step in enumerate(self.steps):
            if step.id == step_id:
                return index
        message = f"journey {self.name} has no step {step_id!r}"
        raise KeyError(message)


def _targets(step: "Step") -> list[tuple[str, str]]:
    """The (field, step id) pairs a step jumps to."""
    pairs: list[tuple[str, str | None]] = []
    if isinstance(step, GotoStep):
        pairs = [("to", step.to)]
    elif isinstance(step, WaitForStep):
        pairs = [("on_event", step.on_event), ("on_timeout", step.on_timeout)]
    elif isinstance(step, BranchStep):
        pairs = [("then", step.then), ("else", step.otherwise)]
    return [(field, target) for field, target in pairs if target is not None]


class FitRule(BaseModel):
    """Points for who the lead is: an attribute equal to one of some values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str
    equals: list[str]
    points: int


class BehaviourRule(BaseModel):
    """Points for each event of a type (optionally only when its properties
    match `where`, shell-style patterns such as `*/pricing*`), up to
    `max_points` in all, or per `per` period when that is given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: str
    points: int
    max_points: int | None = Field(default=None, ge=0)
    per: Duration | None = None
    where: dict[str, str] = {}

    @field_validator("per")
    @classmethod
    def _period_is_positive(cls, value: timedelta | None) -> timedelta | None:
        _positive(value, "per")
        return value


class ScoringRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mql_threshold: int = Field(ge=1)
    rearm_below: int = Field(ge=0)
    ceiling: int = Field(default=100, ge=1)
    # Behaviour points halve every `half_life`; none means they never fade.
    half_life: Duration | None = None
    # How often a waiting journey re-scores, so that decay shows.
    rescore_every: Duration = timedelta(days=1)
    # Time sales has to answer an MQL before it is escalated (once); after as
    # long again with no answer the lead is recycled to nurturing.
    sales_sla: Duration = timedelta(days=2)
    fit: list[FitRule] = []
    behaviour: list[BehaviourRule] = []

    @model_validator(mode="after")
    def _levels_make_sense(self) -> "ScoringRules":
        if self.rearm_below >= self.mql_threshold:
            message = (
                f"rearm_below ({self.rearm_below}) must be lower than "
                f"mql_threshold ({self.mql_threshold})"
            )
            raise ValueError(message)
        if self.mql_threshold > self.ceiling:
            message = (
                f"mql_threshold ({self.mql_threshold}) must not be above the "
                f"ceiling ({self.ceiling})"
            )
            raise ValueError(message)
        for name in ("half_life", "rescore_every", "sales_sla"):
            _positive(getattr(self, name), name)
        return self


def describe_location(raw: object, location: tuple[int | str, ...]) -> str:
    """Where a validation problem is, in the words of the file: the step (by
    number and id) and the field, e.g. `step 3 'settle-in' (wait), field
    duration`."""
    if not location:
        return "top level"
    if location[0] == "steps" and len(location) >= 2 and isinstance(location[1], int):
        number = location[1]
        steps = raw.get("steps") if isinstance(raw, dict) else None
        step = (
            steps[number]
            if isinstance(steps, list) and 0 <= number < len(steps)
            else None
        )
        step_id = step.get("id") if isinstance(step, dict) else None
        kind = step.get("kind") if isinstance(step, dict) else None
        # Skip the union tag pydantic adds after the index.
        rest = [str(part) for part in location[2:] if part != kind]
        where = f"step {number + 1}"
        if step_id:
            where += f" {step_id!r}"
        if kind:
            where += f" ({kind})"
        return f"{where}, field {'.'.join(rest)}" if rest else where
    return "field " + ".".join(str(part) for part in location)
