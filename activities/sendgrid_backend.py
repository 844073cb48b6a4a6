"""Delivery through SendGrid's v3 Mail Send API, with the official client.

The host is configurable: SendGrid's EU data-residency host, or a local
stand-in in tests. The client speaks plain `urllib`, so its errors arrive as
`python_http_client` exceptions (an HTTP status) or as `OSError` (no answer);
both are turned into the backend's `DeliveryError` kinds here.
"""

import http.client
import json
import time
from datetime import timedelta
from typing import Any

import structlog
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Category,
    Cc,
    CustomArg,
    From,
    Header,
    HtmlContent,
    Mail,
    Personalization,
    PlainTextContent,
    Subject,
    To,
)

from activities.backends import (
    OutgoingEmail,
    ProviderBusy,
    ProviderRejected,
    ProviderUnavailable,
)

log = structlog.get_logger(__name__)

# When a 429 carries no usable reset header, wait this long before trying again.
DEFAULT_RATE_LIMIT_WAIT = timedelta(seconds=10)
# A reset further away than this is not believed (a clock far off, a bad header).
LONGEST_RATE_LIMIT_WAIT = timedelta(minutes=15)

# Statuses after which the same request would be refused again.
_REFUSED_FOR_GOOD = frozenset({400, 403, 404, 405, 413, 415, 422})


class SendGridBackend:
    """Sends one message per call through `POST /v3/mail/send`."""

    def __init__(
        self, api_key: str, host: str = "https://api.sendgrid.com", timeout: float = 10
    ) -> None:
        self._client = SendGridAPIClient(api_key, host=host)
        self.host = host
        self.timeout = timeout

    def request_body(self, message: OutgoingEmail) -> dict[str, Any]:
        """The v3 JSON body for one message, built with the client's helpers."""
        mail = Mail()
        mail.from_email = From(message.from_email, message.from_name)
        personalization = Personalization()
        personalization.add_to(To(message.to_email))
        for address in message.cc:
            personalization.add_cc(Cc(address))
        mail.add_personalization(personalization)
        mail.subject = Subject(message.subject)
        mail.add_content(PlainTextContent(message.text))
        if message.html is not None:
            mail.add_content(HtmlContent(message.html))
        for name, value in message.headers.items():
            mail.add_header(Header(name, value))
        # SendGrid refuses custom_args values that are not strings.
        for name, value in message.custom_args.items():
            mail.add_custom_arg(CustomArg(name, str(value)))
        for category in dict.fromkeys(message.categories):
            mail.add_category(Category(category))
        body: dict[str, Any] = mail.get()
        return body

    def deliver(self, message: OutgoingEmail) -> str:
        body = self.request_body(message)
        try:
            response = self._client.client.mail.send.post(
                request_body=body, timeout=self.timeout
            )
        except HTTPError as error:
            raise _delivery_error(error) from None
        except (OSError, http.client.HTTPException) as error:
            # Refused connections, timeouts, resets: SendGrid may or may not
            # have the message. Retrying is the lesser harm (see the crash
            # window in activities.email).
            message_text = f"SendGrid at {self.host} did not answer: {error!r}."
            raise ProviderUnavailable(message_text) from error

        message_id = response.headers.get("X-Message-Id")
        if not message_id:
            # Accepted all the same; keep a marker rather than fail the touch.
            log.warning("sendgrid.no_message_id", status=response.status_code)
            return ""
        return str(message_id)


def _delivery_error(
    error: HTTPError,
) -> ProviderBusy | ProviderUnavailable | ProviderRejected:
    status = int(error.status_code)
    raw = error.body
    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if status == 429:
        wait = rate_limit_wait(error.headers)
        message = f"SendGrid's rate limit is reached; it resets in {wait}."
        return ProviderBusy(message, wait)
    if status in _REFUSED_FOR_GOOD:
        message = f"SendGrid refused the message with {status}: {body}"
        return ProviderRejected(
            message,
            status=status,
            body=body,
            address_refused=status == 400 and _is_about_recipient(body),
        )
    # 5xx, and 401 (a key an operator can still fix): try again later.
    message = f"SendGrid answered {status}: {body}"
    return ProviderUnavailable(message)


def rate_limit_wait(headers: Any, now: float | None = None) -> timedelta:
    """How long to wait after a 429: until `X-RateLimit-Reset` (epoch seconds),
    or `Retry-After` seconds, bounded, never less than one second."""
    now = time.time() if now is None else now
    wait: timedelta | None = None
    reset = headers.get("X-RateLimit-Reset") if headers is not None else None
    retry_after = headers.get("Retry-After") if headers is not None else None
    try:
        if reset is not None:
            wait = timedelta(seconds=float(reset) - now)
        elif retry_after is not None:
            wait = timedelta(seconds=float(retry_after))
    except ValueError:
        wait = None
    if wait is None:
        return DEFAULT_RATE_LIMIT_WAIT
    return min(max(wait, timedelta(seconds=1)), LONGEST_RATE_LIMIT_WAIT)


def _is_about_recipient(body: str) -> bool:
    """Whether a 400 body blames the recipient's address (as opposed to the
    sender, the content or the size): SendGrid names the offending field."""
    try:
        errors = json.loads(body).get("errors", [])
    except (ValueError, AttributeError):
        return False
    for problem in errors:
        if not isinstance(problem, dict):
            continue
        field = str(problem.get("field") or "")
        if field.startswith("personalizations") and field.endswith(".email"):
            return True
    return False
