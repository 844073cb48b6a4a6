"""Signed links: a lead's one-click unsubscribe URL carries an HMAC of its id."""

import base64
import hashlib
import hmac


def unsubscribe_token(secret: str, lead_id: int) -> str:
    digest = hmac.new(
        secret.encode(), f"unsubscribe:{lead_id}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def unsubscribe_url(base_url: str, secret: str, lead_id: int) -> str:
    token = unsubscribe_token(secret, lead_id)
    return f"{base_url.rstrip('/')}/unsubscribe/{lead_id}?token={token}"


def is_valid_unsubscribe_token(secret: str, lead_id: int, token: str) -> bool:
    return hmac.compare_digest(unsubscribe_token(secret, lead_id), token)
