"""Request signatures: HMAC-SHA256 for lead events, ECDSA for SendGrid.

Both are checked over the raw body bytes exactly as received, before anything
parses them, together with a signed timestamp that must be recent.

Lead events carry two headers:

- `X-Lead-Event-Timestamp`: Unix time in seconds when the sender signed;
- `X-Lead-Event-Signature`: `sha256=` and the hex HMAC-SHA256, keyed with
  `WEBHOOK_SECRET`, of the timestamp, a full stop, and the raw body.
"""

import base64
import binascii
import hashlib
import hmac

from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

LEAD_TIMESTAMP_HEADER = "X-Lead-Event-Timestamp"
LEAD_SIGNATURE_HEADER = "X-Lead-Event-Signature"
SENDGRID_TIMESTAMP_HEADER: str = EventWebhookHeader.TIMESTAMP
SENDGRID_SIGNATURE_HEADER: str = EventWebhookHeader.SIGNATURE

_SCHEME = "sha256="


class SignatureError(Exception):
    """A request whose signature or timestamp is missing, stale or wrong."""


def sign_lead_event(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Lead-Event-Signature` value for a body signed at `timestamp`."""
    digest = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return _SCHEME + digest


def check_timestamp(timestamp: str | None, now: float, tolerance: int) -> None:
    if not timestamp:
        message = "the signature timestamp header is missing"
        raise SignatureError(message)
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        message = (
            "the signature timestamp must be Unix time in whole seconds, "
            f"got {timestamp[:20]!r}"
        )
        raise SignatureError(message)
    age = now - int(timestamp)
    if abs(age) > tolerance:
        when = f"{int(age)} seconds old" if age > 0 else f"{int(-age)} seconds ahead"
        message = (
            f"the signature timestamp is {when}; at most {tolerance} seconds "
            "either way are accepted"
        )
        raise SignatureError(message)


# TODO: one shared secret; rotating it without refusing events needs a second
# (previous) secret accepted for a while.
def verify_lead_event(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: int,
) -> None:
    """Raise SignatureError unless the body was signed with `secret` recently."""
    if not signature:
        message = f"the {LEAD_SIGNATURE_HEADER} header is missing"
        raise SignatureError(message)
    check_timestamp(timestamp, now, tolerance)
    assert timestamp is not None
    expected = sign_lead_event(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        message = (
            f"the {LEAD_SIGNATURE_HEADER} header does not match the body; "
            f"expected '{_SCHEME}' and the hex HMAC-SHA256 of timestamp.body"
        )
        raise SignatureError(message)


def sendgrid_verifier(public_key: str) -> EventWebhook:
    """SendGrid's verifier for the key shown under the signed Event Webhook."""
    try:
        return EventWebhook(public_key.strip())
    except ValueError as error:
        message = (
            "SENDGRID_WEBHOOK_PUBLIC_KEY must be the base64 public key SendGrid "
            f"shows for the signed Event Webhook: {error}"
        )
        raise ValueError(message) from error


def verify_sendgrid(
    verifier: EventWebhook,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: int,
) -> None:
    """Raise SignatureError unless SendGrid signed these exact bytes recently."""
    if not signature:
        message = f"the {SENDGRID_SIGNATURE_HEADER} header is missing"
        raise SignatureError(message)
    check_timestamp(timestamp, now, tolerance)
    assert timestamp is not None
    try:
        # SendGrid signs the UTF-8 bytes it sends; a strict decode round-trips
        # them exactly, and bytes that are not UTF-8 cannot be SendGrid's.
        payload = body.decode("utf-8")
        base64.b64decode(signature, validate=True)
    except (UnicodeDecodeError, binascii.Error, ValueError) as error:
        message = "the SendGrid signature or body is not well formed"
        raise SignatureError(message) from error
    if not verifier.verify_signature(payload, signature, timestamp):
        message = "the SendGrid signature does not match the body and timestamp"
        raise SignatureError(message)
