"""What the webhook tests share: the real service under uvicorn on a loopback
port, a signing SendGrid stand-in key, lead factories and polling helpers."""

import asyncio
import base64
import json
import random
import shutil
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from sqlmodel import Session, col, func, select
from temporalio.client import Client

from core.db import get_engine
from models.tables import Lead, LeadEvent
from tests.conftest import free_port
from tests.factories import JOURNEYS
from webhooks.lead_events import MAX_LEAD_ID
from webhooks.signatures import (
    LEAD_SIGNATURE_HEADER,
    LEAD_TIMESTAMP_HEADER,
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    sign_lead_event,
)
from workflows.journey import LeadJourney, workflow_id_for

WEBHOOK_SECRET = "test-webhook-secret"

# A journey that events may start: score, then wait a long while (no email).
ENTRY_JOURNEY = """\
name: event-entry
version: 1
description: Entered by an event (webhook tests)
entry:
  events: [form_submitted, demo_request, email_click]
  reenrol: false
steps:
  - id: first-score
    kind: score
  - id: linger
    kind: wait
    duration: 30d
"""


def journeys_dir(tmp_path: Path) -> Path:
    """The project's scoring rules beside the test entry journey."""
    folder = tmp_path / "journeys"
    folder.mkdir(exist_ok=True)
    shutil.copy(JOURNEYS / "scoring.yaml", folder / "scoring.yaml")
    (folder / "event-entry.yaml").write_text(ENTRY_JOURNEY, encoding="utf-8")
    return folder


class SendGridKey:
    """An EC key pair standing in for SendGrid's signing key."""

    def __init__(self) -> None:
        self._private = ec.generate_private_key(ec.SECP256R1())
        der = self._private.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signed = str(timestamp).encode() + body
        signature = self._private.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            SENDGRID_TIMESTAMP_HEADER: str(timestamp),
            SENDGRID_SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            "content-type": "application/json",
        }


def lead_event_headers(
    body: bytes, timestamp: int, secret: str = WEBHOOK_SECRET
) -> dict[str, str]:
    stamp = str(timestamp)
    return {
        LEAD_TIMESTAMP_HEADER: stamp,
        LEAD_SIGNATURE_HEADER: sign_lead_event(secret, stamp, body),
        "content-type": "application/json",
    }


def sendgrid_batch(*events: dict[str, Any]) -> bytes:
    """Events one per line, separated by CRLF, with a trailing CRLF."""
    lines = [json.dumps(event) for event in events]
    return b"[" + b",\r\n".join(line.encode() for line in lines) + b"]\r\n"


@dataclass
class Clock:
    """The service's idea of now, movable by tests."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class ServiceThread:
    """uvicorn serving the app on 127.0.0.1 in a thread of its own."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> "ServiceThread":
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the webhook service did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def make_leads(database_url: str, count: int, **fields: Any) -> list[int]:
    """New leads with random ids far above the serial ones: other tests on the
    shared dev server start `lead-<id>` journeys for ids of other databases,
    and a journey id must be this test's alone."""
    run = uuid.uuid4().hex[:10]
    ids = random.sample(range(1_000_000_000, MAX_LEAD_ID), count)
    with Session(get_engine(database_url)) as session:
        for number, lead_id in enumerate(ids):
            session.add(
                Lead(id=lead_id, email=f"hook-{run}-{number}@example.com", **fields)
            )
        session.commit()
    return ids


def events_where(database_url: str, *conditions: Any) -> list[LeadEvent]:
    with Session(get_engine(database_url)) as session:
        return list(
            session.exec(select(LeadEvent).where(*conditions).order_by(LeadEvent.id))
        )


def event_count(database_url: str) -> int:
    with Session(get_engine(database_url)) as session:
        return int(session.exec(select(func.count(col(LeadEvent.id)))).one())


async def eventually(
    check: Callable[[], Awaitable[bool]], seconds: float = 30, what: str = ""
) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"did not happen within {seconds} s: {what}")
        await asyncio.sleep(0.2)


async def journey_state(client: Client, lead_id: int) -> dict[str, Any]:
    handle = client.get_workflow_handle(workflow_id_for(lead_id))
    return await handle.query(LeadJourney.state)  # type: ignore[no-any-return]


async def handled(client: Client, lead_id: int, event_ids: list[str]) -> bool:
    try:
        state = await journey_state(client, lead_id)
    except Exception:
        return False
    return set(event_ids) <= set(state["handled_event_ids"])


@dataclass
class SignalCount:
    """How many `record_event` signals carried each event id."""

    by_event: dict[str, int] = field(default_factory=dict)


async def signals_received(client: Client, lead_id: int) -> SignalCount:
    handle = client.get_workflow_handle(workflow_id_for(lead_id))
    history = await handle.fetch_history()
    counts = SignalCount()
    converter = client.data_converter
    for event in history.events:
        if not event.HasField("workflow_execution_signaled_event_attributes"):
            continue
        attributes = event.workflow_execution_signaled_event_attributes
        if attributes.signal_name != "record_event":
            continue
        (payload,) = await converter.decode(attributes.input.payloads)
        event_id = payload["event_id"] if isinstance(payload, dict) else ""
        counts.by_event[event_id] = counts.by_event.get(event_id, 0) + 1
    return counts
