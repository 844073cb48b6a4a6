"""Email backends: one interface, and the outbox used in development.

A backend delivers one fully rendered message. Deciding whether to send, and
making sure a touch is sent once, happens in `activities.email` before a
backend is called.

A backend reports trouble with one of three exceptions, so that the activity
can decide what Temporal should do:

    DeliveryError
    ├── ProviderBusy        429: wait until `retry_after`, then try again
    ├── ProviderUnavailable 5xx, timeouts, refused connections: retry with backoff
    └── ProviderRejected    400, 403, 413 and the like: retrying cannot help
"""

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class OutgoingEmail:
    idempotency_key: str
    to_email: str
    from_email: str
    from_name: str
    subject: str
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    custom_args: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    # Further recipients of the same message (a sales handoff to several
    # people); never the same address as `to_email`, whatever its case.
    cc: tuple[str, ...] = ()


class EmailBackend(Protocol):
    def deliver(self, message: OutgoingEmail) -> str:
        """Hand the message to the provider; return the provider's message id.

        Raises a `DeliveryError` subclass when the provider did not accept it.
        """
        ...


class DeliveryError(Exception):
    """The provider did not accept a message."""


class ProviderBusy(DeliveryError):
    """The provider's rate limit is reached until `retry_after` from now."""

    def __init__(self, message: str, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(DeliveryError):
    """A failure that another attempt, a little later, may not meet."""


class ProviderRejected(DeliveryError):
    """The provider refused this message and would refuse it again.

    `status` is the HTTP status, `body` the provider's error body as sent, and
    `address_refused` says whether the refusal is about the recipient's address
    (which then marks the lead) rather than about this one touch.
    """

    def __init__(
        self, message: str, *, status: int, body: str, address_refused: bool
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.address_refused = address_refused


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.-]+")


_UNFOLDED = policy.default.clone(max_line_length=998)


class OutboxBackend:
    """Writes each message as an `.eml` file named after its idempotency key,
    so delivering the same touch again rewrites the same file. The database
    row of the touch is written by the activity, as for every backend."""

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = outbox_dir

    def deliver(self, message: OutgoingEmail) -> str:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        message_id = make_msgid(domain="outbox.invalid")
        # Long header lines (the unsubscribe link) stay plain instead of being
        # encoded word by word, which mail clients would not act on.
        mime = EmailMessage(policy=_UNFOLDED)
        mime["From"] = formataddr((message.from_name, message.from_email))
        mime["To"] = message.to_email
        if message.cc:
            mime["Cc"] = ", ".join(message.cc)
        mime["Subject"] = message.subject
        mime["Message-ID"] = message_id
        for name, value in message.headers.items():
            mime[name] = value
        for name, value in message.custom_args.items():
            mime[f"X-Custom-Arg-{name}"] = value
        if message.categories:
            mime["X-Categories"] = ", ".join(message.categories)
        mime.set_content(message.text)
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")

        name = _UNSAFE_FILENAME.sub("_", message.idempotency_key) + ".eml"
        final = self.outbox_dir / name
        partial = final.with_suffix(".eml.partial")
        partial.write_bytes(bytes(mime))
        os.replace(partial, final)
        return message_id
