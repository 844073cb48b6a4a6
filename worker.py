"""Runs the Temporal worker: the journey workflow and every activity."""

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import (
    SandboxedWorkflowRunner,
    SandboxRestrictions,
)

from activities.backends import EmailBackend, OutboxBackend
from activities.email import EmailActivities, TemplateRenderer
from activities.sales import SalesActivities
from activities.scoring import ScoringActivities
from activities.send_policy import SendPolicy
from activities.sendgrid_backend import SendGridBackend
from core.db import resolve_database_url, upgrade
from core.logs import configure_logging
from core.settings import Settings, get_settings
from core.temporal import connect
from workflows.journey import LeadJourney

# Pure, deterministic modules the sandbox may share between journeys instead of
# importing them again for every run: rebuilding the pydantic models cost about
# 85 ms of CPU per journey, which dominated starting a large cohort.
PASSED_THROUGH = ("models", "workflows.scoring", "workflows.schedule")

log = structlog.get_logger(__name__)


def email_backend(settings: Settings) -> EmailBackend:
    """The outbox in development, SendGrid when `EMAIL_BACKEND=sendgrid`."""
    if settings.email_backend == "outbox":
        return OutboxBackend(settings.outbox_dir)
    if settings.sendgrid_api_key is None:
        message = "EMAIL_BACKEND=sendgrid needs SENDGRID_API_KEY; it is not set."
        raise ValueError(message)
    return SendGridBackend(
        settings.sendgrid_api_key.get_secret_value(),
        host=settings.sendgrid_host,
        timeout=settings.sendgrid_timeout_seconds,
    )


def send_policy(settings: Settings) -> SendPolicy:
    return SendPolicy(
        cap=settings.email_frequency_cap,
        period=timedelta(days=settings.email_frequency_days),
        quiet_start=settings.email_quiet_hours_start,
        quiet_end=settings.email_quiet_hours_end,
        default_time_zone=settings.default_time_zone,
    )


def build_worker(
    client: Client,
    settings: Settings,
    database_url: str,
    executor: ThreadPoolExecutor,
    backend: EmailBackend | None = None,
) -> Worker:
    """A worker with every activity wired to the database and email backend."""
    backend = backend or email_backend(settings)
    renderer = TemplateRenderer(settings.journeys_dir / "templates")
    email = EmailActivities(
        database_url,
        backend,
        renderer,
        from_email=settings.email_from,
        from_name=settings.email_from_name,
        postal_address=settings.postal_address,
        public_url=settings.webhook_public_url,
        unsubscribe_secret=settings.unsubscribe_secret.get_secret_value(),
        policy=send_policy(settings),
    )
    sales = SalesActivities(
        database_url,
        backend,
        renderer,
        from_email=settings.email_from,
        from_name=settings.email_from_name,
        default_owner=settings.sales_queue_email,
        temporal_ui_url=settings.temporal_ui_url,
        namespace=settings.temporal_namespace,
        copies=settings.sales_handoff_cc,
        chat_webhook_url=(
            settings.sales_chat_webhook_url.get_secret_value()
            if settings.sales_chat_webhook_url
            else None
        ),
    )
    scoring = ScoringActivities(database_url)
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[LeadJourney],
        activities=[email.send_email, sales.notify_sales, scoring.score_lead],
        activity_executor=executor,
        max_concurrent_activities=settings.worker_activity_slots,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                *PASSED_THROUGH
            )
        ),
    )


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    database_url = resolve_database_url(settings)
    upgrade(database_url)
    client = await connect(settings)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    with ThreadPoolExecutor(max_workers=settings.worker_activity_slots) as executor:
        worker = build_worker(client, settings, database_url, executor)
        log.info("worker.started", task_queue=settings.temporal_task_queue)
        async with worker:
            await stop.wait()
    log.info("worker.stopped")


if __name__ == "__main__":
    asyncio.run(main())
