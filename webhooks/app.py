"""The webhook service: lead events in, signals out. Every accepted event is
written to the database before it is signalled."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import text
from sqlmodel import Session
from temporalio.client import Client

from core.db import get_engine, resolve_database_url, upgrade
from core.intake import IncomingEvent, deliver_event, store_event
from core.logs import configure_logging
from core.settings import Settings, get_settings
from core.signing import is_valid_unsubscribe_token
from core.temporal import connect
from models.tables import Lead, utcnow

log = structlog.get_logger("webhooks")


class LeadEventIn(BaseModel):
    """A lead event as a source system sends it."""

    event_id: str = Field(min_length=1, max_length=200)
    type: str = Field(pattern=r"^[a-z][a-z_]{1,49}$")
    occurred_at: datetime | None = None
    lead_id: int | None = None
    email: str | None = Field(default=None, max_length=320)
    properties: dict[str, Any] = {}

    @model_validator(mode="after")
    def _names_a_lead(self) -> "LeadEventIn":
        if self.lead_id is None and not self.email:
            message = "an event needs a lead_id or an email"
            raise ValueError(message)
        return self


class EventAccepted(BaseModel):
    event_id: str
    lead_id: int | None
    status: str
    duplicate: bool


class Service:
    """What the routes share: settings, database URL and a Temporal client."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await connect(self.settings)
            return self._client


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_format, settings.log_level)
        database_url = resolve_database_url(settings)
        await asyncio.to_thread(upgrade, database_url)
        app.state.service = Service(settings, database_url)
        yield

    app = FastAPI(title="Lead nurture webhooks", lifespan=lifespan)

    def service(request: Request) -> Service:
        return request.app.state.service  # type: ignore[no-any-return]

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def ready(request: Request) -> dict[str, str]:
        database_url = service(request).database_url

        def ping() -> None:
            with get_engine(database_url).connect() as connection:
                connection.execute(text("select 1"))

        try:
            await asyncio.to_thread(ping)
        except Exception as error:
            raise HTTPException(503, "the database is not reachable") from error
        return {"status": "ready"}

    @app.post("/events", status_code=202)
    async def lead_event(body: LeadEventIn, request: Request) -> EventAccepted:
        svc = service(request)
        incoming = IncomingEvent(
            dedupe_key=f"lead-event:{body.event_id}",
            type=body.type,
            occurred_at=body.occurred_at or datetime.now(UTC),
            source="webhook",
            lead_id=body.lead_id,
            email=body.email,
            properties=body.properties,
        )
        stored = await asyncio.to_thread(store_event, svc.database_url, incoming)
        status = "unmatched" if stored.lead_id is None else "pending"
        if stored.created and stored.lead_id is not None:
            try:
                status = await deliver_event(
                    await svc.client(), svc.database_url, stored.id
                )
            except RuntimeError:
                # Temporal is unreachable; the row stays pending.
                status = "pending"
        log.info(
            "webhook.event",
            type=body.type,
            lead_id=stored.lead_id,
            status=status,
            duplicate=not stored.created,
        )
        return EventAccepted(
            event_id=body.event_id,
            lead_id=stored.lead_id,
            status=status,
            duplicate=not stored.created,
        )

    @app.get("/unsubscribe/{lead_id}", response_class=HTMLResponse)
    async def unsubscribe_page(
        lead_id: int, token: Annotated[str, Query(max_length=100)]
    ) -> str:
        _check_token(settings, lead_id, token)
        return (
            "<html><body><form method='post'>"
            "<p>Stop all marketing email to this address?</p>"
            "<button type='submit'>Unsubscribe</button></form></body></html>"
        )

    @app.post("/unsubscribe/{lead_id}")
    async def unsubscribe(
        lead_id: int, token: Annotated[str, Query(max_length=100)], request: Request
    ) -> dict[str, str]:
        _check_token(settings, lead_id, token)
        svc = service(request)

        def apply() -> None:
            with Session(get_engine(svc.database_url)) as session:
                lead = session.get(Lead, lead_id)
                if lead is None:
                    raise HTTPException(404, "no such lead")
                if lead.unsubscribed_at is None:
                    lead.unsubscribed_at = utcnow()
                    session.add(lead)
                    session.commit()

        await asyncio.to_thread(apply)
        incoming = IncomingEvent(
            dedupe_key=f"unsubscribe:lead-{lead_id}",
            type="unsubscribe",
            occurred_at=datetime.now(UTC),
            source="unsubscribe-link",
            lead_id=lead_id,
        )
        stored = await asyncio.to_thread(store_event, svc.database_url, incoming)
        if stored.created:
            await deliver_event(await svc.client(), svc.database_url, stored.id)
        log.info("webhook.unsubscribe", lead_id=lead_id)
        return {"status": "unsubscribed"}

    return app


def _check_token(settings: Settings, lead_id: int, token: str) -> None:
    secret = settings.unsubscribe_secret.get_secret_value()
    if not is_valid_unsubscribe_token(secret, lead_id, token):
        raise HTTPException(403, "the unsubscribe link is not valid")


def __getattr__(name: str) -> FastAPI:
    # `uvicorn webhooks.app:app` builds the app on first use, not on import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
