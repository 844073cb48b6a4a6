"""Reading leads from a CRM's CSV export through a column mapping.

Every data row ends up as exactly one of: a lead, a row merged into an earlier
row with the same email, or a rejected row with its reason. Nothing is
half-imported.

The file is read twice and never held whole in memory. The first pass checks
every row, finds the encoding, and notes which emails and external ids repeat;
the second yields leads in file order. A lead whose email repeats is yielded
when its last row has been read, merged:

- the first row's values win; later rows only fill fields it left empty;
- do-not-email, unsubscribe and bounce marks hold if any of the rows has them;
- behaviour history takes the largest count of each event type.

Row numbers are the line numbers a spreadsheet shows: the header is row 1, and
blank lines are counted but otherwise skipped.
"""

import csv
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.enrolment import LeadRecord
from starter.mapping import LeadMapping

# Tried in order when no encoding is given. UTF-8 also strips a byte-order mark;
# cp1252 is what spreadsheet exports on Windows write; Latin-1 decodes anything.
FALLBACK_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


class CsvFormatError(ValueError):
    """The file as a whole cannot be read with this mapping."""


@dataclass(frozen=True)
class RejectedRow:
    row_number: int
    reason: str
    # Set when the row was not lost but merged into an earlier row's lead.
    merged_into: int | None = None

    def describe(self) -> str:
        """The reason as one line that names the row once."""
        if self.reason.startswith(f"row {self.row_number}"):
            return self.reason
        return f"row {self.row_number}: {self.reason}"


@dataclass
class CsvScan:
    """What the first pass learnt about the file."""

    encoding: str
    data_rows: int = 0
    blank_lines: int = 0
    accepted: int = 0
    # Among accepted rows (a merged row's marks are not counted again).
    do_not_email: int = 0
    unsubscribed_or_bounced: int = 0
    seeded_events: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    # Values of activity columns that the mapping does not turn into events.
    unmapped_activities: Counter[str] = field(default_factory=Counter)
    # Email -> row number of the last row with that email (only when repeated).
    _last_row_of: dict[str, int] = field(default_factory=dict)
    _invalid_rows: set[int] = field(default_factory=set)
    # Suppressions carried by rows rejected for a conflicting external id: the
    # lead with that email keeps them, so a rejected row never un-suppresses.
    _held_suppressions: dict[str, tuple[bool, bool, bool]] = field(default_factory=dict)

    @property
    def merged(self) -> list[RejectedRow]:
        return [row for row in self.rejected if row.merged_into is not None]

    @property
    def invalid(self) -> list[RejectedRow]:
        return [row for row in self.rejected if row.merged_into is None]


class CsvLeads:
    """A CSV export read through a mapping: `scan()` first, then `leads()`."""

    def __init__(
        self, path: Path, mapping: LeadMapping, encoding: str | None = None
    ) -> None:
        self.path = path
        self.mapping = mapping
        self._encodings = (encoding,) if encoding else FALLBACK_ENCODINGS
        self._not_answered = {value.strip().lower() for value in mapping.not_answered}
        self._scan: CsvScan | None = None

    def scan(self) -> CsvScan:
        """Check every row; decide rejections and merges. Reads the file once."""
        last_error: UnicodeDecodeError | None = None
        for encoding in self._encodings:
            try:
                self._scan = self._scan_with(encoding)
                return self._scan
            except UnicodeDecodeError as error:
                last_error = error
        message = (
            f"{self.path}: the file is not text in "
            f"{' or '.join(self._encodings)} ({last_error}); "
            "pass --encoding with the encoding the export used"
        )
        raise CsvFormatError(message)

    def leads(self) -> Iterator[LeadRecord]:
        """Yield the accepted leads, duplicates merged, in file order."""
        scan = self._scan or self.scan()
        open_groups: dict[str, LeadRecord] = {}
        with self._open(scan.encoding) as handle:
            for row_number, values in self._records(handle):
                if row_number in scan._invalid_rows:
                    continue
                lead = _with_held_suppressions(
                    scan, self._parse(row_number, values, scan=None)
                )
                last_row = scan._last_row_of.get(lead.email)
                if last_row is None:
                    yield lead
                    continue
                earlier = open_groups.pop(lead.email, None)
                merged = lead if earlier is None else _merge(earlier, lead)
                if row_number == last_row:
                    yield merged
                else:
                    open_groups[lead.email] = merged

    def _scan_with(self, encoding: str) -> CsvScan:
        scan = CsvScan(encoding=encoding)
        first_row_of: dict[str, int] = {}
        external_ids: dict[str, tuple[str, int]] = {}
        external_of_email: dict[str, str] = {}
        with self._open(encoding) as handle:
            for row_number, values in self._records(handle, scan):
                scan.data_rows += 1
                try:
                    lead = self._parse(row_number, values, scan)
                except ValueError as error:
                    scan.rejected.append(RejectedRow(row_number, str(error)))
                    scan._invalid_rows.add(row_number)
                    continue
                try:
                    _check_external_id(lead, external_ids, external_of_email)
                except ValueError as error:
                    scan.rejected.append(RejectedRow(row_number, str(error)))
                    scan._invalid_rows.add(row_number)
                    _hold_suppressions(scan, lead)
                    continue
                first = first_row_of.setdefault(lead.email, row_number)
                if first != row_number:
                    scan.rejected.append(
                        RejectedRow(
                            row_number,
                            f"same email as row {first} once trimmed and lower-"
                            f"cased; merged into the lead of row {first}",
                            merged_into=first,
                        )
                    )
                    scan._last_row_of[lead.email] = row_number
                else:
                    scan.accepted += 1
                    scan.do_not_email += lead.do_not_email
                    scan.unsubscribed_or_bounced += lead.unsubscribed or lead.bounced
                    scan.seeded_events += sum(lead.history.values())
        return scan

    def _open(self, encoding: str) -> TextIO:
        return self.path.open(encoding=encoding, newline="")

    def _records(
        self, handle: TextIO, scan: CsvScan | None = None
    ) -> Iterator[tuple[int, dict[str, str]]]:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            message = f"{self.path}: the file is empty; expected a header row"
            raise CsvFormatError(message)
        header = [name.strip() for name in header]
        missing = sorted(self.mapping.required_columns() - set(header))
        if missing:
            message = (
                f"{self.path}: the header has no column {', '.join(map(repr, missing))}"
                " that the mapping names"
            )
            raise CsvFormatError(message)
        start_line = reader.line_num + 1
        for fields in reader:
            row_number = start_line
            start_line = reader.line_num + 1
            if not any(value.strip() for value in fields):
                if scan is not None:
                    scan.blank_lines += 1
                continue
            if len(fields) != len(header):
                if scan is not None:
                    scan.data_rows += 1
                    reason = (
                        f"row {row_number} has {len(fields)} fields; the header "
                        f"has {len(header)} (an unquoted comma or a cut-off line?)"
                    )
                    scan.rejected.append(RejectedRow(row_number, reason))
                    scan._invalid_rows.add(row_number)
                continue
            yield row_number, dict(zip(header, fields, strict=True))

    def _value(self, values: dict[str, str], column: str | None) -> str | None:
        if column is None:
            return None
        value = values.get(column, "").strip()
        if value.lower() in self._not_answered:
            return None
        return value

    def _parse(
        self, row_number: int, values: dict[str, str], scan: CsvScan | None
    ) -> LeadRecord:
        mapping = self.mapping
        email = self._value(values, mapping.email)
        if email is None:
            message = f"row {row_number}: no email in column {mapping.email!r}"
            raise ValueError(message)
        email = normalise_address(email)
        if not is_address(email):
            message = f"row {row_number}: email {email!r} is not an address"
            raise ValueError(message)

        owner = self._value(values, mapping.owner_email)
        if owner is not None:
            owner = normalise_address(owner)
            if not is_address(owner):
                message = f"row {row_number}: owner email {owner!r} is not an address"
                raise ValueError(message)

        time_zone = self._value(values, mapping.time_zone)
        if time_zone is not None and not is_time_zone(time_zone):
            message = (
                f"row {row_number}: time zone {time_zone!r} is not an IANA time "
                "zone such as 'Europe/London'"
            )
            raise ValueError(message)

        do_not_email = False
        if mapping.do_not_email is not None:
            consent = mapping.do_not_email
            answer = self._value(values, consent.column)
            if answer is not None:
                folded = answer.lower()
                if folded in {value.lower() for value in consent.means_yes}:
                    do_not_email = True
                elif folded not in {value.lower() for value in consent.means_no}:
                    message = (
                        f"row {row_number}: {consent.column} {answer!r} is neither "
                        f"{consent.means_yes[0]!r} nor {consent.means_no[0]!r}"
                    )
                    raise ValueError(message)

        history: Counter[str] = Counter()
        unsubscribed = bounced = False
        for activity in mapping.history.activities:
            value = self._value(values, activity.column)
            if value is None:
                continue
            if value in activity.events:
                history[activity.events[value]] += 1
            elif scan is not None:
                scan.unmapped_activities[f"{activity.column}: {value}"] += 1
            unsubscribed = unsubscribed or value in activity.unsubscribed
            bounced = bounced or value in activity.bounced
        for count in mapping.history.counts:
            value = self._value(values, count.column)
            if value is None:
                continue
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or number < 0:
                message = (
                    f"row {row_number}: {count.column} {value!r} is not a "
                    "number of zero or more"
                )
                raise ValueError(message)
            events = min(count.max_events, int(number // count.per))
            if events:
                history[count.event] += events

        return LeadRecord(
            email=email,
            external_id=self._value(values, mapping.external_id),
            first_name=self._value(values, mapping.first_name),
            last_name=self._value(values, mapping.last_name),
            owner_email=owner,
            time_zone=time_zone,
            do_not_email=do_not_email,
            attributes=self._attributes(values),
            history=dict(history),
            unsubscribed=unsubscribed,
            bounced=bounced,
            row_number=row_number,
        )

    def _attributes(self, values: dict[str, str]) -> dict[str, str]:
        mapping = self.mapping
        attributes: dict[str, str] = {}
        for name, column in mapping.attributes.items():
            value = self._value(values, column)
            if value is not None:
                attributes[name] = value
        if mapping.other_columns_as_attributes:
            named = mapping.named_columns()
            for column in values:
                value = self._value(values, column)
                if column and column not in named and value is not None:
                    attributes.setdefault(column, value)
        return attributes


def normalise_address(email: str) -> str:
    """Trimmed and lower-cased: `' Ada@Example.COM '` is `'ada@example.com'`."""
    return email.strip().lower()


def is_address(email: str) -> bool:
    local, at, domain = email.partition("@")
    return bool(
        at
        and local
        and "@" not in domain
        and "." in domain.strip(".")
        and not any(character.isspace() for character in email)
    )


@lru_cache(maxsize=1024)
def is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _hold_suppressions(scan: CsvScan, lead: LeadRecord) -> None:
    held = scan._held_suppressions.get(lead.email, (False, False, False))
    scan._held_suppressions[lead.email] = (
        held[0] or lead.do_not_email,
        held[1] or lead.unsubscribed,
        held[2] or lead.bounced,
    )


def _with_held_suppressions(scan: CsvScan, lead: LeadRecord) -> LeadRecord:
    held = scan._held_suppressions.get(lead.email)
    if held is None:
        return lead
    return replace(
        lead,
        do_not_email=lead.do_not_email or held[0],
        unsubscribed=lead.unsubscribed or held[1],
        bounced=lead.bounced or held[2],
    )


def _check_external_id(
    lead: LeadRecord,
    external_ids: dict[str, tuple[str, int]],
    external_of_email: dict[str, str],
) -> None:
    """One external id is one lead: it may not come back with another email, and
    one email may not carry two external ids."""
    assert lead.row_number is not None
    external_id = lead.external_id
    if external_id is None:
        return
    owner = external_ids.setdefault(external_id, (lead.email, lead.row_number))
    if owner[0] != lead.email:
        message = (
            f"row {lead.row_number}: external id {external_id!r} is already used "
            f"by row {owner[1]} with another email"
        )
        raise ValueError(message)
    earlier = external_of_email.setdefault(lead.email, external_id)
    if earlier != external_id:
        message = (
            f"row {lead.row_number}: the same email came earlier with external id "
            f"{earlier!r}, not {external_id!r}"
        )
        raise ValueError(message)


def _merge(first: LeadRecord, later: LeadRecord) -> LeadRecord:
    history = dict(first.history)
    for event, count in later.history.items():
        history[event] = max(history.get(event, 0), count)
    return replace(
        first,
        external_id=first.external_id or later.external_id,
        first_name=first.first_name or later.first_name,
        last_name=first.last_name or later.last_name,
        owner_email=first.owner_email or later.owner_email,
        time_zone=first.time_zone or later.time_zone,
        do_not_email=first.do_not_email or later.do_not_email,
        attributes={**later.attributes, **first.attributes},
        history=history,
        unsubscribed=first.unsubscribed or later.unsubscribed,
        bounced=first.bounced or later.bounced,
    )


def write_rejects(path: Path, rejected: list[RejectedRow]) -> None:
    """A CSV of the rows that did not become leads of their own, and why."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "outcome", "reason"])
        for row in sorted(rejected, key=lambda reject: reject.row_number):
            outcome = "merged" if row.merged_into is not None else "rejected"
            writer.writerow([row.row_number, outcome, row.reason])
