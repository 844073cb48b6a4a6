"""The sales handoff: one notification per MQL episode, by email through the
SendGrid stand-in and to a Slack-style webhook stand-in."""

from collections.abc import Iterator

import pytest
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import TemplateRenderer
from activities.sales import SalesActivities, handoff_recipients
from activities.sendgrid_backend import SendGridBackend
from core.db import get_engine
from models.messages import HandoffOutcome, HandoffRequest
from models.tables import SalesHandoff, ScoreChange
from tests.email_fixtures import TEMPLATES, make_lead, unique_email
from tests.sendgrid_standin import (
    Reply,
    SendGridStandIn,
    running_standin,
    server_error,
)

CHAT_PATH = "/services/T000/B000/handoffs"


@pytest.fixture
def sendgrid_standin() -> Iterator[SendGridStandIn]:
    with running_standin() as standin:
        yield standin


@pytest.fixture
def chat_standin() -> Iterator[SendGridStandIn]:
    with running_standin() as standin:
        yield standin


def sales_activities(
    database_url: str,
    sendgrid: SendGridStandIn,
    chat: SendGridStandIn | None = None,
    copies: str = "",
) -> SalesActivities:
    return SalesActivities(
        database_url,
        SendGridBackend("SG.test-key", host=sendgrid.url, timeout=5),
        TemplateRenderer(TEMPLATES),
        from_email="hello@example.com",
        from_name="Lead Nurture",
        default_owner="Sales-Queue@example.com",
        temporal_ui_url="http://127.0.0.1:8233",
        namespace="default",
        copies=copies,
        chat_webhook_url=f"{chat.url}{CHAT_PATH}" if chat else None,
        chat_timeout=5,
    )


def handoff_request(lead_id: int, episode: int = 1) -> HandoffRequest:
    return HandoffRequest(
        lead_id=lead_id,
        episode=episode,
        score=72,
        reason="event demo_request",
        recent_events=["page_visit at 2026-12-04T10:00:00+00:00", "demo_request"],
    )


def handoffs(database_url: str, lead_id: int) -> list[SalesHandoff]:
    with Session(get_engine(database_url)) as session:
        return list(
            session.exec(
                select(SalesHandoff)
                .where(SalesHandoff.lead_id == lead_id)
                .order_by(SalesHandoff.episode)  # type: ignore[arg-type]
            ).all()
        )


def test_recipients_are_deduplicated_without_regard_to_case() -> None:
    recipients = handoff_recipients(
        "Ann@Example.com; ann@example.com, Bob@example.com",
        "queue@example.com",
        "ANN@example.com, ops@example.com, Ops@Example.com",
    )

    assert recipients == ["ann@example.com", "bob@example.com", "ops@example.com"]


def test_lead_without_a_usable_owner_goes_to_the_sales_queue() -> None:
    assert handoff_recipients(None, "Queue@example.com") == ["queue@example.com"]
    assert handoff_recipients("not an address", "queue@example.com") == [
        "queue@example.com"
    ]


def test_handoff_emails_the_owner_with_the_reason_and_posts_once_to_chat(
    database_url: str,
    sendgrid_standin: SendGridStandIn,
    chat_standin: SendGridStandIn,
) -> None:
    owner = unique_email("owner")
    lead_id = make_lead(
        database_url, first_name="Ines", owner_email=f"{owner.upper()}, {owner}"
    )
    with Session(get_engine(database_url)) as session:
        session.add(
            ScoreChange(
                lead_id=lead_id,
                old_score=40,
                new_score=72,
                reason="event demo_request",
                breakdown={"lead_source=Reference": 20, "event:demo_request": 52},
            )
        )
        session.commit()
    chat_standin.answer(Reply(200, b"ok"))
    activities = sales_activities(
        database_url, sendgrid_standin, chat_standin, copies="Sales-Queue@example.com"
    )

    outcome = ActivityEnvironment().run(
        activities.notify_sales, handoff_request(lead_id)
    )

    assert outcome == HandoffOutcome(owner_email=owner, created=True)
    [email] = sendgrid_standin.requests
    body = email.json()
    assert body["personalizations"] == [
        {"to": [{"email": owner}], "cc": [{"email": "sales-queue@example.com"}]}
    ]
    assert body["subject"] == f"New MQL: lead {lead_id} scored 72"
    assert body["categories"] == ["sales-handoff"]
    assert body["custom_args"]["lead_id"] == str(lead_id)
    text = body["content"][0]["value"]
    link = f"http://127.0.0.1:8233/namespaces/default/workflows/lead-{lead_id}"
    assert "Why now: event demo_request" in text
    assert "+20  lead_source=Reference" in text
    assert "+52  event:demo_request" in text
    assert "  - demo_request" in text
    assert f"Journey in the Temporal UI: {link}" in text
    [post] = chat_standin.requests
    assert post.path == CHAT_PATH
    assert post.headers["Content-Type"] == "application/json"
    assert post.json() == {
        "text": f"New MQL: lead {lead_id} scored 72 (episode 1, event demo_request)."
        f" Journey: <{link}>"
    }
    [handoff] = handoffs(database_url, lead_id)
    assert handoff.recipients == [owner, "sales-queue@example.com"]
    assert handoff.reason == "event demo_request"
    assert handoff.emailed_at is not None
    assert handoff.chat_notified_at is not None


def test_second_call_for_the_same_episode_notifies_nobody(
    database_url: str,
    sendgrid_standin: SendGridStandIn,
    chat_standin: SendGridStandIn,
) -> None:
    lead_id = make_lead(database_url)
    activities = sales_activities(database_url, sendgrid_standin, chat_standin)
    ActivityEnvironment().run(activities.notify_sales, handoff_request(lead_id))

    again = ActivityEnvironment().run(activities.notify_sales, handoff_request(lead_id))

    assert again == HandoffOutcome(owner_email="sales-queue@example.com", created=False)
    assert len(sendgrid_standin.requests) == 1
    assert len(chat_standin.requests) == 1
    assert len(handoffs(database_url, lead_id)) == 1


def test_a_new_mql_episode_is_a_new_handoff(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    lead_id = make_lead(database_url)
    activities = sales_activities(database_url, sendgrid_standin)
    ActivityEnvironment().run(activities.notify_sales, handoff_request(lead_id, 1))

    second = ActivityEnvironment().run(
        activities.notify_sales, handoff_request(lead_id, 2)
    )

    assert second.created
    assert len(sendgrid_standin.requests) == 2
    assert [h.episode for h in handoffs(database_url, lead_id)] == [1, 2]


def test_chat_failure_retries_the_post_without_emailing_again(
    database_url: str,
    sendgrid_standin: SendGridStandIn,
    chat_standin: SendGridStandIn,
) -> None:
    lead_id = make_lead(database_url)
    chat_standin.answer(server_error(), Reply(200, b"ok"))
    activities = sales_activities(database_url, sendgrid_standin, chat_standin)
    with pytest.raises(ApplicationError) as unavailable:
        ActivityEnvironment().run(activities.notify_sales, handoff_request(lead_id))

    retried = ActivityEnvironment().run(
        activities.notify_sales, handoff_request(lead_id)
    )

    assert not unavailable.value.non_retryable
    assert not retried.created
    assert len(sendgrid_standin.requests) == 1
    assert [status for status, _ in chat_standin.answers] == [500, 200]
    [handoff] = handoffs(database_url, lead_id)
    assert handoff.chat_notified_at is not None


def test_handoff_for_a_missing_lead_fails_without_retry(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    activities = sales_activities(database_url, sendgrid_standin)

    with pytest.raises(ApplicationError) as missing:
        ActivityEnvironment().run(activities.notify_sales, handoff_request(999_999))

    assert missing.value.non_retryable
    assert "lead 999999 does not exist" in str(missing.value)
    assert sendgrid_standin.requests == []


def test_escalation_reminds_owner_and_queue_once_per_episode(
    database_url: str, sendgrid_standin: SendGridStandIn
) -> None:
    owner = unique_email("owner")
    lead_id = make_lead(database_url, owner_email=owner)
    activities = sales_activities(database_url, sendgrid_standin)
    ActivityEnvironment().run(activities.notify_sales, handoff_request(lead_id))
    escalation = handoff_request(lead_id).model_copy(
        update={"escalation": True, "reason": "no answer within the SLA"}
    )

    ActivityEnvironment().run(activities.notify_sales, escalation)
    ActivityEnvironment().run(activities.notify_sales, escalation)

    first, reminder = (request.json() for request in sendgrid_standin.requests)
    assert first["personalizations"] == [{"to": [{"email": owner}]}]
    assert reminder["personalizations"] == [
        {"to": [{"email": owner}], "cc": [{"email": "sales-queue@example.com"}]}
    ]
    assert reminder["subject"] == (
        f"Reminder: MQL lead {lead_id} (score 72) has no answer yet"
    )
    assert reminder["content"][0]["value"].startswith(
        f"Nobody has answered for lead {lead_id} within the SLA"
    )
    assert len(handoffs(database_url, lead_id)) == 1
