"""The webhook service: lead events and SendGrid events in, journey signals out.

Every accepted event is written to the database before it is signalled (see
core/intake.py); the relay (core/relay.py) runs here as a background task and
delivers what could not be signalled at once. `uvicorn webhooks.app:app`.
"""

import asyncio
import html
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import text
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.db import get_engine, resolve_database_url, upgrade
from core.intake import (
    IncomingEvent,
    JourneyEntry,
    ScannerRule,
    StoredEvent,
    deliver_event,
    store_event,
)
from core.logs import configure_logging
from core.relay import LazyClient, Relay
from core.settings import Settings, get_settings
from core.signing import is_valid_unsubscribe_token
from models.tables import Lead
from webhooks.lead_events import MAX_LEAD_ID, EventAccepted, LeadEventIn
from webhooks.payloads import PayloadError, parse_json
from webhooks.sendgrid import map_batch
from webhooks.signatures import (
    LEAD_SIGNATURE_HEADER,
    LEAD_TIMESTAMP_HEADER,
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    SignatureError,
    sendgrid_verifier,
    verify_lead_event,
    verify_sendgrid,
)

log = structlog.get_logger("webhooks")

# How many leads of one SendGrid batch are signalled at the same time.
BATCH_DELIVERY_CONCURRENCY = 16

LeadIdPath = Annotated[int, Path(ge=1, le=MAX_LEAD_ID)]
TokenQuery = Annotated[str, Query(min_length=1, max_length=100)]


class BatchAccepted(BaseModel):
    """What became of a SendGrid batch."""

    received: int
    stored: int
    duplicates: int
    unmatched: int
    # Events that could not be read, by position in the batch, with the reason.
    skipped: list[str]


@dataclass
class Service:
    """What the routes share."""

    settings: Settings
    database_url: str
    client: LazyClient
    entry: JourneyEntry
    scanner: ScannerRule
    relay: Relay
    sendgrid: EventWebhook | None


class RequestLog:
    """One structured line per request: method, route template, status, time,
    and whatever the route added under `scope["log_fields"]`. No query strings
    (unsubscribe tokens), no addresses, no client IPs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        scope["log_fields"] = {}

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            log.info(
                "webhook.request",
                method=scope["method"],
                route=getattr(route, "path", "unmatched"),
                http_status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                **scope["log_fields"],
            )


def create_app(
    settings: Settings | None = None, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The service; `clock` (Unix seconds) is what signed timestamps are
    checked against."""
    settings = settings or get_settings()
    tolerance = settings.webhook_signature_tolerance_seconds

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_format, settings.log_level)
        # Uvicorn's access lines carry client addresses and query strings
        # (unsubscribe tokens); RequestLog writes the one line per request.
        logging.getLogger("uvicorn.access").disabled = True
        database_url = resolve_database_url(settings)
        await asyncio.to_thread(upgrade, database_url)
        client = LazyClient(settings)
        entry = JourneyEntry.from_settings(settings)
        scanner = ScannerRule.from_settings(settings)
        relay = Relay(
            database_url,
            client,
            entry=entry,
            scanner=scanner,
            interval=settings.relay_interval_seconds,
            batch_size=settings.relay_batch_size,
            timeout=settings.temporal_signal_timeout_seconds,
        )
        key = settings.sendgrid_webhook_public_key
        app.state.service = Service(
            settings=settings,
            database_url=database_url,
            client=client,
            entry=entry,
            scanner=scanner,
            relay=relay,
            sendgrid=sendgrid_verifier(key) if key else None,
        )
        relaying = asyncio.create_task(relay.run_forever(), name="event-relay")
        try:
            yield
        finally:
            relaying.cancel()
            with suppress(asyncio.CancelledError):
                await relaying

    app = FastAPI(
        title="Lead nurture webhooks",
        description=(
            "Lead events and SendGrid events for running journeys. Every "
            "accepted event is stored before it is delivered; repeats are "
            "ignored."
        ),
        lifespan=lifespan,
    )
    app.add_middleware(RequestLog)

    def service(request: Request) -> Service:
        return request.app.state.service  # type: ignore[no-any-return]

    def note(request: Request, **fields: Any) -> None:
        request.scope["log_fields"].update(fields)

    async def deliver(svc: Service, stored: StoredEvent) -> str:
        """Signal now when possible; otherwise the relay will."""
        if not (stored.created and stored.deliver_now):
            return stored.status
        timeout = svc.settings.temporal_signal_timeout_seconds
        try:
            client = await asyncio.wait_for(svc.client(), timeout)
        except (RuntimeError, TimeoutError):
            svc.relay.wake()
            return "pending"
        status = await deliver_event(
            client,
            svc.database_url,
            stored.id,
            entry=svc.entry,
            scanner=svc.scanner,
            signal_timeout=timeout,
        )
        if status == "pending":
            svc.relay.wake()
        return status

    async def deliver_batch(
        svc: Service, by_lead: dict[int, list[StoredEvent]]
    ) -> None:
        """Leads in parallel (a few at a time), each lead's events in order.
        Once Temporal proves unreachable the rest is left to the relay, so a
        large batch does not wait out one timeout per event."""
        gate = asyncio.Semaphore(BATCH_DELIVERY_CONCURRENCY)
        unreachable = asyncio.Event()

        async def deliver_lead(events: list[StoredEvent]) -> None:
            async with gate:
                for stored in events:
                    if unreachable.is_set():
                        return
                    if not stored.deliver_now:
                        # A suspected scanner click waits for the relay.
                        continue
                    if await deliver(svc, stored) == "pending":
                        unreachable.set()

        await asyncio.gather(*(deliver_lead(events) for events in by_lead.values()))

    @app.get("/healthz", summary="The process is alive")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Ready to accept events: the database answers",
        description=(
            "Temporal being down does not make the service unready: events are "
            "stored and the relay delivers them later. `temporal` says whether "
            "the last attempt to reach it worked."
        ),
    )
    async def ready(request: Request) -> dict[str, str]:
        svc = service(request)

        def ping() -> None:
            with get_engine(svc.database_url).connect() as connection:
                connection.execute(text("select 1"))

        try:
            await asyncio.to_thread(ping)
        except Exception as error:
            raise HTTPException(503, "The database is not reachable.") from error
        try:
            client = await asyncio.wait_for(svc.client(), 2)
            await client.service_client.check_health(timeout=timedelta(seconds=2))
            temporal = "reachable"
        except Exception:
            temporal = "unreachable"
        return {"status": "ready", "temporal": temporal}

    @app.post(
        "/events",
        status_code=202,
        summary="A lead event, HMAC-signed",
        description=(
            "Headers: `X-Lead-Event-Timestamp` (Unix seconds) and "
            "`X-Lead-Event-Signature` (`sha256=` + hex HMAC-SHA256 with the "
            "webhook secret over `timestamp` + `.` + the raw body). A timestamp "
            "more than the tolerance from now is refused. 202 for a new event "
            "and for a repeat (`duplicate: true`, nothing done); an unknown "
            "lead is kept as `unmatched`."
        ),
        responses={
            400: {"description": "The body is not JSON"},
            401: {"description": "Signature missing, stale or wrong"},
            413: {"description": "The body is too large"},
            422: {"description": "Wrong fields or types, or an unknown type"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/LeadEventIn"}
                    }
                },
            }
        },
    )
    async def lead_event(request: Request) -> EventAccepted:
        svc = service(request)
        body = await read_body(request, svc.settings.webhook_max_body_bytes)
        try:
            verify_lead_event(
                svc.settings.webhook_secret.get_secret_value(),
                request.headers.get(LEAD_TIMESTAMP_HEADER),
                request.headers.get(LEAD_SIGNATURE_HEADER),
                body,
                now=clock(),
                tolerance=tolerance,
            )
        except SignatureError as error:
            note(request, refused="signature")
            raise HTTPException(401, str(error)) from error
        try:
            event = LeadEventIn.model_validate(parse_json(body))
            now = datetime.fromtimestamp(clock(), UTC)
            occurred_at = event.occurred_at(now, timedelta(seconds=tolerance))
        except PayloadError as error:
            raise HTTPException(400, str(error)) from error
        except ValidationError as error:
            raise HTTPException(422, _validation_problems(error)) from error
        except ValueError as error:
            raise HTTPException(422, str(error)) from error

        stored = await asyncio.to_thread(
            store_event, svc.database_url, event.to_incoming(occurred_at), svc.scanner
        )
        status = await deliver(svc, stored)
        note(
            request,
            type=event.type,
            lead_id=stored.lead_id,
            status=status,
            duplicate=not stored.created,
        )
        return EventAccepted(
            event_id=event.event_id,
            lead_id=stored.lead_id,
            status=status,
            duplicate=not stored.created,
        )

    @app.post(
        "/sendgrid/events",
        summary="SendGrid Event Webhook (signed)",
        description=(
            "A batch (JSON array) of SendGrid events. The ECDSA signature in "
            f"`{SENDGRID_SIGNATURE_HEADER}` over `{SENDGRID_TIMESTAMP_HEADER}` "
            "and the raw body is checked before the body is read as JSON. "
            "Events are mapped to leads by the `lead_id` custom argument, then "
            "by the send record of `sg_message_id`. Repeats (by `sg_event_id`) "
            "are ignored. Events that cannot be read are skipped and listed; "
            "the rest of the batch is accepted."
        ),
        responses={
            400: {"description": "The body is not a JSON array"},
            401: {"description": "Signature missing, stale or wrong"},
            413: {"description": "The body is too large"},
            503: {"description": "No verification key is configured"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "items": {"type": "object"}}
                    }
                },
            }
        },
    )
    async def sendgrid_events(request: Request) -> BatchAccepted:
        svc = service(request)
        body = await read_body(request, svc.settings.webhook_max_body_bytes)
        if svc.sendgrid is None:
            note(request, refused="no_key")
            raise HTTPException(
                503,
                "SENDGRID_WEBHOOK_PUBLIC_KEY is not set, so SendGrid events "
                "cannot be verified; none are accepted.",
            )
        try:
            verify_sendgrid(
                svc.sendgrid,
                request.headers.get(SENDGRID_TIMESTAMP_HEADER),
                request.headers.get(SENDGRID_SIGNATURE_HEADER),
                body,
                now=clock(),
                tolerance=tolerance,
            )
        except SignatureError as error:
            note(request, refused="signature")
            raise HTTPException(401, str(error)) from error
        try:
            items = parse_json(body)
        except PayloadError as error:
            raise HTTPException(400, str(error)) from error
        if not isinstance(items, list):
            message = f"the body must be a JSON array of events, got {_kind(items)}"
            raise HTTPException(400, message)

        batch = map_batch(items)
        outcome = BatchAccepted(
            received=len(items),
            stored=0,
            duplicates=0,
            unmatched=0,
            skipped=[f"event {index}: {reason}" for index, reason in batch.skipped],
        )
        # Every event is stored before any is signalled.
        by_lead: dict[int, list[StoredEvent]] = {}
        for incoming in batch.events:
            stored = await asyncio.to_thread(
                store_event, svc.database_url, incoming, svc.scanner
            )
            if not stored.created:
                outcome.duplicates += 1
                continue
            outcome.stored += 1
            if stored.lead_id is None:
                outcome.unmatched += 1
            else:
                by_lead.setdefault(stored.lead_id, []).append(stored)
        await deliver_batch(svc, by_lead)
        note(
            request,
            received=outcome.received,
            stored=outcome.stored,
            duplicates=outcome.duplicates,
            unmatched=outcome.unmatched,
            skipped=len(outcome.skipped),
        )
        return outcome

    @app.get(
        "/unsubscribe/{lead_id}",
        response_class=HTMLResponse,
        summary="Confirmation page of a signed unsubscribe link",
    )
    async def unsubscribe_page(
        lead_id: LeadIdPath, token: TokenQuery, request: Request
    ) -> str:
        _check_token(settings, lead_id, token)
        note(request, lead_id=lead_id)
        action = html.escape(f"/unsubscribe/{lead_id}?token={token}", quote=True)
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Unsubscribe</title></head><body>"
            f"<form method='post' action='{action}'>"
            "<p>Stop all marketing email to this address?</p>"
            "<button type='submit'>Unsubscribe</button></form></body></html>"
        )

    @app.post(
        "/unsubscribe/{lead_id}",
        response_class=HTMLResponse,
        summary="Unsubscribe at once (the one-click POST and the page's button)",
    )
    async def unsubscribe(
        lead_id: LeadIdPath, token: TokenQuery, request: Request
    ) -> str:
        _check_token(settings, lead_id, token)
        svc = service(request)

        def exists() -> bool:
            with Session(get_engine(svc.database_url)) as session:
                return session.get(Lead, lead_id) is not None

        if not await asyncio.to_thread(exists):
            raise HTTPException(404, f"There is no lead {lead_id}.")
        incoming = IncomingEvent(
            dedupe_key=f"unsubscribe-link:lead-{lead_id}",
            type="unsubscribe",
            occurred_at=datetime.fromtimestamp(clock(), UTC),
            source="unsubscribe-link",
            lead_id=lead_id,
        )
        # Storing it marks the lead unsubscribed in the same transaction, so
        # the next send is suppressed even while Temporal is unreachable.
        stored = await asyncio.to_thread(
            store_event, svc.database_url, incoming, svc.scanner
        )
        status = await deliver(svc, stored)
        note(request, lead_id=lead_id, status=status, duplicate=not stored.created)
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Unsubscribed</title></head><body>"
            "<p>You are unsubscribed and will get no more marketing email.</p>"
            "</body></html>"
        )

    def openapi() -> dict[str, Any]:
        # The lead event body is read raw (its signature covers the bytes), so
        # its schema is added to the document by hand.
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema = LeadEventIn.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.pop("$defs", {}))
            schemas["LeadEventIn"] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is larger than `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "Content-Length must be a number of bytes.")
        if int(declared) > limit:
            message = f"The body is {declared} bytes; at most {limit} are accepted."
            raise HTTPException(413, message)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            message = f"The body is larger than {limit} bytes, the most accepted."
            raise HTTPException(413, message)
        chunks.append(chunk)
    return b"".join(chunks)


def _validation_problems(error: ValidationError) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    for problem in error.errors(include_url=False, include_input=False):
        problems.append(
            {
                "field": ".".join(str(part) for part in problem["loc"]) or "body",
                "problem": problem["msg"],
            }
        )
    return jsonable_encoder(problems)  # type: ignore[no-any-return]


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _check_token(settings: Settings, lead_id: int, token: str) -> None:
    secret = settings.unsubscribe_secret.get_secret_value()
    # compare_digest refuses non-ASCII text; no valid token has any.
    if not token.isascii() or not is_valid_unsubscribe_token(secret, lead_id, token):
        raise HTTPException(403, "The unsubscribe link is not valid.")


def __getattr__(name: str) -> FastAPI:
    # `uvicorn webhooks.app:app` builds the app on first use, not on import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
