"""What a lead event looks like on the wire, and how it becomes an intake event."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    model_validator,
)

from core.intake import IncomingEvent

# Lead ids are PostgreSQL integers.
MAX_LEAD_ID = 2_147_483_647

LeadEventType = Literal[
    "page_visit",
    "form_submitted",
    "demo_request",
    "reply",
    "purchase",
    "sales_accepted",
    "sales_rejected",
    "sales_won",
    "sales_lost",
    "attribute_update",
    "unsubscribe",
]
LEAD_EVENT_TYPES: tuple[str, ...] = get_args(LeadEventType)

Scalar = str | int | float | bool | None


class LeadEventIn(BaseModel):
    """One thing a lead (or sales, about a lead) did, sent by a source system.

    Name the lead by `lead_id` or by `email`. `page_visit` needs
    `properties.url` (http or https); `attribute_update` needs
    `properties.attributes`, an object of attribute names to plain values,
    which is merged into the lead's attributes. Sign the exact body bytes: see
    the `X-Lead-Event-Signature` header.
    """

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="The sender's id for the event; a repeat is ignored.",
    )
    type: LeadEventType
    time: AwareDatetime | None = Field(
        default=None,
        validation_alias=AliasChoices("time", "occurred_at"),
        description="When it happened, ISO 8601 with a zone; default: now.",
    )
    lead_id: Annotated[StrictInt, Field(ge=1, le=MAX_LEAD_ID)] | None = None
    email: str | None = Field(
        default=None, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"
    )
    properties: dict[str, JsonValue] = {}

    @model_validator(mode="after")
    def _is_complete(self) -> "LeadEventIn":
        if self.lead_id is None and self.email is None:
            message = "an event needs a lead_id or an email; it had neither"
            raise ValueError(message)
        if self.type == "page_visit":
            url = self.properties.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                message = (
                    "a page_visit needs properties.url, an http or https URL; "
                    f"got {_describe(url)}"
                )
                raise ValueError(message)
            if len(url) > 2048:
                message = f"properties.url is {len(url)} characters; at most 2048"
                raise ValueError(message)
        if self.type == "attribute_update":
            attributes = self.properties.get("attributes")
            if (
                not isinstance(attributes, dict)
                or not attributes
                or not all(isinstance(v, Scalar) for v in attributes.values())
            ):
                message = (
                    "an attribute_update needs properties.attributes, a non-empty "
                    "object of names to plain values (text, number, true/false, "
                    f"null); got {_describe(attributes)}"
                )
                raise ValueError(message)
        return self

    def occurred_at(self, now: datetime, tolerance: timedelta) -> datetime:
        if self.time is None:
            return now
        if not 2000 <= self.time.year <= 2100:
            message = f"time must be between the years 2000 and 2100, got {self.time}"
            raise ValueError(message)
        if self.time - now > tolerance:
            message = (
                f"time {self.time.isoformat()} is in the future; events may be at "
                f"most {int(tolerance.total_seconds())} seconds ahead of now"
            )
            raise ValueError(message)
        return self.time.astimezone(UTC)

    def to_incoming(self, occurred_at: datetime) -> IncomingEvent:
        return IncomingEvent(
            dedupe_key=f"lead-event:{self.event_id}",
            type=self.type,
            occurred_at=occurred_at,
            source="webhook",
            lead_id=self.lead_id,
            email=self.email,
            properties=dict(self.properties),
        )


class EventAccepted(BaseModel):
    """What became of a lead event: stored (and maybe delivered), or a repeat."""

    event_id: str
    lead_id: int | None
    status: str = Field(
        description=(
            "delivered, pending (stored; delivered when Temporal answers), "
            "unmatched (no such lead), no_journey, journey_finished"
        )
    )
    duplicate: bool


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"
