"""The relay: delivers events that were stored but not yet signalled.

An event stays `pending` when Temporal was unreachable as it arrived, when the
request that stored it died before signalling, or while a suspected scanner
click waits for the rest of its burst. The relay claims due pending events
with `FOR UPDATE SKIP LOCKED` and a lease, so several relays (one per webhook
replica) never deliver the same event at the same moment; the journey ignores
a repeated event id in any case.

It runs as a background task inside the webhook service (`webhooks/app.py`
starts it with the app), so `uvicorn webhooks.app:app` is enough. It can also
run on its own: `python -m core.relay`.
"""

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import text
from sqlmodel import Session
from temporalio.client import Client

from core.db import get_engine, resolve_database_url, upgrade
from core.intake import JourneyEntry, ScannerRule, deliver_event
from core.logs import configure_logging
from core.settings import Settings, get_settings
from core.temporal import connect
from models.tables import EventStatus, utcnow

log = structlog.get_logger(__name__)

# A claimed event is the claimant's for this long; then any relay may retry.
CLAIM_LEASE = timedelta(seconds=60)

_CLAIM = text(
    """
    UPDATE events SET relay_after = :lease_until
    WHERE id IN (
        SELECT id FROM events
        WHERE status = 'pending' AND lead_id IS NOT NULL
          AND (relay_after IS NULL OR relay_after <= :now)
        ORDER BY id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id
    """
)
_RELEASE = text(
    "UPDATE events SET relay_after = :now WHERE id = ANY(:ids) AND status = 'pending'"
)


@dataclass
class RelayPass:
    claimed: int = 0
    delivered: int = 0
    # True when Temporal could not be reached; the rest waits for the next pass.
    interrupted: bool = False


def claim_due(database_url: str, limit: int) -> list[int]:
    now = utcnow()
    with Session(get_engine(database_url)) as session:
        rows = session.execute(
            _CLAIM, {"now": now, "lease_until": now + CLAIM_LEASE, "limit": limit}
        )
        ids = sorted(int(row[0]) for row in rows)
        session.commit()
    return ids


def release(database_url: str, ids: list[int]) -> None:
    if not ids:
        return
    with Session(get_engine(database_url)) as session:
        session.execute(_RELEASE, {"now": utcnow(), "ids": ids})
        session.commit()


class LazyClient:
    """One Temporal client per process, connected on first use (Temporal may be
    down when the process starts) and reused after."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await connect(self.settings)
            return self._client


class Relay:
    """Delivers due pending events, a batch per pass, oldest first."""

    def __init__(
        self,
        database_url: str,
        client: Callable[[], Awaitable[Client]],
        *,
        entry: JourneyEntry | None,
        scanner: ScannerRule,
        interval: float,
        batch_size: int = 100,
        timeout: float = 5.0,
    ) -> None:
        self.database_url = database_url
        self._client = client
        self.entry = entry
        self.scanner = scanner
        self.interval = interval
        self.batch_size = batch_size
        self.timeout = timeout
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run the next pass now rather than after the interval."""
        self._wake.set()

    async def run_once(self) -> RelayPass:
        outcome = RelayPass()
        ids = await asyncio.to_thread(claim_due, self.database_url, self.batch_size)
        outcome.claimed = len(ids)
        if not ids:
            return outcome
        try:
            client = await asyncio.wait_for(self._client(), self.timeout)
        except (RuntimeError, TimeoutError):
            await asyncio.to_thread(release, self.database_url, ids)
            outcome.interrupted = True
            return outcome
        for index, event_id in enumerate(ids):
            status = await deliver_event(
                client,
                self.database_url,
                event_id,
                entry=self.entry,
                scanner=self.scanner,
                signal_timeout=self.timeout,
            )
            if status == EventStatus.PENDING:
                # Temporal is unreachable: stop hammering it until next pass.
                rest = ids[index + 1 :]
                await asyncio.to_thread(release, self.database_url, rest)
                outcome.interrupted = True
                break
            outcome.delivered += 1
        return outcome

    async def run_forever(self) -> None:
        """Pass after pass until cancelled; a full batch goes again at once."""
        while True:
            try:
                outcome = await self.run_once()
            except Exception:
                # The database may be briefly unreachable; try again later.
                log.exception("relay.pass_failed")
                outcome = RelayPass(interrupted=True)
            if outcome.claimed:
                log.info(
                    "relay.pass",
                    claimed=outcome.claimed,
                    delivered=outcome.delivered,
                    interrupted=outcome.interrupted,
                )
            if outcome.claimed == self.batch_size and not outcome.interrupted:
                continue
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)


async def main() -> None:
    """Run a relay on its own, beside or instead of the webhook service's."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    database_url = resolve_database_url(settings)
    upgrade(database_url)
    relay = Relay(
        database_url,
        LazyClient(settings),
        entry=JourneyEntry.from_settings(settings),
        scanner=ScannerRule.from_settings(settings),
        interval=settings.relay_interval_seconds,
        batch_size=settings.relay_batch_size,
        timeout=settings.temporal_signal_timeout_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    relaying = asyncio.create_task(relay.run_forever())
    log.info("relay.started")
    await stop.wait()
    relaying.cancel()
    with suppress(asyncio.CancelledError):
        await relaying
    log.info("relay.stopped")


if __name__ == "__main__":
    asyncio.run(main())
