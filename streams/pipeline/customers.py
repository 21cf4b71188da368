"""Per-customer state: what the customer did, and what of the log it has applied.

One :class:`CustomerState` per customer lives in the ``customers`` table,
partitioned like the input topics (by ``customer_id``). It is written once
per batch per touched customer, with its replay guard inside it, so the value
in the changelog is always self-consistent: features and the offsets they
include move together.

The counters here are commutative (sums, min/max of event time), so the same
set of events gives the same state whatever order or batching they came in.
Two model-owned parts ride along: the segmentation features
(:class:`~models.segmentation.CustomerFeatures`, event-time decayed) and the
payment history the risk features come from
(:class:`~models.risk.PaymentHistory`).

>>> state = CustomerState.new(dedupe_capacity=8)
>>> state.apply("orders", {"event_id": "e1", "ts": 100.0, "customer_id": "c",
...     "order_id": "o", "currency": "EUR",
...     "lines": [{"sku": "A", "quantity": 2, "unit_price": 5.0}]})
>>> state.apply("clicks", {"event_id": "e2", "ts": 90.0, "customer_id": "c",
...     "session_id": "s", "action": "view"})
>>> state.orders, state.spend, state.units, state.clicks, state.first_seen, state.last_seen
(1, 10.0, 2, 1, 90.0, 100.0)
"""

from __future__ import annotations

from typing import Any

import orjson

from models.risk import PaymentHistory
from models.segmentation import CustomerFeatures
from streams.pipeline.replay_guard import AppliedOffsets, RecentIds


def order_value(record: dict[str, Any]) -> float:
    """An order record's value: its ``total`` when sent, else the sum of its lines."""
    total = record.get("total")
    if total is not None:
        return float(total)
    return sum(line["quantity"] * line["unit_price"] for line in record["lines"])


class CustomerState:
    """Foundation features of one customer plus its replay guard."""

    __slots__ = (
        "orders", "spend", "units", "clicks", "payments", "payment_amount",
        "first_seen", "last_seen", "last_order_ts", "applied", "recent", "features", "history",
    )

    def __init__(self, applied: AppliedOffsets, recent: RecentIds, features: CustomerFeatures,
                 history: PaymentHistory) -> None:
        self.orders = 0
        self.spend = 0.0
        self.units = 0
        self.clicks = 0
        self.payments = 0
        self.payment_amount = 0.0
        self.first_seen: float | None = None
        self.last_seen: float | None = None
        self.last_order_ts: float | None = None
        self.applied = applied
        self.recent = recent
        self.features = features
        self.history = history

    @classmethod
    def new(cls, dedupe_capacity: int, half_life_days: float = 30.0) -> CustomerState:
        """An empty customer."""
        return cls(AppliedOffsets(), RecentIds(dedupe_capacity), CustomerFeatures(half_life_days), PaymentHistory())

    def apply(self, event_type: str, record: dict[str, Any]) -> None:
        """Fold one accepted record of ``clicks``, ``orders`` or ``payments``.

        A payment's risk features must be read from :attr:`history` *before*
        this (a payment never sees itself).
        """
        ts = record["ts"]
        self.first_seen = ts if self.first_seen is None else min(self.first_seen, ts)
        self.last_seen = ts if self.last_seen is None else max(self.last_seen, ts)
        if event_type == "clicks":
            self.clicks += 1
        elif event_type == "orders":
            self.orders += 1
            self.spend += order_value(record)
            self.units += sum(line["quantity"] for line in record["lines"])
            self.last_order_ts = ts if self.last_order_ts is None else max(self.last_order_ts, ts)
        elif event_type == "payments":
            self.payments += 1
            self.payment_amount += record["amount"]
        self.features.apply(event_type, record)
        self.history.update(record)

    def view(self) -> dict[str, str]:
        """The Redis hash of this customer (absolute values, strings)."""
        fields = {
            "orders": str(self.orders),
            "spend": f"{self.spend:.2f}",
            "units": str(self.units),
            "clicks": str(self.clicks),
            "payments": str(self.payments),
            "payment_amount": f"{self.payment_amount:.2f}",
        }
        for name in ("first_seen", "last_seen", "last_order_ts"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = f"{value:.3f}"
        return fields

    def to_state(self) -> dict[str, Any]:
        return {
            "orders": self.orders, "spend": self.spend, "units": self.units,
            "clicks": self.clicks, "payments": self.payments,
            "payment_amount": self.payment_amount, "first_seen": self.first_seen,
            "last_seen": self.last_seen, "last_order_ts": self.last_order_ts,
            "applied": self.applied.to_state(), "recent": self.recent.to_state(),
            "features": self.features.state_dict(), "history": self.history.state_dict(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], dedupe_capacity: int) -> CustomerState:
        customer = cls(
            AppliedOffsets(state["applied"]),
            RecentIds.from_state(dedupe_capacity, state["recent"]),
            CustomerFeatures.from_state(state["features"]),
            PaymentHistory.from_state(state["history"]),
        )
        for name in ("orders", "spend", "units", "clicks", "payments", "payment_amount",
                     "first_seen", "last_seen", "last_order_ts"):
            setattr(customer, name, state[name])
        return customer

    def encode(self) -> bytes:
        return orjson.dumps(self.to_state())

    @classmethod
    def decode(cls, data: bytes, dedupe_capacity: int) -> CustomerState:
        return cls.from_state(orjson.loads(data), dedupe_capacity)
