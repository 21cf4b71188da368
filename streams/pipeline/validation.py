"""Turn one raw Kafka value into an accepted record or a readable rejection.

Nothing here raises on input: every byte string gets an outcome. Besides the
wire schema, an event's time must be plausible for the stream (see
:class:`EventValidator`).

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
>>> timed = EventValidator(max_bytes=1024, max_future_seconds=86400.0, clock=lambda: 1795327277.0)
>>> print(timed.check("labels", b'{"event_id": "e2", "ts": "2099-01-01T00:00:00Z", "payment_id": "p1", '
...     b'"is_fraud": true}').reason)
ts 2099-01-01T00:00:00Z is 72.1 years ahead of the stream (2026-11-22T06:01:17Z; limit 1 day, KAIROS_MAX_FUTURE_SECONDS)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from streams.pipeline.events import EVENT_TYPES

#: Record fields replaced by their pseudonyms under ``KAIROS_PSEUDONYMIZE_KEY`` (see :mod:`.pseudonyms`).
PSEUDONYMIZED = ("customer_id", "session_id")

_JSON_KINDS = {b"[": "an array", b'"': "a string", b"t": "a boolean", b"f": "a boolean", b"n": "null"}
#: Units a time span is told in, largest first.
_SPANS = (("year", 365.25 * 86400), ("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0))


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of checking one value: a ``record`` or a ``reason``, never both."""

    record: dict[str, Any] | None = None
    reason: str | None = None


class EventValidator:
    """Validates raw values against the wire schema of their event type, and their time against the stream's.

    **Time sanity.** The contract accepts any ``ts`` from 2000 to 2100, but
    one order dated 2099 in a 2026 stream pushes every event-time clock
    downstream 73 years ahead (the sales windows, a customer's recency), so:

    - with ``max_future_seconds``, an event dated more than that after the
      stream is rejected; the stream is at the later of the wall clock
      (``clock``) and the latest ``ts`` this validator accepted, of any event
      type (so a quiet weekend, a sparse topic or a simulation running ahead
      of the clock pass);
    - with ``max_past_seconds``, an event dated more than that before the
      latest ``ts`` accepted is rejected: relative to the stream's own time,
      never the clock, so a replay of 2010 data passes (it is off in the
      settings: a backfill into a live topic, or a device that was offline for
      days, sends old events on purpose).

    A rejected event does not move the stream's time. Unset limits (the
    default) check nothing.
    """

    def __init__(self, max_bytes: int, max_future_seconds: float | None = None,
                 max_past_seconds: float | None = None, clock: Callable[[], float] = time.time,
                 pseudonyms: Callable[[str], str] | None = None) -> None:
        self.max_bytes = max_bytes
        #: Replaces each accepted record's ``customer_id`` and ``session_id`` (see :mod:`.pseudonyms`); ``None``
        #: keeps them.
        self.pseudonyms = pseudonyms
        self.max_future_seconds = max_future_seconds
        self.max_past_seconds = max_past_seconds
        self._clock = clock
        #: The latest ``ts`` accepted (``None`` before the first event).
        self.stream_time: float | None = None

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
            record = model.model_validate_json(value).to_record()
        except ValidationError as exc:
            return Outcome(reason=describe(exc, value))
        ts = record["ts"]
        reason = self._implausible(ts)
        if reason is not None:
            return Outcome(reason=reason)
        self.stream_time = ts if self.stream_time is None else max(self.stream_time, ts)
        if self.pseudonyms is not None:
            for name in PSEUDONYMIZED:
                if name in record:
                    record[name] = self.pseudonyms(record[name])
        return Outcome(record=record)

    def _implausible(self, ts: float) -> str | None:
        """Why ``ts`` is too far ahead of or behind the stream, or ``None``."""
        latest = self.stream_time
        if self.max_future_seconds is not None:
            now = self._clock() if latest is None else max(latest, self._clock())
            if ts - now > self.max_future_seconds:
                return _too_far(ts, "ahead of", now, self.max_future_seconds, "KAIROS_MAX_FUTURE_SECONDS")
        if self.max_past_seconds is not None and latest is not None and latest - ts > self.max_past_seconds:
            return _too_far(ts, "behind", latest, self.max_past_seconds, "KAIROS_MAX_PAST_SECONDS")
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _span(seconds: float) -> str:
    """A time span in its largest whole unit: ``'72.1 years'``, ``'1 day'``."""
    unit, size = next((unit, size) for unit, size in _SPANS if seconds >= size or unit == "second")
    amount = f"{seconds / size:.3g}"
    return f"{amount} {unit}" + ("" if amount == "1" else "s")


def _too_far(ts: float, relation: str, stream: float, limit: float, setting: str) -> str:
    span = _span(abs(ts - stream))
    return f"ts {_iso(ts)} is {span} {relation} the stream ({_iso(stream)}; limit {_span(limit)}, {setting})"


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
