"""The development outbox writes each touch as an `.eml` a mail client reads."""

from email import message_from_bytes, policy
from pathlib import Path

from activities.backends import OutboxBackend, OutgoingEmail


def test_outbox_keeps_the_one_click_unsubscribe_headers_plain(tmp_path: Path) -> None:
    link = "https://hooks.example.com/unsubscribe/12345?token=" + "a" * 43
    message = OutgoingEmail(
        idempotency_key="lead-12345:welcome:welcome:1",
        to_email="ada@example.com",
        from_email="hello@example.com",
        from_name="Lead Nurture",
        subject="Welcome",
        text="Hello",
        headers={
            "List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )

    OutboxBackend(tmp_path).deliver(message)

    raw = (tmp_path / "lead-12345_welcome_welcome_1.eml").read_bytes()
    assert f"List-Unsubscribe: <{link}>".encode() in raw
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
