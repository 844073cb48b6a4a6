"""The cohort command against real servers: upserts, dry runs, cohorts from the
database, and a run stopped half-way that a re-run carries on. No worker runs
here: these tests are about starting journeys, not running them."""

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from core import enrolment
from core.db import get_engine
from core.enrolment import (
    LeadFilter,
    LeadRecord,
    UpsertConflict,
    UpsertedLead,
    start_journey,
    upsert_leads,
)
from core.settings import Settings
from models.tables import CohortImport, Lead, LeadEvent
from starter.cohort import run_cohort, run_database_cohort
from starter.show import run_show
from tests.factories import JOURNEYS, made_up_lead, write_leads_csv


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, dev_env: WorkflowEnvironment, task_queue: str
) -> Settings:
    return Settings(
        database_url=database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_task_queue=task_queue,
        data_dir=tmp_path / "var",
        journeys_dir=JOURNEYS,
    )


def run_id() -> str:
    return uuid.uuid4().hex[:10]


async def journeys_on(env: WorkflowEnvironment, task_queue: str) -> int:
    return (await env.client.count_workflows(f"TaskQueue = '{task_queue}'")).count


def test_upsert_matches_by_external_id_then_email_and_reports_conflicts(
    database_url: str,
) -> None:
    run = run_id()
    first = upsert_leads(
        database_url,
        [
            LeadRecord(email=f"a-{run}@example.com", external_id=f"A{run}"),
            LeadRecord(email=f"b-{run}@example.com", external_id=f"B{run}"),
        ],
    )
    assert all(isinstance(item, UpsertedLead) and item.created for item in first)

    again = upsert_leads(
        database_url,
        [
            # The CRM changed this lead's address: same external id, new email.
            LeadRecord(email=f"a-new-{run}@example.com", external_id=f"A{run}"),
            # This external id is A's, but the email is B's: two leads at once.
            LeadRecord(
                email=f"b-{run}@example.com", external_id=f"A{run}", row_number=3
            ),
        ],
    )

    moved, conflict = again
    assert isinstance(moved, UpsertedLead)
    assert not moved.created
    assert isinstance(first[0], UpsertedLead)
    assert moved.lead_id == first[0].lead_id
    assert isinstance(conflict, UpsertConflict)
    assert conflict.reason.startswith(f"row 3: external id 'A{run}' belongs to lead")
    with Session(get_engine(database_url)) as session:
        lead = session.get(Lead, moved.lead_id)
        assert lead is not None
        assert lead.email == f"a-new-{run}@example.com"


def test_an_import_never_lifts_a_suppression(database_url: str) -> None:
    run = run_id()
    email = f"quiet-{run}@example.com"
    (first,) = upsert_leads(
        database_url,
        [LeadRecord(email=email, do_not_email=True, unsubscribed=True)],
    )

    upsert_leads(database_url, [LeadRecord(email=email.upper(), do_not_email=False)])

    assert isinstance(first, UpsertedLead)
    with Session(get_engine(database_url)) as session:
        lead = session.get(Lead, first.lead_id)
        assert lead is not None
        assert lead.do_not_email
        assert lead.unsubscribed_at is not None


def test_seeded_history_is_stored_once_however_often_it_is_imported(
    database_url: str,
) -> None:
    run = run_id()
    record = LeadRecord(
        email=f"seen-{run}@example.com", history={"page_visit": 3, "email_open": 1}
    )

    (first,) = upsert_leads(database_url, [record])
    upsert_leads(database_url, [record])

    assert isinstance(first, UpsertedLead)
    with Session(get_engine(database_url)) as session:
        events = session.exec(
            select(LeadEvent).where(LeadEvent.lead_id == first.lead_id)
        ).all()
    assert sorted(event.type for event in events) == [
        "email_open",
        "page_visit",
        "page_visit",
        "page_visit",
    ]


async def test_dry_run_checks_the_file_and_changes_nothing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_id()
    cohort = write_leads_csv(
        tmp_path / "cohort.csv",
        [
            made_up_lead(1, email=f"dry-{run}@example.com", external_id=f"D{run}"),
            made_up_lead(2, email="no address", external_id=f"E{run}"),
        ],
    )

    await run_cohort(
        settings, cohort, "welcome", dry_run=True, rejects_path=tmp_path / "rej.csv"
    )

    output = capsys.readouterr()
    assert "would upsert 1 leads" in output.out
    assert "row 3: email 'no address' is not an address" in output.err
    assert "row 3" in (tmp_path / "rej.csv").read_text()
    assert settings.database_url is not None
    with Session(get_engine(settings.database_url)) as session:
        found = session.exec(
            select(Lead).where(Lead.email == f"dry-{run}@example.com")
        ).first()
    assert found is None


async def test_a_cohort_stopped_half_way_is_carried_on_by_a_rerun(
    settings: Settings,
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = run_id()
    size = 300
    cohort = write_leads_csv(
        tmp_path / "cohort.csv",
        [
            made_up_lead(
                n, email=f"stop-{run}-{n}@example.com", external_id=f"S{run}{n}"
            )
            for n in range(size)
        ],
    )
    queue = settings.temporal_task_queue
    twenty_started = asyncio.Event()
    starts = 0

    async def counted_start(*args: Any, **kwargs: Any) -> bool:
        nonlocal starts
        started = await start_journey(*args, **kwargs)
        starts += 1
        if starts >= 20:
            twenty_started.set()
            # Hold the rest back, as a slow server would, until Ctrl-C.
            await asyncio.Event().wait()
        return started

    monkeypatch.setattr(enrolment, "start_journey", counted_start)
    first = asyncio.create_task(
        run_cohort(settings, cohort, "welcome", concurrency=8, client=dev_env.client)
    )
    await asyncio.wait_for(twenty_started.wait(), timeout=60)

    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    stopped = capsys.readouterr()
    monkeypatch.undo()
    await run_cohort(settings, cohort, "welcome", client=dev_env.client)
    second = capsys.readouterr().out

    assert "run the same command again to carry on" in stopped.err
    started_again = int(second.split(" journeys started, ")[0].rsplit(" ", 1)[-1])
    already = int(second.split(" journeys started, ")[1].split(" ")[0])
    assert started_again + already == size
    assert 20 <= already < size - 8
    # One journey per lead, never two.
    for _ in range(50):
        if await journeys_on(dev_env, queue) == size:
            break
        await asyncio.sleep(0.2)
    assert await journeys_on(dev_env, queue) == size
    assert settings.database_url is not None
    with Session(get_engine(settings.database_url)) as session:
        runs = session.exec(
            select(CohortImport)
            .where(CohortImport.file_name == "cohort.csv")
            .order_by(CohortImport.id)  # type: ignore[arg-type]
        ).all()
    assert [record.completed for record in runs[-2:]] == [False, True]


async def test_a_cohort_from_the_database_starts_the_matching_leads_only(
    settings: Settings, dev_env: WorkflowEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_id()
    assert settings.database_url is not None
    upsert_leads(
        settings.database_url,
        [
            LeadRecord(
                email=f"db-{run}-{n}@example.com",
                attributes={"campaign": f"spring-{run}" if n < 3 else "other"},
            )
            for n in range(5)
        ],
    )

    await run_database_cohort(
        settings, LeadFilter(attributes={"campaign": f"spring-{run}"}), "welcome"
    )
    await run_database_cohort(
        settings, LeadFilter(attributes={"campaign": f"spring-{run}"}), "welcome"
    )

    first, second = capsys.readouterr().out.strip().splitlines()[-2:]
    assert first.endswith("3 leads matched; 3 journeys started, 0 already enrolled")
    assert second.endswith("3 leads matched; 0 journeys started, 3 already enrolled")


async def test_show_prints_a_lead_without_a_journey_and_its_ui_link(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_id()
    assert settings.database_url is not None
    (lead,) = upsert_leads(
        settings.database_url,
        [LeadRecord(email=f"show-{run}@example.com", external_id=f"SH{run}")],
    )

    code = await run_show(settings, f"SH{run}")

    output = capsys.readouterr().out
    assert code == 0
    assert isinstance(lead, UpsertedLead)
    assert f"lead {lead.lead_id}" in output
    assert "journey: none started" in output
    assert f"workflows/lead-{lead.lead_id}" in output
