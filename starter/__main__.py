"""`python -m starter cohort FILE.csv`, `python -m starter event LEAD TYPE`,
`python -m starter journeys validate`."""

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import structlog

from core.catalog import DefinitionError, load_journey, load_scoring
from core.db import resolve_database_url, upgrade
from core.enrolment import LeadRecord, start_cohort, upsert_leads
from core.intake import IncomingEvent, deliver_event, store_event
from core.logs import configure_logging
from core.settings import Settings, get_settings
from core.temporal import connect, journey_url
from starter.csv_leads import RejectedRow, read_leads

log = structlog.get_logger("starter")


async def run_cohort(settings: Settings, path: Path, journey_name: str) -> int:
    journey = load_journey(settings.journeys_dir, journey_name)
    scoring = load_scoring(settings.journeys_dir)
    database_url = resolve_database_url(settings)
    upgrade(database_url)

    leads: list[LeadRecord] = []
    rejected: list[RejectedRow] = []
    for item in read_leads(path):
        (rejected if isinstance(item, RejectedRow) else leads).append(item)  # type: ignore[arg-type]
    for reject in rejected:
        print(f"row {reject.row_number}: {reject.reason}", file=sys.stderr)

    lead_ids = upsert_leads(database_url, leads)
    client = await connect(settings)
    outcome = await start_cohort(
        client, settings.temporal_task_queue, lead_ids, journey, scoring
    )
    print(
        f"cohort {path.name}: {len(leads)} leads accepted, {len(rejected)} rows "
        f"rejected; {outcome.started} journeys started, "
        f"{outcome.already_enrolled} already enrolled"
    )
    return 0


async def send_event(
    settings: Settings, lead: str, event_type: str, event_id: str | None
) -> int:
    database_url = resolve_database_url(settings)
    upgrade(database_url)
    lead_id, email = (int(lead), None) if lead.isdigit() else (None, lead)
    stored = store_event(
        database_url,
        IncomingEvent(
            dedupe_key=event_id or f"cli-{uuid.uuid4()}",
            type=event_type,
            occurred_at=datetime.now(UTC),
            source="cli",
            lead_id=lead_id,
            email=email,
        ),
    )
    if stored.lead_id is None:
        print(f"no lead matches {lead!r}; the event is kept as unmatched")
        return 1
    if not stored.created:
        print(f"event {event_id} was already received; nothing to do")
        return 0
    client = await connect(settings)
    status = await deliver_event(client, database_url, stored.id)
    print(f"{event_type} for lead {stored.lead_id}: {status}")
    print(f"journey: {journey_url(settings, stored.lead_id)}")
    return 0


def validate_journeys(settings: Settings) -> int:
    failures = 0
    for path in sorted(settings.journeys_dir.glob("*.yaml")):
        try:
            if path.name == "scoring.yaml":
                load_scoring(settings.journeys_dir)
            else:
                load_journey(settings.journeys_dir, path.stem)
            print(f"ok    {path.name}")
        except DefinitionError as error:
            failures += 1
            print(f"error {error}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="starter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    cohort = commands.add_parser("cohort", help="start one journey per CSV row")
    cohort.add_argument("file", type=Path)
    cohort.add_argument("--journey", default="welcome")

    event = commands.add_parser("event", help="send one event to a lead")
    event.add_argument("lead", help="lead id or email")
    event.add_argument("type", help="event type, such as demo_request")
    event.add_argument("--id", dest="event_id", help="event id (deduplicated)")

    journeys = commands.add_parser("journeys", help="journey definitions")
    journeys.add_argument("action", choices=["validate"])

    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        if args.command == "cohort":
            return asyncio.run(run_cohort(settings, args.file, args.journey))
        if args.command == "event":
            return asyncio.run(
                send_event(settings, args.lead, args.type, args.event_id)
            )
        return validate_journeys(settings)
    except (DefinitionError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
