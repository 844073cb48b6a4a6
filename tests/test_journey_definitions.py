"""Journey and scoring files: the shipped ones are valid, and a bad one is
refused with the file, the step and the field named."""

from pathlib import Path

import pytest

from core.catalog import (
    DefinitionError,
    load_journey,
    load_linked_journeys,
    load_scoring,
    missing_templates,
)
from tests.factories import JOURNEYS

SHIPPED = ["welcome", "re-engagement", "post-demo"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_journeys_load_with_their_templates_and_linked_journeys(
    name: str,
) -> None:
    journey = load_journey(JOURNEYS, name)

    linked = load_linked_journeys(JOURNEYS, journey)

    assert journey.name == name
    assert missing_templates(JOURNEYS, journey) == []
    assert all(missing_templates(JOURNEYS, other) == [] for other in linked.values())


def test_shipped_scoring_rules_load_with_decay_and_an_sla() -> None:
    scoring = load_scoring(JOURNEYS)

    assert scoring.half_life is not None
    assert scoring.rearm_below < scoring.mql_threshold <= scoring.ceiling


def write(directory: Path, text: str) -> Path:
    path = directory / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_bad_field_is_reported_with_file_step_and_field(tmp_path: Path) -> None:
    write(
        tmp_path,
        "name: broken\nversion: 1\nsteps:\n"
        "  - {id: hello, kind: email, template: welcome, subject: Hi}\n"
        "  - {id: pause, kind: wait, duration: soon}\n",
    )

    with pytest.raises(DefinitionError) as caught:
        load_journey(tmp_path, "broken")

    message = str(caught.value)
    assert "broken.yaml" in message
    assert "step 2 'pause' (wait), field duration" in message


def test_a_jump_to_a_missing_step_names_the_step_and_field(tmp_path: Path) -> None:
    write(
        tmp_path,
        "name: broken\nversion: 1\nsteps:\n"
        "  - {id: check, kind: branch, if: {score_at_least: 10}, then: nowhere}\n",
    )

    with pytest.raises(DefinitionError) as caught:
        load_journey(tmp_path, "broken")

    assert "step 1 'check' (branch), field then: names step 'nowhere'" in str(
        caught.value
    )


def test_a_condition_must_test_exactly_one_thing(tmp_path: Path) -> None:
    write(
        tmp_path,
        "name: broken\nversion: 1\nsteps:\n"
        "  - {id: check, kind: branch, if: {score_at_least: 10, event: reply}}\n",
    )

    with pytest.raises(DefinitionError, match="exactly one of"):
        load_journey(tmp_path, "broken")


def test_an_unknown_step_kind_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "name: broken\nversion: 1\nsteps:\n  - {id: x, kind: teleport}\n")

    with pytest.raises(DefinitionError, match=r"step 1 'x' \(teleport\)"):
        load_journey(tmp_path, "broken")


def test_a_missing_template_is_named(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    write(
        tmp_path,
        "name: broken\nversion: 1\nsteps:\n"
        "  - {id: hello, kind: email, template: nothing_here, subject: Hi}\n",
    )

    problems = missing_templates(tmp_path, load_journey(tmp_path, "broken"))

    assert problems == [
        "step 1 'hello' (email), field template: expected "
        "templates/nothing_here.txt.j2 to exist, found no such file"
    ]
