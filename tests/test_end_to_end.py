"""The whole path on real parts: the dev server, embedded PostgreSQL, the real
activities and the outbox, driven through the starter's commands."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlmodel import Session, func, select
from temporalio.testing import WorkflowEnvironment

from core.db import get_engine
from core.settings import Settings
from models.tables import EmailSend, Lead, SalesHandoff
from starter.__main__ import run_cohort, send_event
from tests.conftest import project_worker
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


@pytest.fixture
async def running_worker(
    settings: Settings, dev_env: WorkflowEnvironment
) -> AsyncIterator[None]:
    async with project_worker(dev_env.client, settings):
        yield


async def eventually(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold within the time limit")
        await asyncio.sleep(0.2)


def count(database_url: str, statement: object) -> int:
    with Session(get_engine(database_url)) as session:
        return int(session.exec(statement).one())  # type: ignore[call-overload]


def lead_id_for(database_url: str, email: str) -> int:
    with Session(get_engine(database_url)) as session:
        lead = session.exec(select(Lead).where(Lead.email == email)).one()
        assert lead.id is not None
        return lead.id


@pytest.mark.usefixtures("running_worker")
async def test_cohort_is_welcomed_and_one_event_hands_one_lead_to_sales(
    settings: Settings, tmp_path: Path
) -> None:
    url = settings.database_url
    assert url is not None
    run = tmp_path.name[-12:]
    emails = [f"e2e-{run}-{n}@example.com" for n in range(3)]
    cohort = write_leads_csv(
        tmp_path / "cohort.csv",
        [
            made_up_lead(n, email=email, external_id=f"{run}-{n}", lead_source=source)
            for n, (email, source) in enumerate(
                zip(emails, ["Reference", "Google", "Google"], strict=True)
            )
        ],
    )
    lead_ids = []

    await run_cohort(settings, cohort, "welcome")
    lead_ids = [lead_id_for(url, email) for email in emails]
    welcome_sent = (
        select(func.count())
        .select_from(EmailSend)
        .where(EmailSend.lead_id.in_(lead_ids))  # type: ignore[attr-defined]
        .where(EmailSend.step == "welcome", EmailSend.status == "sent")
    )
    await eventually(lambda: count(url, welcome_sent) == 3)

    outbox = sorted(path.name for path in settings.outbox_dir.glob("*.eml"))
    assert outbox == [f"lead-{lead_id}_welcome_welcome_1.eml" for lead_id in lead_ids]

    # The first lead has 20 fit points; a demo request (40) takes it past 50.
    hot_lead = lead_ids[0]
    await send_event(settings, str(hot_lead), "demo_request", f"{run}-demo")
    handoffs = (
        select(func.count())
        .select_from(SalesHandoff)
        .where(SalesHandoff.lead_id == hot_lead)
    )
    await eventually(lambda: count(url, handoffs) == 1)

    # More interest within the same MQL episode hands nothing over again.
    await send_event(settings, str(hot_lead), "demo_request", f"{run}-demo-2")
    await send_event(settings, str(hot_lead), "demo_request", f"{run}-demo-2")
    await eventually(
        lambda: count(url, select(Lead.score).where(Lead.id == hot_lead)) == 100
    )
    await asyncio.sleep(1)
    assert count(url, handoffs) == 1
    handoff_files = list(settings.outbox_dir.glob("handoff_*.eml"))
    assert [path.name for path in handoff_files] == [
        f"handoff_lead-{hot_lead}_episode-1.eml"
    ]
    assert "demo_request" in handoff_files[0].read_text()

    # Nobody else crossed the threshold.
    others = (
        select(func.count())
        .select_from(SalesHandoff)
        .where(SalesHandoff.lead_id.in_(lead_ids[1:]))  # type: ignore[attr-defined]
    )
    assert count(url, others) == 0


@pytest.mark.usefixtures("running_worker")
async def test_running_a_cohort_again_starts_and_sends_nothing_new(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = settings.database_url
    assert url is not None
    run = tmp_path.name[-12:]
    rows = [
        made_up_lead(n, email=f"again-{run}-{n}@example.com", external_id=f"a{run}{n}")
        for n in range(2)
    ]
    cohort = write_leads_csv(tmp_path / "cohort.csv", rows)
    sends = select(func.count()).select_from(EmailSend)

    await run_cohort(settings, cohort, "welcome")
    first = capsys.readouterr().out
    lead_ids = [lead_id_for(url, row["email"]) for row in rows]
    mine = sends.where(EmailSend.lead_id.in_(lead_ids))  # type: ignore[attr-defined]
    await eventually(lambda: count(url, mine) == 2)
    await run_cohort(settings, cohort, "welcome")
    second = capsys.readouterr().out
    await asyncio.sleep(2)

    assert "2 journeys started, 0 already enrolled" in first
    assert "0 journeys started, 2 already enrolled" in second
    assert count(url, mine) == 2
