"""Search attributes the Temporal UI shows for every lead's journey.

None of them may carry personal data: they are indexed and visible to anyone who
can list workflows.
"""

from temporalio.common import SearchAttributeKey

LEAD_STAGE = SearchAttributeKey.for_keyword("LeadStage")
LEAD_SCORE = SearchAttributeKey.for_int("LeadScore")
JOURNEY = SearchAttributeKey.for_keyword("Journey")
JOURNEY_VERSION = SearchAttributeKey.for_int("JourneyVersion")
MQL_STATE = SearchAttributeKey.for_keyword("MqlState")
NEXT_TOUCH_AT = SearchAttributeKey.for_datetime("NextTouchAt")

ALL = (LEAD_STAGE, LEAD_SCORE, JOURNEY, JOURNEY_VERSION, MQL_STATE, NEXT_TOUCH_AT)

# Names the `temporal` CLI uses for each indexed value type.
_CLI_TYPE_NAMES = {
    "KEYWORD": "Keyword",
    "INT": "Int",
    "DATETIME": "Datetime",
}


def cli_type_name(key: SearchAttributeKey) -> str:  # type: ignore[type-arg]
    """The type name `temporal operator search-attribute create` expects."""
    return _CLI_TYPE_NAMES[
        key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")
    ]


def cli_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={cli_type_name(key)}"]
    return flags
