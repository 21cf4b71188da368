"""Hostile input: records a broken or malicious producer sends, interleaved with a valid stream.

Used by ``kairos chaos --scenario hostile`` and its CI-sized test. Each hostile
record is built from the valid event just before it (same topic, same key, so
it lands on the same partition as real traffic) and is one of
:data:`HOSTILE_KINDS`. Every kind but ``duplicate`` must be dead-lettered with a
reason; a ``duplicate`` is a valid event sent again (a producer retry) and must
be counted as a duplicate, never applied twice.

>>> events = [("clicks", "c1", {"event_id": "e1", "ts": "2026-11-01T00:00:00Z", "customer_id": "c1",
...            "session_id": "s1", "action": "view"})] * 3
>>> mixed, mix = interleave_hostile(events, 40, seed=1, max_event_bytes=1024)
>>> len(mixed) == 3 + 40, mix.invalid() + mix.duplicates() == 40
(True, True)
>>> sorted(mix.by_kind) == sorted(HOSTILE_KINDS)
True
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Event = tuple[str, str, Any]

#: What a hostile record can be; all but ``duplicate`` are dead letters.
HOSTILE_KINDS = ("not-json", "wrong-type", "missing-field", "oversized", "invalid-utf8", "deeply-nested",
                 "nan", "infinity", "far-future", "far-past", "duplicate")
#: How deep the deeply nested value goes (beyond the JSON parser's recursion limit).
NESTING = 2000
#: Fields whose number a NaN or an infinity replaces, per event type.
NUMBERS = {"clicks": "price", "payments": "amount", "labels": "is_fraud"}
#: A required field per event type (dropped, or given a wrong type).
REQUIRED = {"clicks": "customer_id", "orders": "lines", "payments": "amount", "labels": "payment_id"}
#: Oversized records are the rarest kind: each one weighs the limit (64 KiB by default).
WEIGHTS = {kind: (1 if kind == "oversized" else 10) for kind in HOSTILE_KINDS}


@dataclass
class HostileMix:
    """What was interleaved: counts per ``(event_type, kind)``."""

    counts: Counter = field(default_factory=Counter)

    @property
    def by_kind(self) -> Counter:
        found: Counter = Counter()
        for (_, kind), n in self.counts.items():
            found[kind] += n
        return found

    def invalid(self, event_type: str | None = None) -> int:
        return sum(n for (topic, kind), n in self.counts.items()
                   if kind != "duplicate" and event_type in (None, topic))

    def duplicates(self, event_type: str | None = None) -> int:
        return sum(n for (topic, kind), n in self.counts.items()
                   if kind == "duplicate" and event_type in (None, topic))

    def ingest_delta(self) -> dict[str, int]:
        """What the hostile records add to the ``metrics:ingest`` counters of the same valid stream."""
        delta: Counter = Counter()
        for (topic, kind), n in self.counts.items():
            delta[f"{topic}.{'duplicate' if kind == 'duplicate' else 'invalid'}"] += n
        return dict(delta)


def hostile_value(kind: str, event_type: str, valid: dict[str, Any], max_event_bytes: int) -> bytes:
    """One hostile record of ``kind`` made from ``valid`` (a wire dict of ``event_type``)."""
    if kind == "duplicate":
        return json.dumps(valid).encode()
    if kind == "not-json":
        text = json.dumps(valid).encode()
        return text[: len(text) // 2]
    if kind == "wrong-type":
        return json.dumps({**valid, REQUIRED[event_type]: {"nested": True}}).encode()
    if kind == "missing-field":
        return json.dumps({k: v for k, v in valid.items() if k != REQUIRED[event_type]}).encode()
    if kind == "oversized":
        padding = "x" * (max_event_bytes + 1)
        return json.dumps({**valid, "padding": padding}).encode()
    if kind == "invalid-utf8":
        return json.dumps({**valid, "customer_id": "@@"}).encode().replace(b"@@", b"\xff\xfe", 1)
    if kind == "deeply-nested":
        return json.dumps({**valid, REQUIRED[event_type]: "@@"}).encode().replace(
            b'"@@"', b"[" * NESTING + b"]" * NESTING, 1)
    if kind in ("nan", "infinity"):
        number = NUMBERS.get(event_type)
        literal = b"NaN" if kind == "nan" else b"-Infinity"
        if number is None:  # orders: the number is in a line
            lines = [{**line, "unit_price": "@@"} for line in valid["lines"]]
            return json.dumps({**valid, "lines": lines}).encode().replace(b'"@@"', literal)
        return json.dumps({**valid, number: "@@"}).encode().replace(b'"@@"', literal, 1)
    if kind == "far-future":
        return json.dumps({**valid, "ts": "2099-12-31T23:59:59.000Z"}).encode()
    if kind == "far-past":
        return json.dumps({**valid, "ts": "1970-01-01T00:00:00.000Z"}).encode()
    raise ValueError(f"unknown hostile kind {kind!r}")


def interleave_hostile(events: list[Event], count: int, seed: int, max_event_bytes: int) -> tuple[list[Event], HostileMix]:
    """``events`` with ``count`` hostile records spread through them (each right after a valid event of the same
    key); duplicates repeat a click, order or payment (labels are keyed by payment, not customer)."""
    rng = random.Random(seed)
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[kind] for kind in kinds]
    # The first rounds take every kind once, so that a small mix still holds each of them.
    chosen = kinds + rng.choices(kinds, weights, k=max(0, count - len(kinds)))
    chosen = chosen[:count]
    rng.shuffle(chosen)
    after = sorted(rng.randrange(len(events)) for _ in range(count))
    mix = HostileMix()
    mixed: list[Event] = []
    cursor = 0
    for index, event in enumerate(events):
        mixed.append(event)
        while cursor < count and after[cursor] == index:
            event_type, key, valid = event
            kind = chosen[cursor]
            if kind == "duplicate" and event_type == "labels":
                kind = "not-json"
            mixed.append((event_type, key, hostile_value(kind, event_type, valid, max_event_bytes)))
            mix.counts[(event_type, kind)] += 1
            cursor += 1
    return mixed, mix
