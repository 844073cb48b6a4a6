"""The send activity against a local SendGrid stand-in: the real `sendgrid`
client, the real request bytes, a real database."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.backends import OutgoingEmail, ProviderUnavailable
from activities.email import EmailActivities
from activities.send_policy import SendPolicy
from activities.sendgrid_backend import SendGridBackend
from core.settings import Settings
from core.signing import unsubscribe_url
from models.messages import EmailOutcome, EmailRequest
from models.tables import EmailSend, SendStatus
from tests.conftest import free_port
from tests.email_fixtures import (
    POSTAL_ADDRESS,
    PUBLIC_URL,
    UNSUBSCRIBE_SECRET,
    email_activities,
    email_request,
    get_lead,
    make_lead,
    touch,
    unique_email,
)
from tests.sendgrid_standin import (
    Reply,
    SendGridStandIn,
    bad_request,
    rate_limited,
    running_standin,
    server_error,
)
from worker import email_backend

API_KEY = "SG.test-key"


@pytest.fixture
def sendgrid_standin() -> Iterator[SendGridStandIn]:
    with running_standin() as standin:
        yield standin


def backend_for(standin: SendGridStandIn) -> SendGridBackend:
    return SendGridBackend(API_KEY, host=standin.url, timeout=5)


def test_templated_email_reaches_sendgrid_as_the_exact_v3_body(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    email = unique_email()
    lead_id = make_lead(database_url, email=email, first_name="Zoë")
    request = email_request(lead_id)
    activities = email_activities(database_url, backend_for(sendgrid_standin))

    outcome = ActivityEnvironment().run(activities.send_email, request)

    [sent] = sendgrid_standin.requests
    assert sent.method == "POST"
    assert sent.path == "/v3/mail/send"
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["Content-Type"] == "application/json"
    body = sent.json()
    assert set(body) == {
        "from",
        "subject",
        "personalizations",
        "content",
        "headers",
        "custom_args",
        "categories",
    }
    assert body["from"] == {"email": "hello@example.com", "name": "Lead Nurture"}
    assert body["personalizations"] == [{"to": [{"email": email}]}]
    assert body["subject"] == "Welcome aboard, Zoë"
    link = unsubscribe_url(PUBLIC_URL, UNSUBSCRIBE_SECRET, lead_id)
    assert body["headers"] == {
        "List-Unsubscribe": f"<{link}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert body["custom_args"] == {
        "lead_id": str(lead_id),
        "journey": "welcome",
        "step": "welcome",
        "idempotency_key": request.idempotency_key,
    }
    assert all(isinstance(value, str) for value in body["custom_args"].values())
    assert sorted(body["categories"]) == ["marketing", "welcome"]
    [text, html] = body["content"]
    assert text["type"] == "text/plain"
    assert text["value"].startswith("Hi Zoë,\n")
    assert (
        text["value"]
        .rstrip()
        .endswith(f"{POSTAL_ADDRESS}\nUnsubscribe with one click: {link}")
    )
    assert html["type"] == "text/html"
    assert html["value"].startswith("<p>Hi Zoë,</p>")
    assert f'<a href="{link}">' in html["value"]
    assert POSTAL_ADDRESS in html["value"]
    assert outcome == EmailOutcome(status="sent", message_id="standin-1")
    record = touch(database_url, request.idempotency_key)
    assert record is not None
    assert record.status == SendStatus.SENT
    assert record.provider_message_id == "standin-1"


def test_subject_with_accents_and_emoji_arrives_intact_in_the_request_bytes(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url, first_name="Renée")
    subject = "Café, crème brûlée and 🚀 for {{ first_name }} 🎉"
    activities = email_activities(database_url, backend_for(sendgrid_standin))

    ActivityEnvironment().run(
        activities.send_email, email_request(lead_id, subject=subject)
    )

    [sent] = sendgrid_standin.requests
    assert sent.json()["subject"] == "Café, crème brûlée and 🚀 for Renée 🎉"
    # The client writes JSON with ASCII escapes: the bytes carry each accent
    # as one escape and each emoji as its UTF-16 surrogate pair.
    raw = sent.body
    assert b'"subject": "Caf\\u00e9, cr\\u00e8me br\\u00fbl\\u00e9e and ' in raw
    assert b"\\ud83d\\ude80 for Ren\\u00e9e \\ud83c\\udf89" in raw


def test_blank_first_name_falls_back_in_subject_and_body(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url, first_name="  ")
    activities = email_activities(database_url, backend_for(sendgrid_standin))

    ActivityEnvironment().run(activities.send_email, email_request(lead_id))

    body = sendgrid_standin.requests[0].json()
    assert body["subject"] == "Welcome aboard, there"
    assert body["content"][0]["value"].startswith("Hi there,\n")


class CrashAfterRecord(EmailActivities):
    """The worker dies after the send was recorded, before Temporal heard of
    it: the first attempt raises once its work is done."""

    crashed = False

    def _deliver(self, session, record, message):  # type: ignore[no-untyped-def]
        outcome = super()._deliver(session, record, message)
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("simulated crash after the send was recorded")
        return outcome


def test_retry_after_a_crash_following_acceptance_makes_one_provider_request(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    activities = email_activities(
        database_url, backend_for(sendgrid_standin), activities_class=CrashAfterRecord
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        ActivityEnvironment().run(activities.send_email, request)

    retried = ActivityEnvironment().run(activities.send_email, request)

    assert len(sendgrid_standin.requests) == 1
    assert retried.status == "sent"
    assert retried.message_id == "standin-1"


class CrashBeforeRecord(EmailActivities):
    """The worker dies after SendGrid's 202 and before the `sent` commit: the
    documented window."""

    crashed = False

    def _deliver(self, session, record, message):  # type: ignore[no-untyped-def]
        if not self.crashed:
            self.crashed = True
            self.backend.deliver(message)
            raise RuntimeError("simulated crash before the send was recorded")
        return super()._deliver(session, record, message)


def test_crash_between_acceptance_and_record_repeats_the_send_as_documented(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    activities = email_activities(
        database_url, backend_for(sendgrid_standin), activities_class=CrashBeforeRecord
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        ActivityEnvironment().run(activities.send_email, request)

    retried = ActivityEnvironment().run(activities.send_email, request)

    # This pins the known limitation rather than hiding it: two requests.
    assert len(sendgrid_standin.requests) == 2
    assert retried.message_id == "standin-2"


def test_recorded_send_is_returned_without_a_second_request(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    activities = email_activities(database_url, backend_for(sendgrid_standin))
    first = ActivityEnvironment().run(activities.send_email, request)

    again = ActivityEnvironment().run(activities.send_email, request)

    assert len(sendgrid_standin.requests) == 1
    assert again == first


@pytest.mark.parametrize(
    ("suppression", "reason"),
    [
        ({"do_not_email": True}, "do not email"),
        ({"unsubscribed_at": datetime(2026, 1, 1, tzinfo=UTC)}, "unsubscribed"),
        ({"bounced_at": datetime(2026, 1, 1, tzinfo=UTC)}, "bounced"),
        ({"complained_at": datetime(2026, 1, 1, tzinfo=UTC)}, "spam complaint"),
    ],
)
def test_suppressed_lead_never_reaches_sendgrid_and_the_reason_is_recorded(
    database_url: str,
    sendgrid_standin: SendGridStandIn,
    suppression: dict[str, object],
    reason: str,
) -> None:
    lead_id = make_lead(database_url, **suppression)
    request = email_request(lead_id)
    activities = email_activities(database_url, backend_for(sendgrid_standin))

    outcome = ActivityEnvironment().run(activities.send_email, request)

    assert sendgrid_standin.requests == []
    assert outcome == EmailOutcome(status="suppressed", reason=reason)
    record = touch(database_url, request.idempotency_key)
    assert record is not None
    assert (record.status, record.reason) == (SendStatus.SUPPRESSED, reason)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("jürgen-{u}@example.com", "non-ASCII characters"),
        ("two-{u}@@example.com", "exactly one '@'"),
        ("no-domain-{u}@localhost", "not a domain name"),
        ("a..b-{u}@example.com", "cannot have there"),
    ],
)
def test_invalid_address_is_refused_before_the_call_and_marks_the_lead(
    database_url: str, sendgrid_standin: SendGridStandIn, address: str, problem: str
) -> None:
    unique = unique_email().split("@")[0]
    lead_id = make_lead(database_url, email=address.format(u=unique))
    request = email_request(lead_id)
    activities = email_activities(database_url, backend_for(sendgrid_standin))

    outcome = ActivityEnvironment().run(activities.send_email, request)

    assert sendgrid_standin.requests == []
    assert outcome.status == "suppressed"
    assert outcome.reason is not None
    assert outcome.reason.startswith("invalid address: ")
    assert problem in outcome.reason
    lead = get_lead(database_url, lead_id)
    assert lead.email_invalid_at is not None
    assert lead.email_invalid_reason is not None
    assert problem in lead.email_invalid_reason


def test_international_domain_is_sent_in_its_ascii_form(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    local = unique_email().split("@")[0]
    lead_id = make_lead(database_url, email=f"{local}@bücher.example")
    activities = email_activities(database_url, backend_for(sendgrid_standin))

    ActivityEnvironment().run(activities.send_email, email_request(lead_id))

    body = sendgrid_standin.requests[0].json()
    assert body["personalizations"] == [
        {"to": [{"email": f"{local}@xn--bcher-kva.example"}]}
    ]


def test_bad_request_on_the_address_fails_without_retry_and_marks_lead_and_touch(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    sendgrid_standin.answer(
        bad_request(
            "personalizations.0.to.0.email", "Does not contain a valid address."
        )
    )
    activities = email_activities(database_url, backend_for(sendgrid_standin))

    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(activities.send_email, request)

    assert refused.value.non_retryable
    assert refused.value.type == "EmailRejected"
    assert "Does not contain a valid address." in str(refused.value)
    record = touch(database_url, request.idempotency_key)
    assert isinstance(record, EmailSend)
    assert record.status == SendStatus.FAILED
    assert record.error is not None
    assert record.error.startswith("400: ")
    assert "personalizations.0.to.0.email" in record.error
    lead = get_lead(database_url, lead_id)
    assert lead.email_invalid_at is not None
    next_touch = email_request(lead_id, step="getting-started")
    later = ActivityEnvironment().run(activities.send_email, next_touch)
    assert later.status == "suppressed"
    assert len(sendgrid_standin.requests) == 1


@pytest.mark.parametrize(
    "refusal",
    [
        bad_request("content.0.value", "Content is too long."),
        Reply(403, b'{"errors":[{"message":"The from address does not match"}]}'),
        Reply(413, b'{"errors":[{"message":"Payload too large"}]}'),
    ],
    ids=["400-content", "403", "413"],
)
def test_refusal_not_about_the_address_fails_the_touch_but_not_the_lead(
    database_url: str, sendgrid_standin: SendGridStandIn, refusal: Reply
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    sendgrid_standin.answer(refusal)
    activities = email_activities(database_url, backend_for(sendgrid_standin))

    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(activities.send_email, request)
    with pytest.raises(ApplicationError) as again:
        ActivityEnvironment().run(activities.send_email, request)

    assert refused.value.non_retryable
    assert again.value.non_retryable
    assert len(sendgrid_standin.requests) == 1
    assert get_lead(database_url, lead_id).email_invalid_at is None
    record = touch(database_url, request.idempotency_key)
    assert record is not None
    assert record.status == SendStatus.FAILED
    assert record.error is not None
    assert record.error.startswith(f"{refusal.status}: ")
    assert refusal.body.decode() in record.error


def test_rate_limit_becomes_a_retryable_error_delayed_until_the_reset(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    sendgrid_standin.answer(rate_limited(reset_in_seconds=30))
    activities = email_activities(database_url, backend_for(sendgrid_standin))

    with pytest.raises(ApplicationError) as busy:
        ActivityEnvironment().run(activities.send_email, request)

    assert not busy.value.non_retryable
    assert busy.value.type == "EmailProviderBusy"
    assert busy.value.next_retry_delay is not None
    assert 28 <= busy.value.next_retry_delay.total_seconds() <= 31
    record = touch(database_url, request.idempotency_key)
    assert record is not None
    assert record.status == SendStatus.SENDING


def test_server_error_is_retryable_and_the_retry_sends_once(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url)
    request = email_request(lead_id)
    sendgrid_standin.answer(server_error())
    activities = email_activities(database_url, backend_for(sendgrid_standin))
    with pytest.raises(ApplicationError) as unavailable:
        ActivityEnvironment().run(activities.send_email, request)

    retried = ActivityEnvironment().run(activities.send_email, request)

    assert not unavailable.value.non_retryable
    assert unavailable.value.type == "EmailProviderUnavailable"
    assert retried.status == "sent"
    assert len(sendgrid_standin.requests) == 2


def test_unreachable_sendgrid_is_a_provider_unavailable_error() -> None:
    backend = SendGridBackend(API_KEY, host=f"http://127.0.0.1:{free_port()}")
    message = OutgoingEmail(
        idempotency_key="k",
        to_email="someone@example.com",
        from_email="hello@example.com",
        from_name="Lead Nurture",
        subject="Hello",
        text="Hello",
    )

    with pytest.raises(ProviderUnavailable, match="did not answer"):
        backend.deliver(message)


def test_worker_builds_the_sendgrid_backend_from_settings(
    sendgrid_standin: SendGridStandIn,
) -> None:
    settings = Settings(
        email_backend="sendgrid",
        sendgrid_api_key=SecretStr(API_KEY),
        sendgrid_host=sendgrid_standin.url,
    )
    message = OutgoingEmail(
        idempotency_key="k",
        to_email="someone@example.com",
        from_email="hello@example.com",
        from_name="Lead Nurture",
        subject="Hello",
        text="Hello",
    )

    message_id = email_backend(settings).deliver(message)

    assert message_id == "standin-1"
    assert sendgrid_standin.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"


def test_worker_refuses_sendgrid_without_an_api_key() -> None:
    settings = Settings(email_backend="sendgrid", sendgrid_api_key=None)

    with pytest.raises(ValueError, match="needs SENDGRID_API_KEY"):
        email_backend(settings)


def test_concurrent_touches_for_one_lead_respect_the_cap_together(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url)
    policy = SendPolicy(cap=1, quiet_start=time(0, 0), quiet_end=time(0, 0))
    activities = email_activities(
        database_url, backend_for(sendgrid_standin), policy=policy
    )
    requests = [email_request(lead_id, journey=f"journey-{n}") for n in range(4)]

    def send(request: EmailRequest) -> EmailOutcome:
        return ActivityEnvironment().run(activities.send_email, request)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(send, requests))

    assert sorted(outcome.status for outcome in outcomes) == [
        "deferred",
        "deferred",
        "deferred",
        "sent",
    ]
    assert len(sendgrid_standin.requests) == 1
    for request, outcome in zip(requests, outcomes, strict=True):
        if outcome.status == "deferred":
            assert outcome.defer_until is not None
            assert touch(database_url, request.idempotency_key) is None
