"""Parsing request bodies into JSON that PostgreSQL can store, or a clear error."""

import json
import math
from typing import Any


class PayloadError(ValueError):
    """A body that is not the JSON it should be; the message says why."""


def _refuse_constant(name: str) -> Any:
    message = f"{name} is not a JSON number"
    raise PayloadError(message)


def parse_json(body: bytes) -> Any:
    """Parse UTF-8 JSON, refusing what JSON or PostgreSQL cannot hold: NaN and
    Infinity, NUL characters, unpaired surrogates, absurd nesting."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"the body is not UTF-8 (byte {error.start} is not valid)"
        raise PayloadError(message) from error
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except PayloadError:
        raise
    except json.JSONDecodeError as error:
        message = f"the body is not JSON: {error.msg} at character {error.pos}"
        raise PayloadError(message) from error
    except (RecursionError, ValueError) as error:
        message = "the body is JSON nested too deeply or with too large a number"
        raise PayloadError(message) from error
    problem = unstorable(value)
    if problem is not None:
        # TODO: one such value refuses a whole SendGrid batch; skipping only
        # the event that holds it would spare SendGrid's retries.
        raise PayloadError(problem)
    return value


def unstorable(value: Any, depth: int = 0) -> str | None:
    """Why PostgreSQL could not store this JSON value, or None when it can."""
    if depth > 32:
        return "the JSON is nested more than 32 levels deep"
    if isinstance(value, str):
        if "\x00" in value:
            return "a text value contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "a text value contains an unpaired surrogate"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "a number is too large"
    if isinstance(value, list):
        for item in value:
            problem = unstorable(item, depth + 1)
            if problem is not None:
                return problem
    if isinstance(value, dict):
        for key, item in value.items():
            problem = unstorable(key, depth + 1) or unstorable(item, depth + 1)
            if problem is not None:
                return problem
    return None
