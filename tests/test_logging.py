"""Log lines carry the Temporal context they were written in."""

import dataclasses
import json
import logging
import sys

import pytest
import structlog
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from core.logs import configure_logging


def test_activity_log_lines_name_the_activity_attempt_and_workflow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(sys.stderr)  # the stderr this test captures
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info,
        activity_type="send_email",
        attempt=3,
        workflow_id="lead-7",
        workflow_run_id="run-1",
    )

    @activity.defn(name="send_email")
    def send_email() -> None:
        structlog.get_logger("test").info("email.sent", step="welcome")

    environment.run(send_email)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    sent = [line for line in lines if line.get("event") == "email.sent"]
    assert len(sent) == 1
    assert sent[0]["activity"] == "send_email"
    assert sent[0]["attempt"] == 3
    assert sent[0]["workflow_id"] == "lead-7"
    assert sent[0]["run_id"] == "run-1"
    assert sent[0]["step"] == "welcome"
