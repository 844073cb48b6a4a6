"""`python -m starter`: start cohorts, send an event, show a lead, print the
funnel report, validate journeys. `--help` on each command says more."""

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import structlog

from core.catalog import (
    DefinitionError,
    load_journey,
    load_linked_journeys,
    load_scoring,
    missing_templates,
)
from core.db import resolve_database_url, upgrade
from core.enrolment import LeadFilter
from core.intake import IncomingEvent, deliver_event, store_event
from core.logs import configure_logging
from core.settings import Settings, get_settings
from core.temporal import TemporalUnavailable, connect, journey_url
from starter.cohort import run_cohort, run_database_cohort
from starter.csv_leads import CsvFormatError
from starter.mapping import MappingError
from starter.report import run_report
from starter.show import run_show

__all__ = ["main", "run_cohort", "send_event"]

log = structlog.get_logger("starter")


async def send_event(
    settings: Settings, lead: str, event_type: str, event_id: str | None
) -> int:
    """Store the event, then signal it: the same path the webhook takes."""
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
                journey = load_journey(settings.journeys_dir, path.stem)
                load_linked_journeys(settings.journeys_dir, journey)
                problems = missing_templates(settings.journeys_dir, journey)
                if problems:
                    message = f"{path}: {'; '.join(problems)}"
                    raise DefinitionError(message)
            print(f"ok    {path.name}")
        except DefinitionError as error:
            failures += 1
            print(f"error {error}")
    return 1 if failures else 0


def _attribute_filter(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        message = f"expected NAME=VALUE, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return name.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="starter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    cohort = commands.add_parser(
        "cohort",
        help="start one journey per lead of a CSV export or of the database",
    )
    cohort.add_argument("file", type=Path, nargs="?", help="the CSV export")
    cohort.add_argument("--journey", default="welcome")
    cohort.add_argument(
        "--mapping", type=Path, help="column mapping (default: mappings/example.yaml)"
    )
    cohort.add_argument("--encoding", help="the file's encoding when not UTF-8")
    cohort.add_argument("--rejects", type=Path, help="write rejected rows here (CSV)")
    cohort.add_argument(
        "--dry-run", action="store_true", help="check and count; change nothing"
    )
    cohort.add_argument("--concurrency", type=int, default=32, help="starts in flight")
    cohort.add_argument(
        "--from-database",
        action="store_true",
        help="leads already in the database, filtered by the options below",
    )
    cohort.add_argument(
        "--where",
        type=_attribute_filter,
        action="append",
        default=[],
        metavar="ATTRIBUTE=VALUE",
        help="only leads whose attribute has this value (repeatable)",
    )
    cohort.add_argument("--stage", help="only leads in this stage")
    cohort.add_argument("--min-score", type=int, help="only leads scoring this or more")

    event = commands.add_parser("event", help="send one event to a lead")
    event.add_argument("lead", help="lead id or email")
    event.add_argument("type", help="event type, such as demo_request")
    event.add_argument("--id", dest="event_id", help="event id (deduplicated)")

    show = commands.add_parser("show", help="one lead's journey, score and history")
    show.add_argument("lead", help="lead id, external id or email")

    report = commands.add_parser("report", help="the funnel")
    report.add_argument("--journey", help="only this journey's emails")
    report.add_argument("--chart", type=Path, help="also draw the funnel as a PNG")

    journeys = commands.add_parser("journeys", help="journey definitions")
    journeys.add_argument("action", choices=["validate"])
    return parser


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "cohort":
        if args.from_database:
            lead_filter = LeadFilter(
                attributes=dict(args.where), stage=args.stage, min_score=args.min_score
            )
            return await run_database_cohort(
                settings,
                lead_filter,
                args.journey,
                dry_run=args.dry_run,
                concurrency=args.concurrency,
            )
        if args.file is None:
            print("error: give a CSV file, or --from-database", file=sys.stderr)
            return 2
        return await run_cohort(
            settings,
            args.file,
            args.journey,
            args.mapping,
            encoding=args.encoding,
            rejects_path=args.rejects,
            dry_run=args.dry_run,
            concurrency=args.concurrency,
        )
    if args.command == "event":
        return await send_event(settings, args.lead, args.type, args.event_id)
    if args.command == "show":
        return await run_show(settings, args.lead)
    return run_report(settings, journey=args.journey, chart=args.chart)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        if args.command == "journeys":
            return validate_journeys(settings)
        return asyncio.run(_run(args, settings))
    except (
        DefinitionError,
        MappingError,
        CsvFormatError,
        ValueError,
        FileNotFoundError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TemporalUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing half-done is left behind", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
