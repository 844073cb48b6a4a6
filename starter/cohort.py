"""Starting a cohort: from a CSV export through a mapping, or from the database.

Leads are upserted and started in batches, so a cohort of any size holds one
batch in memory. A re-run carries on where an interrupted run stopped: leads are
upserted again (no change) and journeys already started are counted as already
enrolled, never started twice.
"""

import asyncio
import hashlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from sqlmodel import Session
from temporalio.client import Client

from core.catalog import load_journey, load_linked_journeys, load_scoring
from core.db import get_engine, resolve_database_url, upgrade
from core.enrolment import (
    CohortOutcome,
    Enrolment,
    LeadFilter,
    LeadRecord,
    UpsertConflict,
    UpsertedLead,
    enrolments_for,
    lead_ids_matching,
    start_cohort,
    upsert_leads,
)
from core.settings import Settings
from core.temporal import connect
from models.journey import Journey, ScoringRules
from models.tables import CohortImport, utcnow
from starter.csv_leads import CsvLeads, CsvScan, RejectedRow, write_rejects
from starter.mapping import DEFAULT_MAPPING, load_mapping

log = structlog.get_logger("starter.cohort")

BATCH_SIZE = 500
REJECTS_SHOWN = 20


class _RateColumn(ProgressColumn):
    """Journeys started per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )


@dataclass
class _Run:
    """What one run did, counted as it goes (never a list of every lead)."""

    created: int = 0
    updated: int = 0
    outcome: CohortOutcome = field(default_factory=CohortOutcome)
    conflicts: list[RejectedRow] = field(default_factory=list)
    interrupted: bool = False


async def run_cohort(
    settings: Settings,
    path: Path,
    journey_name: str,
    mapping_path: Path | None = None,
    *,
    encoding: str | None = None,
    rejects_path: Path | None = None,
    dry_run: bool = False,
    concurrency: int = 32,
    client: Client | None = None,
) -> int:
    """Import a CSV export and start one journey per accepted lead."""
    journey = load_journey(settings.journeys_dir, journey_name)
    scoring = load_scoring(settings.journeys_dir)
    mapping = load_mapping(mapping_path or DEFAULT_MAPPING)
    leads = CsvLeads(path, mapping, encoding)
    scan = leads.scan()
    _print_scan(path, scan)

    if dry_run:
        print(
            f"dry run: would upsert {scan.accepted} leads ({scan.do_not_email} "
            f"do not email, {scan.unsubscribed_or_bounced} unsubscribed or bounced), "
            f"seed {scan.seeded_events} history events and start up to "
            f"{scan.accepted} {journey.name} journeys; nothing was written or started"
        )
        if rejects_path is not None:
            write_rejects(rejects_path, scan.rejected)
            print(f"rejects: {rejects_path}")
        return 0

    database_url = resolve_database_url(settings)
    upgrade(database_url)
    client = client or await connect(settings)
    run = _Run()
    record = _record_import(database_url, path, journey.name, scan)

    def upserted_batches() -> Iterator[list[int]]:
        for batch in _batched(leads.leads(), BATCH_SIZE):
            lead_ids: list[int] = []
            for item in upsert_leads(database_url, batch):
                if isinstance(item, UpsertConflict):
                    assert item.row_number is not None
                    run.conflicts.append(RejectedRow(item.row_number, item.reason))
                    continue
                assert isinstance(item, UpsertedLead)
                lead_ids.append(item.lead_id)
                if item.created:
                    run.created += 1
                else:
                    run.updated += 1
            yield lead_ids

    try:
        await _start_batches(
            client,
            settings.temporal_task_queue,
            database_url,
            upserted_batches(),
            settings.journeys_dir,
            journey,
            scoring,
            total=scan.accepted,
            concurrency=concurrency,
            run=run,
        )
    finally:
        for conflict in run.conflicts:
            print(conflict.describe(), file=sys.stderr)
        _finish_import(database_url, record, run)
        if rejects_path is not None:
            write_rejects(rejects_path, scan.rejected + run.conflicts)
            print(f"rejects: {rejects_path}")
    accepted = scan.accepted - len(run.conflicts)
    print(
        f"cohort {path.name}: {accepted} leads accepted ({run.created} new, "
        f"{run.updated} updated), {len(scan.invalid) + len(run.conflicts)} rows "
        f"rejected, {len(scan.merged)} rows merged; {run.outcome.started} journeys "
        f"started, {run.outcome.already_enrolled} already enrolled"
    )
    return 0


async def run_database_cohort(
    settings: Settings,
    lead_filter: LeadFilter,
    journey_name: str,
    *,
    dry_run: bool = False,
    concurrency: int = 32,
) -> int:
    """Start one journey for every lead in the database that matches."""
    journey = load_journey(settings.journeys_dir, journey_name)
    scoring = load_scoring(settings.journeys_dir)
    database_url = resolve_database_url(settings)
    upgrade(database_url)
    total = sum(len(batch) for batch in lead_ids_matching(database_url, lead_filter))
    if dry_run:
        print(
            f"dry run: {total} leads match; would start up to {total} "
            f"{journey.name} journeys; nothing was started"
        )
        return 0
    client = await connect(settings)
    run = _Run()
    await _start_batches(
        client,
        settings.temporal_task_queue,
        database_url,
        lead_ids_matching(database_url, lead_filter),
        settings.journeys_dir,
        journey,
        scoring,
        total=total,
        concurrency=concurrency,
        run=run,
    )
    print(
        f"cohort from the database: {total} leads matched; {run.outcome.started} "
        f"journeys started, {run.outcome.already_enrolled} already enrolled"
    )
    return 0


async def _start_batches(
    client: Client,
    task_queue: str,
    database_url: str,
    batches: Iterable[list[int]],
    journeys_dir: Path,
    journey: Journey,
    scoring: ScoringRules,
    *,
    total: int,
    concurrency: int,
    run: _Run,
) -> None:
    linked = load_linked_journeys(journeys_dir, journey)
    console = Console(stderr=True)
    with _progress(console) as progress:
        task = progress.add_task(f"starting {journey.name}", total=total)

        def advance(_enrolment: Enrolment, started: bool) -> None:
            progress.advance(task)

        try:
            for lead_ids in batches:
                if not lead_ids:
                    continue
                outcome = await start_cohort(
                    client,
                    task_queue,
                    enrolments_for(database_url, lead_ids),
                    journey,
                    scoring,
                    concurrency=concurrency,
                    on_start=advance,
                    linked_journeys=linked,
                )
                run.outcome.started += outcome.started
                run.outcome.already_enrolled += outcome.already_enrolled
        except asyncio.CancelledError:
            # Ctrl-C: starts in flight are cancelled; each either happened or
            # did not, and a re-run tells them apart by the workflow id.
            run.interrupted = True
            done = run.outcome.started + run.outcome.already_enrolled
            console.print(
                f"stopped after {done} of {total} leads; run the same command "
                "again to carry on"
            )
            log.warning("cohort.interrupted", done=done, total=total)
            raise


def _batched(records: Iterable[LeadRecord], size: int) -> Iterator[list[LeadRecord]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def _print_scan(path: Path, scan: CsvScan) -> None:
    print(
        f"read {path.name} as {scan.encoding}: {scan.data_rows} rows, "
        f"{scan.blank_lines} blank lines skipped; {scan.accepted} leads, "
        f"{len(scan.merged)} rows merged into an earlier row with the same email, "
        f"{len(scan.invalid)} rows rejected"
    )
    if scan.merged:
        print(
            "merged rows: the first row's values win, later rows fill only empty "
            "fields; do-not-email, unsubscribe and bounce hold if any row has "
            "them; history keeps the largest count of each event"
        )
    shown = sorted(scan.rejected, key=lambda reject: reject.row_number)
    for reject in shown[:REJECTS_SHOWN]:
        print(reject.describe(), file=sys.stderr)
    if len(shown) > REJECTS_SHOWN:
        print(
            f"... and {len(shown) - REJECTS_SHOWN} more; --rejects FILE lists all",
            file=sys.stderr,
        )
    for value, count in scan.unmapped_activities.most_common():
        log.info("cohort.activity_not_mapped", value=value, rows=count)


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


def _record_import(
    database_url: str, path: Path, journey: str, scan: CsvScan
) -> CohortImport:
    record = CohortImport(
        file_name=path.name,
        file_sha256=_fingerprint(path),
        journey=journey,
        rows=scan.data_rows,
        accepted=scan.accepted,
        merged=len(scan.merged),
        rejected=len(scan.invalid),
    )
    with Session(get_engine(database_url), expire_on_commit=False) as session:
        session.add(record)
        session.commit()
    return record


def _finish_import(database_url: str, record: CohortImport, run: _Run) -> None:
    with Session(get_engine(database_url)) as session:
        row = session.get(CohortImport, record.id)
        assert row is not None
        row.accepted = record.accepted - len(run.conflicts)
        row.rejected = record.rejected + len(run.conflicts)
        row.started = run.outcome.started
        row.already_enrolled = run.outcome.already_enrolled
        row.completed = not run.interrupted
        row.finished_at = utcnow()
        session.add(row)
        session.commit()
