"""The main job on real input: 2,038 real leads from a CRM export, imported with
the shipped mapping into a running stack (the Temporal dev server, a fresh
database on embedded PostgreSQL, a real worker, the outbox), one journey each.

The file is read from the shared data folder, never copied into the project.
"""

import asyncio
import bisect
import csv
import time
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlmodel import Session, col, select
from temporalio.testing import WorkflowEnvironment

from core.db import get_engine
from core.settings import Settings
from models.tables import EmailSend, Lead
from starter.cohort import run_cohort
from starter.report import build_funnel, print_funnel
from tests.conftest import SHARED_DATA, project_worker
from tests.databases import create_fresh_database
from tests.factories import JOURNEYS

REAL_LEADS = SHARED_DATA / "leads-xeducation-sample.csv"
MAPPING = Path(__file__).resolve().parent.parent / "mappings" / "xeducation.yaml"

# ROC AUC of the first scores against the file's `Converted` column. Measured
# at 0.783 with the shipped mapping and scoring rules (the same as computing the
# rules offline on these rows). With only the rules the project started with
# (source and occupation fit, page visits) it measured 0.696, and 0.5 is a coin
# toss. The floor sits between: it fails when the seeded history (time on the
# website, email activity) or the origin rule stops reaching the score, and
# leaves room for reasonable edits to the points. The rules were chosen with
# this file in view, so 0.783 is an in-sample figure, not a forecast.
AUC_FLOOR = 0.74

pytestmark = [
    pytest.mark.skipif(
        not REAL_LEADS.exists(),
        reason="the shared real lead data is not on this machine",
    ),
    # TODO: about 2,000 journeys took 4 min 50 s on this 2-core machine while
    # other test runs shared it, over the 2 minutes aimed for; not yet
    # measured on an idle machine.
    pytest.mark.timeout(900),
]


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """A database of its own, so the funnel counts only this import's leads."""
    url = create_fresh_database(database_url, "real")
    yield url
    get_engine(url).dispose()


@pytest.fixture
def settings(
    tmp_path: Path, fresh_database: str, dev_env: WorkflowEnvironment, task_queue: str
) -> Settings:
    return Settings(
        database_url=fresh_database,
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


def file_rows() -> list[dict[str, str]]:
    with REAL_LEADS.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def roc_auc(scored: list[tuple[float, bool]]) -> float:
    """Mann-Whitney: the chance that a converted lead outscores one that did
    not, ties counting half."""
    negatives = sorted(score for score, converted in scored if not converted)
    positives = [score for score, converted in scored if converted]
    wins = 0.0
    for score in positives:
        below = bisect.bisect_left(negatives, score)
        tied = bisect.bisect_right(negatives, score) - below
        wins += below + tied / 2
    return wins / (len(positives) * len(negatives))


def test_roc_auc_counts_ties_as_half() -> None:
    assert roc_auc([(1, True), (0, False)]) == 1.0
    assert roc_auc([(0, True), (1, False)]) == 0.0
    assert roc_auc([(1, True), (1, False), (2, True), (0, False)]) == 0.875


async def settled(env: WorkflowEnvironment, task_queue: str, leads: int) -> float:
    """Wait until every journey has either ended or reached its first wait (so it
    has sent its first email and scored); return the seconds it took."""
    started = time.monotonic()
    query = (
        f"TaskQueue = '{task_queue}' AND (ExecutionStatus = 'Completed' "
        "OR NextTouchAt IS NOT NULL)"
    )
    while True:
        done = (await env.client.count_workflows(query)).count
        if done >= leads:
            return time.monotonic() - started
        if time.monotonic() - started > 720:
            message = f"only {done} of {leads} journeys settled within 720 s"
            raise AssertionError(message)
        await asyncio.sleep(1)


def outbox_recipients(outbox: Path) -> list[str]:
    return [
        str(message_from_bytes(path.read_bytes())["To"]).lower()
        for path in outbox.glob("*.eml")
        if not path.name.startswith("handoff_")
    ]


@pytest.mark.usefixtures("running_worker")
async def test_real_crm_export_is_imported_welcomed_scored_and_reported(
    settings: Settings,
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = settings.database_url
    assert url is not None
    rows = file_rows()
    do_not_email = {
        row["Email"].lower() for row in rows if row["Do Not Email"] == "Yes"
    }
    converted = {row["Email"].lower(): row["Converted"] == "1" for row in rows}
    rejects = tmp_path / "rejects.csv"

    began = time.monotonic()
    await run_cohort(
        settings,
        REAL_LEADS,
        "welcome",
        MAPPING,
        rejects_path=rejects,
        client=dev_env.client,
    )
    imported_in = time.monotonic() - began
    first_run = capsys.readouterr().out
    with Session(get_engine(url)) as session:
        leads = session.exec(select(Lead)).all()
    settled_in = await settled(dev_env, settings.temporal_task_queue, len(leads))

    # Every row is a lead or a listed reject.
    with rejects.open(newline="") as handle:
        rejected_rows = len(list(csv.reader(handle))) - 1
    assert len(leads) + rejected_rows == len(rows)

    with Session(get_engine(url)) as session:
        # Marketing touches go to the lead; sales handoffs go to sales.
        sends = session.exec(
            select(EmailSend).where(EmailSend.kind == "marketing")
        ).all()
        leads = session.exec(select(Lead)).all()
    email_of = {lead.id: lead.email for lead in leads}
    sent_to = {email_of[send.lead_id] for send in sends if send.status == "sent"}
    outbox = outbox_recipients(settings.outbox_dir)

    # Nobody marked Do Not Email is ever emailed: not in the database, not in
    # the outbox.
    assert len(do_not_email) > 100
    assert sent_to.isdisjoint(do_not_email)
    assert set(outbox).isdisjoint(do_not_email)

    # Unsubscribed and bounced leads are suppressed in the database; everyone
    # else who may be emailed got the first email, once.
    unsubscribed = [lead for lead in leads if lead.unsubscribed_at is not None]
    bounced = [lead for lead in leads if lead.bounced_at is not None]
    last_activity = [row["Last Activity"] for row in rows]
    assert len(unsubscribed) == last_activity.count("Unsubscribed")
    assert len(bounced) == last_activity.count("Email Bounced")
    emailable = {
        lead.email
        for lead in leads
        if not lead.do_not_email and not lead.unsubscribed_at and not lead.bounced_at
    }
    welcomed = [
        email_of[send.lead_id]
        for send in sends
        if send.step == "welcome" and send.status == "sent"
    ]
    assert sorted(welcomed) == sorted(emailable)
    assert sorted(outbox) == sorted(welcomed)

    # A second run starts nothing and sends nothing.
    with Session(get_engine(url)) as session:
        sends_before = len(session.exec(select(col(EmailSend.id))).all())
    await run_cohort(settings, REAL_LEADS, "welcome", MAPPING, client=dev_env.client)
    second_run = capsys.readouterr().out
    await asyncio.sleep(3)
    with Session(get_engine(url)) as session:
        sends_after = len(session.exec(select(col(EmailSend.id))).all())
    assert f"0 journeys started, {len(leads)} already enrolled" in second_run
    assert f"{len(leads)} journeys started, 0 already enrolled" in first_run
    assert sends_after == sends_before
    assert len(outbox_recipients(settings.outbox_dir)) == len(outbox)

    # The funnel adds up.
    funnel = build_funnel(url)
    assert sum(funnel.by_stage.values()) == funnel.leads == len(leads)
    assert funnel.imported_rows == len(rows)
    assert funnel.accepted_rows + funnel.merged_rows + funnel.rejected_rows == len(rows)
    welcome_line = next(line for line in funnel.steps if line.step == "welcome")
    assert welcome_line.sent == len(emailable)
    assert funnel.suppressed["any_reason"] == len(leads) - len(emailable)
    assert funnel.by_stage["suppressed"] == len(leads) - len(emailable)

    # The first scores rank leads that later converted above those that did not.
    auc = roc_auc([(lead.score, converted[lead.email]) for lead in leads])
    with capsys.disabled():
        print(
            f"\nreal leads: {len(rows)} rows, {len(leads)} leads, {rejected_rows} "
            f"rejected; import and starts {imported_in:.1f} s, journeys settled "
            f"{settled_in:.1f} s later; ROC AUC of first scores vs Converted: "
            f"{auc:.3f} (floor {AUC_FLOOR})"
        )
        print_funnel(funnel)
    assert auc >= AUC_FLOOR
