"""Email backends: one interface, and the outbox used in development.

A backend delivers one fully rendered message. Deciding whether to send, and
making sure a touch is sent once, happens in `activities.email` before a
backend is called.
"""

import os
import re
from dataclasses import dataclass, field
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


class EmailBackend(Protocol):
    def deliver(self, message: OutgoingEmail) -> str:
        """Hand the message to the provider; return the provider's message id."""
        ...


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.-]+")


class OutboxBackend:
    """Writes each message as an `.eml` file named after its idempotency key,
    so delivering the same touch again rewrites the same file."""

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = outbox_dir

    def deliver(self, message: OutgoingEmail) -> str:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        message_id = make_msgid(domain="outbox.invalid")
        mime = EmailMessage()
        mime["From"] = formataddr((message.from_name, message.from_email))
        mime["To"] = message.to_email
        mime["Subject"] = message.subject
        mime["Message-ID"] = message_id
        for name, value in message.headers.items():
            mime[name] = value
        for name, value in message.custom_args.items():
            mime[f"X-Custom-Arg-{name}"] = value
        mime.set_content(message.text)
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")

        name = _UNSAFE_FILENAME.sub("_", message.idempotency_key) + ".eml"
        final = self.outbox_dir / name
        partial = final.with_suffix(".eml.partial")
        partial.write_bytes(bytes(mime))
        os.replace(partial, final)
        return message_id
