"""Histories saved from earlier workflow code replay on the current code."""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.journey import LeadJourney

HISTORIES = Path(__file__).resolve().parent / "histories"


@pytest.mark.parametrize(
    "path", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.stem
)
async def test_saved_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json("lead-1", path.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=[LeadJourney], data_converter=pydantic_data_converter)

    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None, result.replay_failure
