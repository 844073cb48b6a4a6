"""The SendGrid Event Webhook over HTTP on loopback: the real service, the real
dev server and worker, the real PostgreSQL."""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select
from temporalio.testing import WorkflowEnvironment

from core.catalog import load_journey, load_scoring
from core.db import get_engine
from core.enrolment import start_journey
from core.settings import Settings
from models.tables import EmailSend, Lead, LeadEvent
from tests.conftest import project_worker
from tests.webhook_service import (
    WEBHOOK_SECRET,
    Clock,
    SendGridKey,
    ServiceThread,
    events_where,
    eventually,
    handled,
    journey_state,
    journeys_dir,
    make_leads,
    sendgrid_batch,
    signals_received,
)
from webhooks.app import create_app

DAY = 86_400


@pytest.fixture(scope="module")
def key() -> SendGridKey:
    return SendGridKey()


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    dev_env: WorkflowEnvironment,
    key: SendGridKey,
) -> Settings:
    tmp_path = tmp_path_factory.mktemp("sendgrid-hooks")
    return Settings(
        database_url=database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_task_queue=f"hooks-{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path / "var",
        journeys_dir=journeys_dir(tmp_path),
        entry_journey="event-entry",
        webhook_secret=WEBHOOK_SECRET,  # type: ignore[arg-type]
        sendgrid_webhook_public_key=key.public_key,
        relay_interval_seconds=0.3,
        scanner_click_settle_seconds=1.0,
    )


@pytest.fixture(scope="module")
async def worker(
    settings: Settings, dev_env: WorkflowEnvironment
) -> AsyncIterator[None]:
    async with project_worker(dev_env.client, settings):
        yield


@pytest.fixture(scope="module")
def service(settings: Settings, clock: Clock) -> Iterator[ServiceThread]:
    with ServiceThread(create_app(settings, clock=clock)) as running:
        yield running


async def started_lead(
    settings: Settings, env: WorkflowEnvironment, **fields: Any
) -> int:
    """A lead whose entry journey is running."""
    assert settings.database_url is not None
    (lead_id,) = make_leads(settings.database_url, 1, **fields)
    journey = load_journey(settings.journeys_dir, "event-entry")
    scoring = load_scoring(settings.journeys_dir)
    started = await start_journey(
        env.client, settings.temporal_task_queue, lead_id, journey, scoring
    )
    assert started
    return lead_id


def sg_event(
    lead_id: int | None, name: str, at: float, **fields: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "email": "someone@example.com",
        "timestamp": int(at),
        "event": name,
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": f"msg{uuid.uuid4().hex[:12]}.filter0001.1234.5678.0",
    }
    if lead_id is not None:
        event["lead_id"] = str(lead_id)
    event.update(fields)
    return event


async def post(
    service: ServiceThread, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        return await http.post("/sendgrid/events", content=body, headers=headers)


@pytest.mark.usefixtures("worker")
async def test_signed_batch_with_crlf_reaches_the_leads_journey(
    service: ServiceThread,
    settings: Settings,
    dev_env: WorkflowEnvironment,
    key: SendGridKey,
    clock: Clock,
) -> None:
    lead_id = await started_lead(settings, dev_env)
    now = clock()
    delivered = sg_event(lead_id, "delivered", now - 5)
    opened = sg_event(lead_id, "open", now - 1, sg_machine_open=False)
    body = sendgrid_batch(delivered, opened)
    assert body.count(b"\r\n") == 2
    assert body.endswith(b"]\r\n")

    response = await post(service, body, key.headers(body, int(clock())))

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 2
    keys = [f"sendgrid:{delivered['sg_event_id']}", f"sendgrid:{opened['sg_event_id']}"]
    await eventually(
        lambda: handled(dev_env.client, lead_id, keys), what="both events handled"
    )
    state = await journey_state(dev_env.client, lead_id)
    assert state["event_counts"]["email_delivered"] == 1
    assert state["event_counts"]["email_open"] == 1


async def test_tampered_unsigned_or_stale_batch_is_refused_and_nothing_stored(
    service: ServiceThread, settings: Settings, key: SendGridKey, clock: Clock
) -> None:
    assert settings.database_url is not None
    (lead_id,) = make_leads(settings.database_url, 1)
    now = clock()
    events = [sg_event(lead_id, "delivered", now), sg_event(lead_id, "open", now)]
    body = sendgrid_batch(*events)
    headers = key.headers(body, int(now))
    at = body.index(b'"open"') + 1
    tampered = body[:at] + b"O" + body[at + 1 :]
    unsigned = {"content-type": "application/json"}
    stale = key.headers(body, int(now) - 3600)

    answers = [
        await post(service, tampered, headers),
        await post(service, body, unsigned),
        await post(service, body, stale),
    ]

    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert "does not match" in answers[0].json()["detail"]
    assert "missing" in answers[1].json()["detail"]
    assert "seconds old" in answers[2].json()["detail"]
    assert events_where(settings.database_url, LeadEvent.lead_id == lead_id) == []


@pytest.mark.usefixtures("worker")
async def test_same_click_three_times_in_a_minute_and_a_day_later_is_applied_once(
    service: ServiceThread,
    settings: Settings,
    dev_env: WorkflowEnvironment,
    key: SendGridKey,
    clock: Clock,
) -> None:
    assert settings.database_url is not None
    lead_id = await started_lead(settings, dev_env)
    click = sg_event(lead_id, "click", clock(), url="https://example.com/pricing")
    body = sendgrid_batch(click)
    event_key = f"sendgrid:{click['sg_event_id']}"
    answers = []

    for seconds in (0, 20, 40):
        answers.append(
            await post(service, body, key.headers(body, int(clock()) + seconds))
        )
    clock.offset += DAY
    try:
        answers.append(await post(service, body, key.headers(body, int(clock()))))
    finally:
        clock.offset -= DAY

    assert [answer.status_code for answer in answers] == [200] * 4
    assert [answer.json()["stored"] for answer in answers] == [1, 0, 0, 0]
    assert [answer.json()["duplicates"] for answer in answers] == [0, 1, 1, 1]
    await eventually(lambda: handled(dev_env.client, lead_id, [event_key]))
    signals = await signals_received(dev_env.client, lead_id)
    assert signals.by_event == {event_key: 1}
    state = await journey_state(dev_env.client, lead_id)
    assert state["event_counts"]["email_click"] == 1
    assert (
        len(events_where(settings.database_url, LeadEvent.dedupe_key == event_key)) == 1
    )


@pytest.mark.usefixtures("worker")
async def test_machine_opens_and_scanner_bursts_are_recorded_but_earn_no_points(
    service: ServiceThread,
    settings: Settings,
    dev_env: WorkflowEnvironment,
    key: SendGridKey,
    clock: Clock,
) -> None:
    assert settings.database_url is not None
    lead_id = await started_lead(settings, dev_env)
    now = clock()
    message = f"msg{uuid.uuid4().hex[:12]}.filter0001.1.2.0"
    delivered = sg_event(lead_id, "delivered", now - 10, sg_message_id=message)
    machine_open = sg_event(
        lead_id, "open", now - 9, sg_message_id=message, sg_machine_open=True
    )
    burst = [
        sg_event(lead_id, "click", now - 8, sg_message_id=message, url=url)
        for url in (
            "https://example.com/a",
            "https://example.com/b",
            "https://example.com/c",
        )
    ]
    first = sendgrid_batch(delivered, machine_open, burst[0])
    rest = sendgrid_batch(*burst[1:])
    ids = [f"sendgrid:{event['sg_event_id']}" for event in [machine_open, *burst]]

    for body in (first, rest):
        answer = await post(service, body, key.headers(body, int(clock())))
        assert answer.status_code == 200, answer.text

    await eventually(lambda: handled(dev_env.client, lead_id, ids), what="burst")
    state = await journey_state(dev_env.client, lead_id)
    assert state["event_counts"].get("machine_open") == 1
    assert state["event_counts"].get("scanner_click") == 3
    assert "email_click" not in state["event_counts"]
    assert "email_open" not in state["event_counts"]

    # A person's click an hour later counts.
    human = sg_event(
        lead_id, "click", now + 3600, sg_message_id=message, url="https://example.com/a"
    )
    body = sendgrid_batch(human)
    clock.offset += 3600
    try:
        answer = await post(service, body, key.headers(body, int(clock())))
    finally:
        clock.offset -= 3600
    assert answer.status_code == 200
    human_id = f"sendgrid:{human['sg_event_id']}"
    await eventually(lambda: handled(dev_env.client, lead_id, [human_id]))

    async def scored() -> bool:
        return (await journey_state(dev_env.client, lead_id))["score"] > 0

    await eventually(scored, what="the person's click is scored")
    state = await journey_state(dev_env.client, lead_id)
    assert state["event_counts"].get("email_click") == 1
    # Five points for the one click a person made; the scanner's three clicks
    # would have made it 20, and the lead has no fit points.
    assert state["score"] == 5


async def test_events_map_by_send_record_and_mark_suppression_on_the_lead(
    service: ServiceThread, settings: Settings, key: SendGridKey, clock: Clock
) -> None:
    url = settings.database_url
    assert url is not None
    bounced, complained, unsubscribed = make_leads(url, 3)
    message_ids = {lead: f"x{uuid.uuid4().hex[:16]}" for lead in (bounced, complained)}
    with Session(get_engine(url)) as session:
        for lead, message_id in message_ids.items():
            session.add(
                EmailSend(
                    idempotency_key=f"test-{message_id}",
                    lead_id=lead,
                    journey="welcome",
                    step="welcome",
                    template="welcome",
                    status="sent",
                    provider_message_id=message_id,
                )
            )
        session.commit()
    now = clock()
    # No lead_id custom argument: the send record names the lead.
    bounce = sg_event(
        None, "bounce", now, sg_message_id=f"{message_ids[bounced]}.filter1.2.3"
    )
    spam = sg_event(
        None, "spamreport", now, sg_message_id=f"{message_ids[complained]}.f.1"
    )
    unsubscribe = sg_event(unsubscribed, "unsubscribe", now)
    stranger = sg_event(None, "open", now, email="nobody-here@example.com")
    body = sendgrid_batch(bounce, spam, unsubscribe, stranger, {"event": "nonsense"})

    answer = await post(service, body, key.headers(body, int(clock())))

    assert answer.status_code == 200, answer.text
    outcome = answer.json()
    assert (outcome["stored"], outcome["unmatched"]) == (4, 1)
    assert len(outcome["skipped"]) == 1
    assert "event 4" in outcome["skipped"][0]
    with Session(get_engine(url)) as session:
        leads = {
            lead.id: lead
            for lead in session.exec(
                select(Lead).where(
                    col(Lead.id).in_([bounced, complained, unsubscribed])
                )
            )
        }
    assert leads[bounced].bounced_at is not None
    assert leads[complained].complained_at is not None
    assert leads[unsubscribed].unsubscribed_at is not None
    kept = events_where(
        url, LeadEvent.dedupe_key == f"sendgrid:{stranger['sg_event_id']}"
    )
    assert [(row.status, row.lead_id) for row in kept] == [("unmatched", None)]
    types = {
        row.lead_id: row.type
        for row in events_where(url, col(LeadEvent.lead_id).in_([bounced, complained]))
    }
    assert types == {bounced: "hard_bounce", complained: "spam_report"}


async def test_bodies_that_are_not_arrays_or_too_large_are_refused(
    service: ServiceThread, settings: Settings, key: SendGridKey, clock: Clock
) -> None:
    body = b'{"event": "open"}'

    answer = await post(service, body, key.headers(body, int(clock())))
    too_big = b"[" + b" " * (settings.webhook_max_body_bytes + 1) + b"]"
    oversized = await post(service, too_big, key.headers(too_big, int(clock())))

    assert answer.status_code == 400
    assert "JSON array" in answer.json()["detail"]
    assert oversized.status_code == 413
