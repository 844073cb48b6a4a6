"""`python -m webhooks.post_event '{"event_id": ..., "type": ..., "lead_id": ...}'`

Signs a lead event with `WEBHOOK_SECRET` the way `/events` expects and posts it
to `WEBHOOK_PUBLIC_URL`: what a source system does, for trying the service by
hand.
"""

import sys
import time

import httpx

from core.settings import get_settings
from webhooks.signatures import (
    LEAD_SIGNATURE_HEADER,
    LEAD_TIMESTAMP_HEADER,
    sign_lead_event,
)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    settings = get_settings()
    body = argv[0].encode()
    timestamp = str(int(time.time()))
    signature = sign_lead_event(
        settings.webhook_secret.get_secret_value(), timestamp, body
    )
    response = httpx.post(
        f"{settings.webhook_public_url.rstrip('/')}/events",
        content=body,
        headers={
            LEAD_TIMESTAMP_HEADER: timestamp,
            LEAD_SIGNATURE_HEADER: signature,
            "content-type": "application/json",
        },
        timeout=30,
    )
    print(response.status_code, response.text)
    return 0 if response.is_success else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
