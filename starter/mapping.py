"""Column mappings: how one CRM's CSV export becomes leads and their history.

A mapping is a YAML file in `mappings/`. It names the columns that hold the
email, the CRM's id, names, owner, time zone and consent; which columns become
lead attributes (and under which name scoring rules see them); which values mean
"not answered"; and which columns seed the lead's behaviour history, so that the
first score reflects what the CRM already knows.
"""

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The plain format of `examples/leads.csv`, used when no mapping is given.
DEFAULT_MAPPING = Path(__file__).resolve().parent.parent / "mappings" / "example.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsentColumn(_Strict):
    """A yes/no column; a "yes" means the lead must never get marketing email."""

    column: str
    # Quote these values in YAML: a bare yes/no there is read as true/false.
    means_yes: list[str] = ["yes", "y", "true", "1"]
    means_no: list[str] = ["no", "n", "false", "0"]


class ActivityColumn(_Strict):
    """A column whose value names the lead's latest activity in the CRM.

    `events` turns a value into one event of a product type. `unsubscribed` and
    `bounced` list values that also suppress the lead in the database, so that
    nobody emails it whatever its journey does.
    """

    column: str
    events: dict[str, str] = {}
    unsubscribed: list[str] = []
    bounced: list[str] = []


class CountColumn(_Strict):
    """A numeric column that seeds `value // per` events of one type, at most
    `max_events` (behaviour rules cap the points anyway, and every seeded event
    is scored on its own when the journey starts)."""

    column: str
    event: str
    per: float = Field(default=1, gt=0)
    max_events: int = Field(default=5, ge=0)


class History(_Strict):
    activities: list[ActivityColumn] = []
    counts: list[CountColumn] = []


class LeadMapping(_Strict):
    """Which CSV column feeds which part of a lead."""

    email: str
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    owner_email: str | None = None
    time_zone: str | None = None
    do_not_email: ConsentColumn | None = None
    # Attribute name -> CSV column. Scoring rules see the attribute name.
    attributes: dict[str, str] = {}
    # Keep every column the mapping does not name as an attribute of its own name.
    other_columns_as_attributes: bool = False
    # Values (compared after trimming, without regard to case) that mean
    # "not answered": the field is treated as empty.
    not_answered: list[str] = [""]
    # Named columns that an export may leave out; they read as empty.
    optional_columns: list[str] = []
    history: History = History()

    @model_validator(mode="after")
    def _attribute_names_are_plain(self) -> "LeadMapping":
        for name in self.attributes:
            if not name.replace("_", "").isalnum() or not name.islower():
                message = (
                    f"attribute name {name!r} must be lower case letters, digits "
                    "and underscores, so that scoring rules can name it"
                )
                raise ValueError(message)
        return self

    def required_columns(self) -> set[str]:
        """Columns the CSV header must have for this mapping to apply."""
        return self.named_columns() - set(self.optional_columns)

    def named_columns(self) -> set[str]:
        """Every column the mapping names."""
        named = [
            self.email,
            self.external_id,
            self.first_name,
            self.last_name,
            self.owner_email,
            self.time_zone,
        ]
        columns = {column for column in named if column}
        if self.do_not_email:
            columns.add(self.do_not_email.column)
        columns.update(self.attributes.values())
        columns.update(activity.column for activity in self.history.activities)
        columns.update(count.column for count in self.history.counts)
        return columns


class MappingError(ValueError):
    """A mapping file that cannot be used, with where and why."""


def load_mapping(path: Path) -> LeadMapping:
    if not path.exists():
        message = f"{path}: no such mapping file"
        raise MappingError(message)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return LeadMapping.model_validate(raw)
    except yaml.YAMLError as error:
        message = f"{path}: not valid YAML: {error}"
        raise MappingError(message) from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'top level'}: "
            f"{problem['msg']}"
            for problem in error.errors()
        )
        message = f"{path}: {problems}"
        raise MappingError(message) from error
