"""Property: malformed and hostile bodies, signed or not, never make either
endpoint answer 5xx, and nothing from an unsigned request is ever stored."""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from core.settings import Settings
from tests.webhook_service import (
    WEBHOOK_SECRET,
    SendGridKey,
    ServiceThread,
    event_count,
    journeys_dir,
    lead_event_headers,
)
from webhooks.app import create_app
from webhooks.lead_events import LEAD_EVENT_TYPES
from webhooks.sendgrid import EVENT_TYPES
from webhooks.signatures import (
    LEAD_SIGNATURE_HEADER,
    LEAD_TIMESTAMP_HEADER,
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
)

EXAMPLES = 60

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**31 - 3, max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["\x00", "\ud800", "a\x00b", "\U0001d518nicode", "' OR 1=1 --"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
lead_shaped = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.one_of(st.text(max_size=250), json_values),
        "type": st.one_of(st.sampled_from([*LEAD_EVENT_TYPES, "", "x"]), json_values),
        "time": st.one_of(
            st.datetimes(timezones=st.timezones()).map(lambda at: at.isoformat()),
            json_values,
        ),
        "lead_id": st.one_of(st.integers(), json_values),
        "email": st.one_of(st.emails(), json_values),
        "properties": st.one_of(
            st.dictionaries(st.text(max_size=10), json_values, max_size=4),
            st.just({"url": "javascript:alert(1)"}),
            st.just({"attributes": {"a": [1]}}),
            json_values,
        ),
    },
)
sendgrid_shaped = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "event": st.one_of(st.sampled_from([*EVENT_TYPES, "x"]), json_values),
            "timestamp": st.one_of(st.integers(), st.floats(), json_values),
            "sg_event_id": st.one_of(st.text(max_size=300), json_values),
            "sg_message_id": st.one_of(st.text(max_size=60), json_values),
            "lead_id": st.one_of(
                st.integers().map(str), st.text(max_size=12), json_values
            ),
            "url": st.one_of(st.text(max_size=100), json_values),
            "email": st.one_of(st.emails(), json_values),
            "sg_machine_open": json_values,
            "type": json_values,
        },
    )
    | json_values,
    max_size=5,
)
printable = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60
)
# Close to valid, so that signed requests also reach storage and delivery.
near_valid_lead_event = st.fixed_dictionaries(
    {
        "event_id": printable,
        "type": st.sampled_from(LEAD_EVENT_TYPES),
        "email": st.emails(),
    },
    optional={
        "time": st.datetimes(timezones=st.timezones()).map(lambda at: at.isoformat()),
        "properties": st.fixed_dictionaries(
            {"url": st.sampled_from(["https://example.com/p", "ftp://x", ""])},
            optional={"attributes": st.dictionaries(st.text(max_size=8), json_scalars)},
        ),
    },
)
near_valid_sendgrid_batch = st.lists(
    st.fixed_dictionaries(
        {
            "event": st.sampled_from(list(EVENT_TYPES)),
            "timestamp": st.integers(min_value=946_684_800, max_value=4_102_444_800),
            "email": st.emails(),
        },
        optional={
            "sg_event_id": printable,
            "sg_message_id": st.text(max_size=40),
            "url": st.text(max_size=60),
            "lead_id": st.integers(min_value=-5, max_value=10**12).map(str),
            "sg_machine_open": st.booleans(),
        },
    ),
    max_size=5,
)
hostile = st.sampled_from(
    [
        b"",
        b"null",
        b"[" * 5000 + b"]" * 5000,
        b'{"a": NaN}',
        b"[1e999]",
        b'"\\u0000"',
        b'["\\ud800"]',
        b"\xff\xfe\x00[",
        b"1" * 5000,
        b'{"event_id": "a", "type": "reply", "lead_id": 1, "lead_id": "x"}',
    ]
)


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_values.map(encoded),
    lead_shaped.map(encoded),
    sendgrid_shaped.map(encoded),
    near_valid_lead_event.map(encoded),
    near_valid_sendgrid_batch.map(encoded),
    hostile,
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80
)


@pytest.fixture(scope="module")
def key() -> SendGridKey:
    return SendGridKey()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    dev_env: WorkflowEnvironment,
    key: SendGridKey,
) -> Iterator[ServiceThread]:
    tmp_path = tmp_path_factory.mktemp("hostile-hooks")
    settings = Settings(
        database_url=database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_task_queue=f"hostile-{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path / "var",
        journeys_dir=journeys_dir(tmp_path),
        entry_journey="event-entry",
        webhook_secret=WEBHOOK_SECRET,  # type: ignore[arg-type]
        sendgrid_webhook_public_key=key.public_key,
        webhook_max_body_bytes=32_768,
    )
    with ServiceThread(create_app(settings)) as running:
        yield running


def unsigned_headers(
    kind: str, timestamp: str, signature: str, endpoint: str
) -> dict[str, str]:
    names = (
        (LEAD_TIMESTAMP_HEADER, LEAD_SIGNATURE_HEADER)
        if endpoint == "/events"
        else (SENDGRID_TIMESTAMP_HEADER, SENDGRID_SIGNATURE_HEADER)
    )
    if kind == "none":
        return {}
    if kind == "fresh timestamp, forged signature":
        return {names[0]: str(int(time.time())), names[1]: signature}
    return {names[0]: timestamp, names[1]: signature}


@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    body=bodies,
    endpoint=st.sampled_from(["/events", "/sendgrid/events"]),
    kind=st.sampled_from(["none", "garbage", "fresh timestamp, forged signature"]),
    timestamp=header_text,
    signature=header_text,
)
def test_unsigned_hostile_bodies_get_4xx_and_store_nothing(
    service: ServiceThread,
    database_url: str,
    body: bytes,
    endpoint: str,
    kind: str,
    timestamp: str,
    signature: str,
) -> None:
    before = event_count(database_url)

    answer = httpx.post(
        service.url + endpoint,
        content=body,
        headers=unsigned_headers(kind, timestamp, signature, endpoint),
        timeout=30,
    )

    event(f"unsigned {endpoint}: {answer.status_code}")
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert event_count(database_url) == before


@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=bodies, endpoint=st.sampled_from(["/events", "/sendgrid/events"]))
def test_signed_hostile_bodies_never_cause_a_server_error(
    service: ServiceThread, key: SendGridKey, body: bytes, endpoint: str
) -> None:
    now = int(time.time())
    headers = (
        lead_event_headers(body, now)
        if endpoint == "/events"
        else key.headers(body, now)
    )

    answer = httpx.post(
        service.url + endpoint, content=body, headers=headers, timeout=30
    )

    event(f"signed {endpoint}: {answer.status_code}")
    assert answer.status_code < 500, (answer.status_code, answer.text)
