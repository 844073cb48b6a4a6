"""SendGrid Event Webhook events mapped to the product's event types.

| SendGrid event      | product event type                                  |
|---------------------|-----------------------------------------------------|
| processed           | email_processed                                     |
| delivered           | email_delivered                                     |
| deferred            | email_deferred                                      |
| dropped             | email_dropped                                       |
| bounce              | hard_bounce (`type: blocked`: soft_bounce)          |
| open                | email_open (`sg_machine_open`: machine_open)        |
| click               | email_click (a link scanner's burst: scanner_click) |
| unsubscribe         | unsubscribe                                         |
| group_unsubscribe   | unsubscribe (with the group id)                     |
| group_resubscribe   | resubscribe                                         |
| spamreport          | spam_report                                         |

`machine_open` and `scanner_click` are recorded and reach the journey, but the
scoring rules have no rule for them, so they earn no points and open no MQL.
The lead is the one named by the `lead_id` custom argument; when that is
missing or unknown, the one the send record of the message belongs to.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.intake import MACHINE_OPEN, IncomingEvent
from webhooks.lead_events import MAX_LEAD_ID

EVENT_TYPES = {
    "processed": "email_processed",
    "delivered": "email_delivered",
    "deferred": "email_deferred",
    "dropped": "email_dropped",
    "bounce": "hard_bounce",
    "open": "email_open",
    "click": "email_click",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    # TODO: a resubscribe is recorded and signalled but does not lift the
    # lead's suppression: unsubscribes are not kept per group yet.
    "group_resubscribe": "resubscribe",
    "spamreport": "spam_report",
}

# Event times SendGrid could send: 2000-01-01 to 2100-01-01.
_EARLIEST = 946_684_800
_LATEST = 4_102_444_800
_MAX_ID = 200


@dataclass
class MappedBatch:
    events: list[IncomingEvent] = field(default_factory=list)
    # (position in the batch, why it was skipped)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def map_batch(items: list[Any]) -> MappedBatch:
    batch = MappedBatch()
    for index, item in enumerate(items):
        try:
            batch.events.append(map_event(item))
        except ValueError as error:
            batch.skipped.append((index, str(error)))
    return batch


def map_event(item: Any) -> IncomingEvent:
    """One SendGrid event as an intake event; ValueError says what is wrong."""
    if not isinstance(item, dict):
        message = f"an event must be a JSON object, got {type(item).__name__}"
        raise ValueError(message)
    name = item.get("event")
    if not isinstance(name, str) or name not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        message = f"unknown SendGrid event {str(name)[:40]!r}; expected one of {known}"
        raise ValueError(message)
    timestamp = item.get("timestamp")
    if (
        not isinstance(timestamp, int | float)
        or isinstance(timestamp, bool)
        or not _EARLIEST <= timestamp <= _LATEST
    ):
        message = "timestamp must be Unix time in seconds between 2000 and 2100"
        raise ValueError(message)
    occurred_at = datetime.fromtimestamp(timestamp, UTC)

    message_id = _message_id(item.get("sg_message_id"))
    url = item.get("url") if isinstance(item.get("url"), str) else None
    event_type = EVENT_TYPES[name]
    properties: dict[str, Any] = {"sendgrid_event": name}
    if message_id:
        properties["message_id"] = message_id
    if name == "click":
        if not url:
            message = "a click event needs its url"
            raise ValueError(message)
        properties["url"] = url[:2048]
    if name == "open" and item.get("sg_machine_open") is True:
        # A mail privacy proxy fetched the images, not the person.
        event_type = MACHINE_OPEN
    if name == "bounce":
        bounce_type = item.get("type")
        if bounce_type == "blocked":
            event_type = "soft_bounce"
        properties["bounce_type"] = str(bounce_type or "bounce")[:40]
        classification = item.get("bounce_classification")
        if isinstance(classification, str):
            properties["bounce_classification"] = classification[:80]
    group = item.get("asm_group_id")
    if isinstance(group, int) and not isinstance(group, bool):
        properties["asm_group_id"] = group
    for name_in_args in ("journey", "step", "idempotency_key"):
        value = item.get(name_in_args)
        if isinstance(value, str) and len(value) <= _MAX_ID:
            properties[name_in_args] = value

    email = item.get("email")
    return IncomingEvent(
        dedupe_key=_dedupe_key(item, message_id, name, timestamp, url),
        type=event_type,
        occurred_at=occurred_at,
        source="sendgrid",
        lead_id=_lead_id(item.get("lead_id")),
        email=email if isinstance(email, str) and len(email) <= 320 else None,
        properties=properties,
        message_id=message_id,
    )


def _message_id(value: Any) -> str | None:
    """The part of sg_message_id before the first dot: the X-Message-Id the
    send got back from SendGrid."""
    if not isinstance(value, str):
        return None
    prefix = value.split(".", 1)[0].strip()
    return prefix if 0 < len(prefix) <= _MAX_ID else None


def _lead_id(value: Any) -> int | None:
    """custom_args arrive as strings; accept a plain positive integer only."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > 10:
            return None
        number = int(value)
    else:
        return None
    return number if 1 <= number <= MAX_LEAD_ID else None


def _dedupe_key(
    item: dict[str, Any],
    message_id: str | None,
    name: str,
    timestamp: float,
    url: str | None,
) -> str:
    """SendGrid's own event id; without one, what makes an event itself."""
    event_id = item.get("sg_event_id")
    if isinstance(event_id, str) and 0 < len(event_id) <= _MAX_ID:
        return f"sendgrid:{event_id}"
    email = item.get("email") if message_id is None else None
    parts = [message_id, name, timestamp, url, email]
    composite = json.dumps(parts, ensure_ascii=True, default=str)
    return f"sendgrid:composite:{hashlib.sha256(composite.encode()).hexdigest()}"
