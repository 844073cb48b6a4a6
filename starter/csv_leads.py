"""Reading leads from the project's plain CSV format.

Columns: `email` (required), `external_id`, `first_name`, `last_name`,
`owner_email`, `time_zone`, `do_not_email` (yes/no); every other column
becomes a lead attribute that scoring rules can use.
"""

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.enrolment import LeadRecord

KNOWN_COLUMNS = (
    "email",
    "external_id",
    "first_name",
    "last_name",
    "owner_email",
    "time_zone",
    "do_not_email",
)
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}


@dataclass(frozen=True)
class RejectedRow:
    row_number: int
    reason: str


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _parse_row(row: dict[str, str]) -> LeadRecord:
    email = (row.get("email") or "").strip()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or " " in email:
        message = f"email {email!r} is not an address"
        raise ValueError(message)
    do_not_email = (row.get("do_not_email") or "").strip().lower()
    if do_not_email not in YES | NO:
        message = f"do_not_email {do_not_email!r} is not yes or no"
        raise ValueError(message)
    attributes = {
        name: value.strip()
        for name, value in row.items()
        if name not in KNOWN_COLUMNS and name and value and value.strip()
    }
    return LeadRecord(
        email=email,
        external_id=_blank_to_none(row.get("external_id")),
        first_name=_blank_to_none(row.get("first_name")),
        last_name=_blank_to_none(row.get("last_name")),
        owner_email=_blank_to_none(row.get("owner_email")),
        time_zone=_blank_to_none(row.get("time_zone")),
        do_not_email=do_not_email in YES,
        attributes=attributes,
    )


def read_leads(path: Path) -> Iterator[LeadRecord | RejectedRow]:
    """Yield a lead or a rejection for every data row; row 1 is the header."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "email" not in reader.fieldnames:
            message = f"{path}: the header must name an 'email' column"
            raise ValueError(message)
        for row in reader:
            row_number = reader.line_num
            if not any((value or "").strip() for value in row.values()):
                continue
            try:
                yield _parse_row(row)
            except ValueError as error:
                yield RejectedRow(row_number=row_number, reason=str(error))
