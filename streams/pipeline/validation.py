"""Turn one raw Kafka value into an accepted record or a readable rejection.

Nothing here raises on input: every byte string gets an outcome.

>>> validator = EventValidator(max_bytes=1024)
>>> validator.check("orders", b"[1, 2]").reason
'expected a JSON object, got an array'
>>> validator.check("clicks", b'{"event_id": "e1"}').reason
"missing required field 'ts'; missing required field 'customer_id'; missing required field 'session_id' (+1 more)"
>>> validator.check("payments", b"x" * 2000).reason
'payload of 2000 bytes exceeds the 1024-byte limit'
>>> validator.check("clicks", b'{"event_id": "e1", "ts": "2026-11-22T06:01:17Z", '
...     b'"customer_id": "c1", "session_id": "s1", "action": "view"}').record["customer_id"]
'c1'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from streams.pipeline.events import EVENT_TYPES

_JSON_KINDS = {b"[": "an array", b'"': "a string", b"t": "a boolean", b"f": "a boolean", b"n": "null"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of checking one value: a ``record`` or a ``reason``, never both."""

    record: dict[str, Any] | None = None
    reason: str | None = None


class EventValidator:
    """Validates raw values against the wire schema of their event type."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def check(self, event_type: str, value: bytes | None) -> Outcome:
        """Validate ``value`` as an event of ``event_type`` (a key of ``EVENT_TYPES``)."""
        model = EVENT_TYPES.get(event_type)
        if model is None:
            return Outcome(reason=f"unknown event type {event_type!r}")
        if value is None:
            return Outcome(reason="empty message (null value)")
        if len(value) > self.max_bytes:
            return Outcome(reason=f"payload of {len(value)} bytes exceeds the {self.max_bytes}-byte limit")
        try:
            return Outcome(record=model.model_validate_json(value).to_record())
        except ValidationError as exc:
            return Outcome(reason=describe(exc, value))


def describe(exc: ValidationError, value: bytes) -> str:
    """A short, readable reason for a validation failure (at most three problems)."""
    problems = []
    for error in exc.errors(include_url=False):
        problems.append(_describe_one(error, value))
    shown = "; ".join(dict.fromkeys(problems[:3]))
    if len(problems) > 3:
        shown += f" (+{len(problems) - 3} more)"
    return shown


def _describe_one(error: dict[str, Any], value: bytes) -> str:
    kind, where = error["type"], ".".join(str(part) for part in error["loc"])
    if kind == "json_invalid":
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"not valid UTF-8 (byte {bad.start})"
        return f"not JSON: {error['msg'].removeprefix('Invalid JSON: ')}"
    if kind == "model_type" and not error["loc"]:
        first = value.lstrip()[:1]
        return f"expected a JSON object, got {_JSON_KINDS.get(first, 'a number')}"
    if where == "type" and kind == "literal_error":
        return f"unknown event type {error.get('input')!r} (expected {error['ctx']['expected']})"
    if kind == "missing":
        return f"missing required field {where!r}"
    message = error["msg"].removeprefix("Value error, ")
    shown = repr(error.get("input"))
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"field {where!r}: {message} (got {shown})"
