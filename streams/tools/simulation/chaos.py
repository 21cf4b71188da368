"""Chaos: bad messages and redeliveries mixed into the stream, to exercise the dead-letter path."""

from __future__ import annotations

import json
import random
from collections import deque
from typing import Any, Callable

#: Bad-message kinds, each a way real producers break the contract.
BAD_KINDS = (
    "not_json", "json_array", "missing_field", "wrong_type", "negative_quantity",
    "amount_as_string", "invalid_utf8", "unknown_type",
)
#: Share of chaos messages that are exact redeliveries rather than bad messages.
DUPLICATE_SHARE = 0.4
#: Kinds that only make sense on one topic.
_TOPIC_OF_KIND = {"negative_quantity": "orders", "amount_as_string": "payments", "unknown_type": "orders"}
#: Per topic, a required field to drop and a field to send with a wrong type.
_MISSING = {"clicks": "session_id", "orders": "lines", "payments": "amount", "labels": "is_fraud"}
_MISTYPED = {"clicks": ("customer_id", 4711), "orders": ("currency", 978), "payments": ("customer_id", 4711),
             "labels": ("is_fraud", "yes")}


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


class Chaos:
    """Makes the extra messages: bad ones as raw ``bytes``, duplicates as exact copies of recent events.

    Bad messages are built from the latest valid event of a topic and get a fresh
    ``bad-…`` event id, so they never collide with a valid one. Memory: the last
    valid event per topic and a ring of the last 256 events.

    >>> chaos = Chaos(random.Random(1), seed=7)
    >>> chaos.remember("orders", "c1", {"event_id": "e1", "order_id": "o1", "lines": [{"sku": "A", "quantity": 2}]})
    >>> topic, key, value = chaos.bad_message("negative_quantity")
    >>> topic, key, json.loads(value)["lines"][0]["quantity"]
    ('orders', 'c1', -2)
    """

    def __init__(self, rng: random.Random, seed: int) -> None:
        self.rng = rng
        self._seed = seed
        self._recent: deque[tuple[str, str, dict[str, Any]]] = deque(maxlen=256)
        self._latest: dict[str, tuple[str, dict[str, Any]]] = {}
        self.bad_by_kind = dict.fromkeys(BAD_KINDS, 0)
        self.duplicates = 0

    def remember(self, topic: str, key: str, value: dict[str, Any]) -> None:
        """Note a valid event as material for later chaos."""
        self._recent.append((topic, key, value))
        self._latest[topic] = (key, value)

    def message(self) -> tuple[str, str, dict[str, Any] | bytes]:
        """One chaos message ``(topic, key, value)``: a duplicate (dict) or a bad message (bytes)."""
        if self._recent and self.rng.random() < DUPLICATE_SHARE:
            topic, key, value = self._recent[self.rng.randrange(len(self._recent))]
            self.duplicates += 1
            return topic, key, json.loads(_encode(value))
        return self.bad_message(self.rng.choice(BAD_KINDS))

    def bad_message(self, kind: str) -> tuple[str, str, bytes]:
        """A message of ``kind`` that must fail validation, built from a recent valid event."""
        topic = _TOPIC_OF_KIND.get(kind) or self.rng.choice(sorted(self._latest) or ["clicks"])
        if topic not in self._latest:
            kind = "not_json"
        key, base = self._latest.get(topic, ("anonymous", {}))
        self.bad_by_kind[kind] += 1
        value = {**json.loads(_encode(base)), "event_id": f"bad-{self._seed}-{sum(self.bad_by_kind.values())}"}
        builders: dict[str, Callable[[], bytes]] = {
            "not_json": lambda: _encode(value)[: max(1, len(_encode(value)) // 2)],
            "json_array": lambda: _encode([value]),
            "missing_field": lambda: _encode({k: v for k, v in value.items() if k != _MISSING[topic]}),
            "wrong_type": lambda: _encode({**value, _MISTYPED[topic][0]: _MISTYPED[topic][1]}),
            "negative_quantity": lambda: _encode({**value, "lines": [{**value["lines"][0], "quantity": -2}]}),
            "amount_as_string": lambda: _encode({**value, "amount": f"{value['amount']:.2f}"}),
            "invalid_utf8": lambda: _encode({**value, "event_id": "@@"}).replace(b"@@", b"bad-\xff\xfe"),
            "unknown_type": lambda: _encode({**value, "type": "refund"}),
        }
        return topic, key, builders[kind]()
