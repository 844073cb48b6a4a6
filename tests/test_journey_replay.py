"""Histories saved from earlier workflow code replay on the current code."""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.journey import LeadJourney

HISTORIES = Path(__file__).resolve().parent / "histories"


SAVED = {
    path.stem: path.read_text(encoding="utf-8") for path in HISTORIES.glob("*.json")
}


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_history_replays_without_nondeterminism(name: str) -> None:
    history = WorkflowHistory.from_json("lead-1", SAVED[name])
    replayer = Replayer(workflows=[LeadJourney], data_converter=pydantic_data_converter)

    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None, result.replay_failure
