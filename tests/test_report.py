"""The funnel report: every lead counted once, in its furthest stage; emails,
opens and clicks per journey step; imports counted once per file."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlmodel import Session

from core.db import get_engine
from models.tables import (
    CohortImport,
    EmailSend,
    Lead,
    LeadEvent,
    SalesHandoff,
    utcnow,
)
from starter.report import build_funnel, draw_chart, print_funnel
from tests.databases import create_fresh_database


@pytest.fixture(scope="module")
def report_database(database_url: str) -> Iterator[str]:
    url = create_fresh_database(database_url, "report")
    now = utcnow()
    with Session(get_engine(url)) as session:
        leads = {
            name: Lead(email=f"{name}@example.com", created_at=now - timedelta(hours=3))
            for name in ("engaged", "quiet", "mql", "customer", "emailed", "new")
        }
        leads["quiet"].do_not_email = True
        session.add_all(leads.values())
        session.flush()
        ids = {name: lead.id for name, lead in leads.items()}

        def send(name: str, step: str, status: str = "sent") -> EmailSend:
            return EmailSend(
                idempotency_key=f"lead-{ids[name]}:welcome:{step}:1",
                lead_id=ids[name],
                journey="welcome",
                step=step,
                template=step,
                status=status,
            )

        def event(name: str, kind: str, key: str, **properties: str) -> LeadEvent:
            return LeadEvent(
                dedupe_key=key,
                lead_id=ids[name],
                type=kind,
                source="test",
                properties=properties,
                occurred_at=now,
            )

        session.add_all(
            [
                send("engaged", "welcome"),
                send("engaged", "getting-started"),
                send("emailed", "welcome"),
                send("mql", "welcome"),
                send("quiet", "welcome", status="suppressed"),
                event(
                    "engaged",
                    "email_open",
                    "open-1",
                    idempotency_key=f"lead-{ids['engaged']}:welcome:welcome:1",
                ),
                event(
                    "engaged",
                    "email_click",
                    "click-1",
                    idempotency_key=f"lead-{ids['engaged']}:welcome:welcome:1",
                ),
                # A mail-privacy proxy's open is a receipt, not engagement.
                event(
                    "emailed",
                    "machine_open",
                    "machine-1",
                    idempotency_key=f"lead-{ids['emailed']}:welcome:welcome:1",
                ),
                event("customer", "purchase", "purchase-1"),
                SalesHandoff(
                    lead_id=ids["mql"],
                    episode=1,
                    owner_email="sales@example.com",
                    score=60,
                    created_at=now - timedelta(hours=1),
                ),
            ]
        )
        for rejected in (2, 2):
            # The same file imported twice counts once.
            session.add(
                CohortImport(
                    file_name="a.csv",
                    file_sha256="a" * 64,
                    journey="welcome",
                    rows=10,
                    accepted=7,
                    merged=1,
                    rejected=rejected,
                )
            )
        session.add(
            CohortImport(
                file_name="b.csv",
                file_sha256="b" * 64,
                journey="welcome",
                rows=5,
                accepted=4,
                merged=0,
                rejected=1,
            )
        )
        session.commit()
    yield url
    get_engine(url).dispose()


def test_each_lead_is_counted_once_in_its_furthest_stage(report_database: str) -> None:
    funnel = build_funnel(report_database)

    assert funnel.by_stage == {
        "customer": 1,
        "suppressed": 1,
        "mql": 1,
        "engaged": 1,
        "emailed": 1,
        "new": 1,
    }
    assert funnel.leads == 6
    assert funnel.suppressed["do_not_email"] == 1
    assert funnel.suppressed["any_reason"] == 1


def test_mql_rate_and_time_to_mql_come_from_first_handoffs(
    report_database: str,
) -> None:
    funnel = build_funnel(report_database)

    assert funnel.mql_leads == 1
    assert funnel.mql_rate == pytest.approx(1 / 6)
    assert funnel.time_to_mql_median == timedelta(hours=2)


def test_emails_opens_and_clicks_are_counted_per_step(report_database: str) -> None:
    funnel = build_funnel(report_database, journey="welcome")

    lines = {line.step: line for line in funnel.steps}
    assert (lines["welcome"].sent, lines["welcome"].suppressed) == (3, 1)
    assert (lines["welcome"].opened, lines["welcome"].clicked) == (1, 1)
    assert (lines["getting-started"].sent, lines["getting-started"].opened) == (1, 0)
    assert build_funnel(report_database, journey="other").steps == []


def test_rejected_rows_count_the_latest_run_of_each_file(report_database: str) -> None:
    funnel = build_funnel(report_database)

    assert (funnel.imported_files, funnel.imported_rows) == (2, 15)
    assert (funnel.accepted_rows, funnel.merged_rows, funnel.rejected_rows) == (
        11,
        1,
        3,
    )


def test_report_prints_a_table_and_draws_a_png(
    report_database: str, tmp_path: Path
) -> None:
    funnel = build_funnel(report_database)
    console = Console(record=True, width=100)

    print_funnel(funnel, console)
    draw_chart(funnel, tmp_path / "funnel.png")

    text = console.export_text()
    assert "MQL rate: 1 of 6 leads (16.7%)" in text
    assert "time to MQL: median 2.0 h" in text
    assert (tmp_path / "funnel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
