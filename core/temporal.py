"""Connecting to Temporal, the same way in every process."""

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from core.settings import Settings


class TemporalUnavailable(RuntimeError):
    """The Temporal frontend did not answer. A RuntimeError, as the SDK's own
    connection failure is, so callers that retry on either keep working."""


async def connect(settings: Settings) -> Client:
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
        )
    except RuntimeError as error:
        message = (
            f"cannot reach Temporal at {settings.temporal_address} ({error}); "
            "is `make run` (or your Temporal server) running?"
        )
        raise TemporalUnavailable(message) from error


def journey_url(settings: Settings, lead_id: int) -> str:
    """Where a lead's journey shows in the Temporal UI."""
    base = settings.temporal_ui_url.rstrip("/")
    return f"{base}/namespaces/{settings.temporal_namespace}/workflows/lead-{lead_id}"
