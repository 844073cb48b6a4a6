"""structlog, configured once per process.

JSON lines when the output is not a terminal, readable colours when it is. The
standard library's loggers (Temporal's workflow and activity loggers among them)
go through the same processors, so their records carry the workflow id, run id,
activity name and attempt as fields.
"""

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger
from temporalio import activity

_configured = False


def _lift_temporal_context(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    """Turn the `temporal_workflow` / `temporal_activity` extras into flat fields."""
    workflow = event_dict.pop("temporal_workflow", None)
    if isinstance(workflow, dict):
        event_dict["workflow_id"] = workflow.get("workflow_id")
        event_dict["run_id"] = workflow.get("run_id")
        event_dict["workflow_type"] = workflow.get("workflow_type")
    activity = event_dict.pop("temporal_activity", None)
    if isinstance(activity, dict):
        event_dict["activity"] = activity.get("activity_type")
        event_dict["attempt"] = activity.get("attempt")
        event_dict["workflow_id"] = activity.get("workflow_id")
        event_dict["run_id"] = activity.get("workflow_run_id")
    return event_dict


def _add_activity_context(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    """Inside an activity, say which one, which attempt, and for which run."""
    if activity.in_activity():
        info = activity.info()
        event_dict.setdefault("activity", info.activity_type)
        event_dict.setdefault("attempt", info.attempt)
        event_dict.setdefault("workflow_id", info.workflow_id)
        event_dict.setdefault("run_id", info.workflow_run_id)
    return event_dict


def configure_logging(log_format: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the standard library logging for this process."""
    global _configured
    if _configured:
        return
    _configured = True

    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _lift_temporal_context,
        _add_activity_context,
    ]

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter that says nothing about leads.
    for noisy in ("httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
