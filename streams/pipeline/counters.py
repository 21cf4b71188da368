"""Exact ingest counters: processed / invalid / duplicate / expired per upstream path.

A counter lives in the same table partition as the customers whose events it
counted and is flushed in the same changelog record batch, with the offset it
has counted up to; replayed entries at or below that offset are not counted
again.

>>> counter = IngestCounter("orders")
>>> counter.count(5, "processed"), counter.count(5, "processed"), counter.count(6, "invalid")
(True, False, True)
>>> counter.processed, counter.invalid, counter.applied
(1, 1, 6)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: ``expired``: older than its partition's horizon (see :mod:`.expiry`), not applied.
OUTCOMES = ("processed", "invalid", "duplicate", "expired")

#: Marks counter keys in the customers table (customer ids cannot hold control characters).
COUNTER_KEY_PREFIX = "\x1fingest/"


def counter_key(path: str, partition: int) -> str:
    """Table key of the counter for ``path`` (``topic:partition``) routed to ``partition``."""
    return f"{COUNTER_KEY_PREFIX}{path}>{partition}"


class IngestCounter:
    """Outcome counts of one upstream path, up to an applied offset."""

    __slots__ = ("event_type", "applied", "processed", "invalid", "duplicate", "expired")

    def __init__(self, event_type: str, applied: int = -1, processed: int = 0, invalid: int = 0, duplicate: int = 0,
                 expired: int = 0) -> None:
        self.event_type = event_type
        self.applied = applied
        self.processed = processed
        self.invalid = invalid
        self.duplicate = duplicate
        self.expired = expired

    def count(self, offset: int, outcome: str) -> bool:
        """Count ``outcome`` for ``offset`` unless already counted; True if counted."""
        if offset <= self.applied:
            return False
        self.applied = offset
        setattr(self, outcome, getattr(self, outcome) + 1)
        return True

    def to_state(self) -> dict[str, Any]:
        return {"kind": "ingest", "event_type": self.event_type, "applied": self.applied,
                "processed": self.processed, "invalid": self.invalid, "duplicate": self.duplicate,
                "expired": self.expired}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IngestCounter:
        return cls(state["event_type"], state["applied"], state["processed"], state["invalid"], state["duplicate"],
                   state.get("expired", 0))  # counters written before expiry existed have none


def totals(counters: Iterable[IngestCounter]) -> dict[str, int]:
    """Sum counters into ``{"<event_type>.<outcome>": n}`` fields."""
    fields: dict[str, int] = {}
    for counter in counters:
        for outcome in OUTCOMES:
            name = f"{counter.event_type}.{outcome}"
            fields[name] = fields.get(name, 0) + getattr(counter, outcome)
    return fields
