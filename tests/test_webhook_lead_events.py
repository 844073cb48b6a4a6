"""Lead events, journeys started by events, unsubscribe links and the service's
own endpoints, over HTTP on loopback with the real dev server and PostgreSQL."""

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import Session, col
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from core.catalog import load_journey, load_scoring
from core.db import get_engine
from core.enrolment import start_journey
from core.settings import Settings, get_settings
from core.signing import unsubscribe_url
from models.tables import Lead, LeadEvent
from tests.conftest import project_worker
from tests.webhook_service import (
    WEBHOOK_SECRET,
    Clock,
    ServiceThread,
    event_count,
    events_where,
    eventually,
    handled,
    journey_state,
    journeys_dir,
    lead_event_headers,
    make_leads,
)
from webhooks import post_event
from webhooks.app import create_app
from workflows.journey import workflow_id_for


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    dev_env: WorkflowEnvironment,
) -> Settings:
    tmp_path = tmp_path_factory.mktemp("lead-hooks")
    return Settings(
        database_url=database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_task_queue=f"hooks-{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path / "var",
        journeys_dir=journeys_dir(tmp_path),
        entry_journey="event-entry",
        webhook_secret=WEBHOOK_SECRET,  # type: ignore[arg-type]
        webhook_max_body_bytes=4096,
        relay_interval_seconds=0.3,
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


async def send(
    service: ServiceThread,
    event: dict[str, Any] | bytes,
    clock: Clock,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        return await http.post(
            "/events",
            content=body,
            headers=headers
            if headers is not None
            else lead_event_headers(body, int(clock())),
        )


def new_id() -> str:
    return f"evt-{uuid.uuid4().hex}"


@pytest.mark.usefixtures("worker")
async def test_signed_page_visit_reaches_the_running_journey(
    service: ServiceThread,
    settings: Settings,
    dev_env: WorkflowEnvironment,
    clock: Clock,
) -> None:
    assert settings.database_url is not None
    (lead_id,) = make_leads(settings.database_url, 1)
    journey = load_journey(settings.journeys_dir, "event-entry")
    scoring = load_scoring(settings.journeys_dir)
    await start_journey(
        dev_env.client, settings.temporal_task_queue, lead_id, journey, scoring
    )
    event_id = new_id()
    event = {
        "event_id": event_id,
        "type": "page_visit",
        "time": "2026-12-01T10:00:00+01:00",
        "lead_id": lead_id,
        "properties": {"url": "https://example.com/pricing"},
    }

    first = await send(service, event, clock)
    again = await send(service, event, clock)

    assert first.status_code == 202, first.text
    assert first.json() == {
        "event_id": event_id,
        "lead_id": lead_id,
        "status": "delivered",
        "duplicate": False,
    }
    assert again.status_code == 202
    assert again.json()["duplicate"] is True
    key = f"lead-event:{event_id}"
    await eventually(lambda: handled(dev_env.client, lead_id, [key]))
    state = await journey_state(dev_env.client, lead_id)
    assert state["event_counts"]["page_visit"] == 1


async def test_bad_requests_get_clear_4xx_and_store_nothing(
    service: ServiceThread, settings: Settings, clock: Clock
) -> None:
    assert settings.database_url is not None
    (lead_id,) = make_leads(settings.database_url, 1)
    good = {"event_id": new_id(), "type": "demo_request", "lead_id": lead_id}
    body = json.dumps(good).encode()
    before = event_count(settings.database_url)

    cases = {
        "wrong secret": await send(
            service, good, clock, lead_event_headers(body, int(clock()), "nope")
        ),
        "no signature": await send(service, good, clock, {}),
        "stale": await send(
            service, good, clock, lead_event_headers(body, int(clock()) - 600)
        ),
        "not json": await send(service, b'{"event_id": ', clock),
        "wrong type": await send(
            service, {**good, "event_id": new_id(), "lead_id": "seven"}, clock
        ),
        "unknown type": await send(
            service, {**good, "event_id": new_id(), "type": "teleported"}, clock
        ),
        "visit without url": await send(
            service, {**good, "event_id": new_id(), "type": "page_visit"}, clock
        ),
        "no lead": await send(service, {"event_id": new_id(), "type": "reply"}, clock),
        "too large": await send(
            service,
            {**good, "event_id": new_id(), "properties": {"x": "y" * 5000}},
            clock,
        ),
    }

    statuses = {name: answer.status_code for name, answer in cases.items()}
    assert statuses == {
        "wrong secret": 401,
        "no signature": 401,
        "stale": 401,
        "not json": 400,
        "wrong type": 422,
        "unknown type": 422,
        "visit without url": 422,
        "no lead": 422,
        "too large": 413,
    }
    unknown = cases["unknown type"].json()["detail"]
    assert unknown[0]["field"] == "type"
    assert "page_visit" in unknown[0]["problem"]
    assert "properties.url" in str(cases["visit without url"].json()["detail"])
    assert event_count(settings.database_url) == before


@pytest.mark.usefixtures("worker")
async def test_event_for_a_lead_without_a_journey_starts_exactly_one_even_racing_the_starter(  # noqa: E501
    service: ServiceThread,
    settings: Settings,
    dev_env: WorkflowEnvironment,
    clock: Clock,
) -> None:
    assert settings.database_url is not None
    lead_ids = make_leads(settings.database_url, 6)
    journey = load_journey(settings.journeys_dir, "event-entry")
    scoring = load_scoring(settings.journeys_dir)
    events = {
        lead_id: {"event_id": new_id(), "type": "form_submitted", "lead_id": lead_id}
        for lead_id in lead_ids
    }

    async def starter(lead_id: int) -> bool:
        return await start_journey(
            dev_env.client, settings.temporal_task_queue, lead_id, journey, scoring
        )

    outcomes = await asyncio.gather(
        *(send(service, events[lead_id], clock) for lead_id in lead_ids),
        *(starter(lead_id) for lead_id in lead_ids),
    )

    answers, started = outcomes[: len(lead_ids)], outcomes[len(lead_ids) :]
    assert [answer.status_code for answer in answers] == [202] * len(lead_ids)  # type: ignore[union-attr]
    for lead_id in lead_ids:
        key = f"lead-event:{events[lead_id]['event_id']}"
        await eventually(lambda lead=lead_id, k=key: handled(dev_env.client, lead, [k]))
        runs = [
            run
            async for run in dev_env.client.list_workflows(
                f"WorkflowId = '{workflow_id_for(lead_id)}'"
            )
        ]
        assert len(runs) == 1, f"lead {lead_id} has {len(runs)} journeys"
    # Whichever came first started the journey; the event reached it either way.
    assert {answer.json()["status"] for answer in answers} == {"delivered"}  # type: ignore[union-attr]
    assert all(isinstance(outcome, bool) for outcome in started)


@pytest.mark.usefixtures("worker")
async def test_events_outside_the_entry_rule_or_after_the_journey_start_nothing(
    service: ServiceThread,
    settings: Settings,
    dev_env: WorkflowEnvironment,
    clock: Clock,
) -> None:
    assert settings.database_url is not None
    idle, finished = make_leads(settings.database_url, 2)
    journey = load_journey(settings.journeys_dir, "event-entry")
    scoring = load_scoring(settings.journeys_dir)
    await start_journey(
        dev_env.client, settings.temporal_task_queue, finished, journey, scoring
    )
    handle = dev_env.client.get_workflow_handle(workflow_id_for(finished))
    await handle.terminate(reason="test: the journey is over")

    reply = await send(
        service, {"event_id": new_id(), "type": "reply", "lead_id": idle}, clock
    )
    late = await send(
        service,
        {"event_id": new_id(), "type": "demo_request", "lead_id": finished},
        clock,
    )

    assert reply.json()["status"] == "no_journey"
    assert late.json()["status"] == "journey_finished"
    with pytest.raises(Exception, match="not found"):
        await dev_env.client.get_workflow_handle(workflow_id_for(idle)).describe()
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.TERMINATED


@pytest.mark.usefixtures("worker")
async def test_unsubscribe_link_shows_a_page_and_a_post_applies_at_once(
    service: ServiceThread,
    settings: Settings,
    dev_env: WorkflowEnvironment,
) -> None:
    assert settings.database_url is not None
    (lead_id,) = make_leads(settings.database_url, 1)
    journey = load_journey(settings.journeys_dir, "event-entry")
    scoring = load_scoring(settings.journeys_dir)
    await start_journey(
        dev_env.client, settings.temporal_task_queue, lead_id, journey, scoring
    )
    link = unsubscribe_url(
        service.url, settings.unsubscribe_secret.get_secret_value(), lead_id
    )

    async with httpx.AsyncClient(timeout=30) as http:
        page = await http.get(link)
        forged = await http.post(link.replace("token=", "token=x"))
        first = await http.post(link, data={"List-Unsubscribe": "One-Click"})
        # Someone lifts the suppression by hand; the link still works after.
        with Session(get_engine(settings.database_url)) as session:
            session.execute(
                update(Lead).where(col(Lead.id) == lead_id).values(unsubscribed_at=None)
            )
            session.commit()
        second = await http.post(link, data={"List-Unsubscribe": "One-Click"})
        huge_id = await http.post(f"{service.url}/unsubscribe/99999999999?token=a")

    assert page.status_code == 200
    assert "method='post'" in page.text
    assert forged.status_code == 403
    assert (first.status_code, second.status_code) == (200, 200)
    assert huge_id.status_code == 422
    with Session(get_engine(settings.database_url)) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        assert lead.unsubscribed_at is not None
    rows = events_where(settings.database_url, LeadEvent.lead_id == lead_id)
    assert [row.type for row in rows] == ["unsubscribe"]
    handle = dev_env.client.get_workflow_handle(workflow_id_for(lead_id))
    await eventually(lambda: _has_ended(handle), what="the journey ends on unsubscribe")


async def _has_ended(handle: Any) -> bool:
    description = await handle.describe()
    return bool(description.status == WorkflowExecutionStatus.COMPLETED)


async def test_health_readiness_and_openapi_describe_the_service(
    service: ServiceThread,
) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
        document = (await http.get("/openapi.json")).json()

    assert health.json() == {"status": "ok"}
    assert ready.json() == {"status": "ready", "temporal": "reachable"}
    schema = document["components"]["schemas"]["LeadEventIn"]
    assert "page_visit" in schema["properties"]["type"]["enum"]
    assert {"event_id", "type"} <= set(schema["required"])
    body = document["paths"]["/events"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("LeadEventIn")


async def test_one_log_line_per_request_without_the_address(
    service: ServiceThread, settings: Settings, clock: Clock
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keeper = Keep()
    logger = logging.getLogger("webhooks")
    address = f"private-{uuid.uuid4().hex[:8]}@example.com"

    def lines() -> list[dict[str, Any]]:
        # The line is written as the response goes out, maybe just after.
        return [
            record.msg
            for record in records
            if isinstance(record.msg, dict) and record.msg.get("route") == "/events"
        ]

    async def logged() -> bool:
        return bool(lines())

    logger.addHandler(keeper)
    try:
        answer = await send(
            service,
            {"event_id": new_id(), "type": "reply", "email": address},
            clock,
        )
        await eventually(logged, seconds=5, what="the request is logged")
        await asyncio.sleep(0.3)
    finally:
        logger.removeHandler(keeper)

    assert answer.status_code == 202
    assert answer.json()["status"] == "unmatched"
    (line,) = lines()
    assert line["event"] == "webhook.request"
    assert line["http_status"] == 202
    assert line["status"] == "unmatched"
    assert address not in repr([record.msg for record in records])


def test_post_event_command_signs_events_the_way_the_service_checks(
    service: ServiceThread,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert settings.database_url is not None
    (lead_id,) = make_leads(settings.database_url, 1)
    monkeypatch.setenv("WEBHOOK_PUBLIC_URL", service.url)
    monkeypatch.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
    event_id = new_id()
    get_settings.cache_clear()

    try:
        code = post_event.main(
            [json.dumps({"event_id": event_id, "type": "reply", "lead_id": lead_id})]
        )
    finally:
        get_settings.cache_clear()

    assert code == 0
    assert capsys.readouterr().out.startswith("202 ")
    rows = events_where(settings.database_url, LeadEvent.lead_id == lead_id)
    assert [row.dedupe_key for row in rows] == [f"lead-event:{event_id}"]


async def test_attribute_update_by_email_is_merged_into_the_lead(
    service: ServiceThread, settings: Settings, clock: Clock
) -> None:
    assert settings.database_url is not None
    (lead_id,) = make_leads(
        settings.database_url, 1, attributes={"lead_source": "Google"}
    )
    with Session(get_engine(settings.database_url)) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        email = lead.email

    answer = await send(
        service,
        {
            "event_id": new_id(),
            "type": "attribute_update",
            "email": email.upper(),
            "properties": {"attributes": {"occupation": "Working Professional"}},
        },
        clock,
    )

    assert answer.status_code == 202, answer.text
    assert answer.json()["lead_id"] == lead_id
    with Session(get_engine(settings.database_url)) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        assert lead.attributes == {
            "lead_source": "Google",
            "occupation": "Working Professional",
        }
