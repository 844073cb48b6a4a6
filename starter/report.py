"""`starter report`: the funnel, from the database (the record for reporting).

Every lead is counted once, in the furthest stage it has reached, checked in
this order: customer (a purchase or a won deal), suppressed (do not email,
unsubscribed, bounced, complained, invalid address), mql (handed to sales at
least once), engaged (any event from the lead, history seeded by an import
included), emailed (at least one marketing email sent), new. So the stages add
up to the number of leads.
"""

import statistics
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlmodel import Session

from core.db import get_engine, resolve_database_url, upgrade
from core.settings import Settings

# TODO: stages are derived from database records; the journeys' own stage
# (the LeadStage search attribute) is not consulted, so a lead paused or moved
# by an operator shows where its records put it.
STAGES = ("customer", "suppressed", "mql", "engaged", "emailed", "new")
CUSTOMER_EVENTS = ("purchase", "sales_won")
OPEN_EVENTS = ("email_open",)
CLICK_EVENTS = ("email_click",)
# Receipts about an email, not something the lead did.
RECEIPT_EVENTS = (
    "email_delivered",
    "email_deferred",
    "email_dropped",
    "machine_open",
    "scanner_click",
)

_LEAD_STAGES = text(
    """
    SELECT stage, count(*) FROM (
      SELECT CASE
        WHEN EXISTS (SELECT 1 FROM events e WHERE e.lead_id = l.id
                     AND e.type = ANY(:customer)) THEN 'customer'
        WHEN l.do_not_email OR l.unsubscribed_at IS NOT NULL
             OR l.bounced_at IS NOT NULL OR l.complained_at IS NOT NULL
             OR l.email_invalid_at IS NOT NULL THEN 'suppressed'
        WHEN EXISTS (SELECT 1 FROM sales_handoffs h WHERE h.lead_id = l.id)
             THEN 'mql'
        WHEN EXISTS (SELECT 1 FROM events e WHERE e.lead_id = l.id
                     AND NOT e.type = ANY(:receipts)) THEN 'engaged'
        WHEN EXISTS (SELECT 1 FROM email_sends s WHERE s.lead_id = l.id
                     AND s.kind = 'marketing' AND s.status = 'sent') THEN 'emailed'
        ELSE 'new'
      END AS stage
      FROM leads l
    ) staged
    GROUP BY stage
    """
)

_SUPPRESSIONS = text(
    """
    SELECT
      count(*) FILTER (WHERE do_not_email) AS do_not_email,
      count(*) FILTER (WHERE unsubscribed_at IS NOT NULL) AS unsubscribed,
      count(*) FILTER (WHERE bounced_at IS NOT NULL) AS bounced,
      count(*) FILTER (WHERE complained_at IS NOT NULL) AS complained,
      count(*) FILTER (WHERE email_invalid_at IS NOT NULL) AS invalid_address,
      count(*) FILTER (WHERE do_not_email OR unsubscribed_at IS NOT NULL
                       OR bounced_at IS NOT NULL OR complained_at IS NOT NULL
                       OR email_invalid_at IS NOT NULL) AS any_reason
    FROM leads
    """
)

_FIRST_HANDOFFS = text(
    """
    SELECT extract(epoch FROM min(h.created_at) - l.created_at)
    FROM sales_handoffs h JOIN leads l ON l.id = h.lead_id
    GROUP BY l.id, l.created_at
    """
)

# Opens and clicks belong to the send they name: by the idempotency key the
# send carried in its custom args, or by the provider's message id.
_STEPS = text(
    """
    SELECT s.journey, s.step,
      count(*) FILTER (WHERE s.status = 'sent') AS sent,
      count(*) FILTER (WHERE s.status = 'suppressed') AS suppressed,
      count(*) FILTER (WHERE s.status = 'sent' AND EXISTS (
        SELECT 1 FROM events e WHERE e.lead_id = s.lead_id
          AND e.type = ANY(:opens) AND (
            e.properties ->> 'idempotency_key' = s.idempotency_key
            OR (e.message_id IS NOT NULL
                AND s.provider_message_id LIKE e.message_id || '%')))) AS opened,
      count(*) FILTER (WHERE s.status = 'sent' AND EXISTS (
        SELECT 1 FROM events e WHERE e.lead_id = s.lead_id
          AND e.type = ANY(:clicks) AND (
            e.properties ->> 'idempotency_key' = s.idempotency_key
            OR (e.message_id IS NOT NULL
                AND s.provider_message_id LIKE e.message_id || '%')))) AS clicked
    FROM email_sends s
    WHERE s.kind = 'marketing' AND (CAST(:journey AS text) IS NULL
                                    OR s.journey = CAST(:journey AS text))
    GROUP BY s.journey, s.step
    ORDER BY s.journey, min(s.created_at)
    """
)

# Re-runs of one file (same fingerprint) count once: its latest run.
_IMPORTS = text(
    """
    SELECT coalesce(sum(rows), 0), coalesce(sum(accepted), 0),
           coalesce(sum(merged), 0), coalesce(sum(rejected), 0), count(*)
    FROM (
      SELECT DISTINCT ON (file_sha256) rows, accepted, merged, rejected
      FROM cohort_imports ORDER BY file_sha256, created_at DESC
    ) latest
    """
)


@dataclass(frozen=True)
class StepLine:
    journey: str
    step: str
    sent: int
    suppressed: int
    opened: int
    clicked: int


@dataclass
class Funnel:
    leads: int
    by_stage: dict[str, int]
    mql_leads: int
    time_to_mql_median: timedelta | None
    time_to_mql_mean: timedelta | None
    suppressed: dict[str, int]
    imported_files: int
    imported_rows: int
    accepted_rows: int
    merged_rows: int
    rejected_rows: int
    steps: list[StepLine] = field(default_factory=list)

    @property
    def mql_rate(self) -> float:
        return self.mql_leads / self.leads if self.leads else 0.0


def build_funnel(database_url: str, journey: str | None = None) -> Funnel:
    with Session(get_engine(database_url)) as session:
        connection = session.connection()
        staged: dict[str, int] = dict(
            connection.execute(
                _LEAD_STAGES,
                {"customer": list(CUSTOMER_EVENTS), "receipts": list(RECEIPT_EVENTS)},
            ).all()
        )
        by_stage = {stage: int(staged.get(stage, 0)) for stage in STAGES}
        suppressions = connection.execute(_SUPPRESSIONS).mappings().one()
        waits = [float(row[0]) for row in connection.execute(_FIRST_HANDOFFS)]
        steps = [
            StepLine(*row)
            for row in connection.execute(
                _STEPS,
                {
                    "opens": list(OPEN_EVENTS),
                    "clicks": list(CLICK_EVENTS),
                    "journey": journey,
                },
            )
        ]
        rows, accepted, merged, rejected, files = connection.execute(_IMPORTS).one()
    suppressed: dict[str, Any] = dict(suppressions)
    return Funnel(
        leads=sum(by_stage.values()),
        by_stage=by_stage,
        mql_leads=len(waits),
        time_to_mql_median=(
            timedelta(seconds=statistics.median(waits)) if waits else None
        ),
        time_to_mql_mean=timedelta(seconds=statistics.mean(waits)) if waits else None,
        suppressed={name: int(value) for name, value in suppressed.items()},
        imported_files=int(files),
        imported_rows=int(rows),
        accepted_rows=int(accepted),
        merged_rows=int(merged),
        rejected_rows=int(rejected),
        steps=steps,
    )


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7_200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def print_funnel(funnel: Funnel, console: Console | None = None) -> None:
    console = console or Console()
    stages = Table(title="Leads by stage (each lead once, furthest stage)")
    stages.add_column("stage")
    stages.add_column("leads", justify="right")
    stages.add_column("share", justify="right")
    for stage, count in funnel.by_stage.items():
        share = f"{count / funnel.leads:.1%}" if funnel.leads else "-"
        stages.add_row(stage, str(count), share)
    stages.add_row("total", str(funnel.leads), "", style="bold")
    console.print(stages)

    console.print(
        f"MQL rate: {funnel.mql_leads} of {funnel.leads} leads "
        f"({funnel.mql_rate:.1%}) handed to sales; time to MQL: median "
        f"{_duration(funnel.time_to_mql_median)}, mean "
        f"{_duration(funnel.time_to_mql_mean)}"
    )
    reasons = ", ".join(
        f"{name.replace('_', ' ')} {count}"
        for name, count in funnel.suppressed.items()
        if name != "any_reason"
    )
    console.print(
        f"Suppressed: {funnel.suppressed['any_reason']} leads ({reasons}; a lead "
        "may have several reasons)"
    )
    console.print(
        f"Imports: {funnel.imported_files} files, {funnel.imported_rows} rows: "
        f"{funnel.accepted_rows} leads, {funnel.merged_rows} merged, "
        f"{funnel.rejected_rows} rejected"
    )

    steps = Table(title="Emails per journey step")
    for column in ("journey", "step", "sent", "suppressed", "opened", "clicked"):
        steps.add_column(
            column, justify="left" if column in ("journey", "step") else "right"
        )
    for line in funnel.steps:
        opened = f"{line.opened} ({line.opened / line.sent:.0%})" if line.sent else "0"
        clicked = (
            f"{line.clicked} ({line.clicked / line.sent:.0%})" if line.sent else "0"
        )
        steps.add_row(
            line.journey,
            line.step,
            str(line.sent),
            str(line.suppressed),
            opened,
            clicked,
        )
    console.print(steps)


def draw_chart(funnel: Funnel, path: Path) -> None:
    """A PNG: leads by stage, and sent / opened / clicked per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    names = list(funnel.by_stage)
    counts = [funnel.by_stage[name] for name in names]
    left.barh(names[::-1], counts[::-1], color="#4c72b0")
    left.set_title(f"Leads by stage ({funnel.leads} leads)")
    left.set_xlabel("leads")
    for index, count in enumerate(counts[::-1]):
        left.text(count, index, f" {count}", va="center")

    labels = [f"{line.journey}\n{line.step}" for line in funnel.steps]
    positions = range(len(labels))
    width = 0.27
    for offset, (label, values, colour) in enumerate(
        (
            ("sent", [line.sent for line in funnel.steps], "#4c72b0"),
            ("opened", [line.opened for line in funnel.steps], "#55a868"),
            ("clicked", [line.clicked for line in funnel.steps], "#c44e52"),
        )
    ):
        right.bar(
            [position + (offset - 1) * width for position in positions],
            values,
            width,
            label=label,
            color=colour,
        )
    right.set_xticks(list(positions), labels)
    right.set_title("Emails per journey step")
    right.legend()
    figure.suptitle(
        f"MQL rate {funnel.mql_rate:.1%}; {funnel.suppressed['any_reason']} "
        f"suppressed; {funnel.rejected_rows} rows rejected"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run_report(
    settings: Settings, journey: str | None = None, chart: Path | None = None
) -> int:
    database_url = resolve_database_url(settings)
    upgrade(database_url)
    funnel = build_funnel(database_url, journey)
    print_funnel(funnel)
    if chart is not None:
        draw_chart(funnel, chart)
        print(f"chart: {chart}")
    return 0
