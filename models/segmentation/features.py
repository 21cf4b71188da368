"""One customer's behaviour, folded from click, order and payment records."""

from __future__ import annotations

import math
import sys
from typing import Any, ClassVar, Self

from models.base import check_state_tag
from models.compact import NamedFloats

DAY = 86_400.0
WEEK = 7 * DAY
LN2 = math.log(2.0)

#: Event-time decayed sums, all expressed as of the customer's last event.
DECAYED = ("orders", "spend", "log_value", "units", "lines", "priced", "log_price", "views", "carts", "sessions")
#: Lifetime counters (never decay).
LIFETIME = (
    "orders", "units", "spend", "log_value", "lines", "priced", "log_price",
    "views", "carts", "sessions", "payments", "declined_payments",
)
#: Payment statuses that count as declined.
DECLINED = frozenset({"declined", "failed"})


class CustomerFeatures:
    """Recency, frequency, monetary value and browsing habits of one customer.

    Fold every accepted record of the customer with :meth:`apply`; read the
    segmentation vector at an event time with :meth:`vector`.

    **Decay.** Order count, spend, log order value, units, order lines, priced
    items, log prices, views, add-to-carts and sessions are event-time sums
    where an event at ``t`` weighs ``2 ** (-(now - t) / half_life)``. They
    are stored as of the customer's latest event time (``last_seen``): a
    newer event first fades the sums to its own time, an older (late) event
    is added with its already-faded weight. The state after a set of events
    is therefore the same whatever order they arrive in (up to float
    rounding), so late and out-of-order events need no special handling;
    ``first_seen``, ``last_seen`` and ``last_order_at`` are min/max. Two
    parts are bounded and so only order-insensitive within their bounds: the
    last ``max_sessions`` session ids (a session that reappears after more
    than that many newer sessions is counted again), and the top
    ``max_categories`` categories by spend (Space-Saving: a new category
    replaces the smallest and inherits its spend, an overestimate).

    **Vector** (:attr:`FEATURES`; heavy tails are log-compressed):
    ``recency_weeks`` log1p of weeks since last seen on any topic (weeks, so
    that hours-to-days of an active customer's cycle weigh less than a lapse);
    ``orders_30d`` / ``spend_30d`` / ``sessions_30d`` log1p of the decayed
    rate per 30 days (a decayed count times ``ln 2 / half_life * 30``, which
    is unbiased for a steady rate); ``avg_order_value`` the decayed mean of
    log1p(order value), i.e. a geometric mean that one big purchase does not
    swamp; ``basket_units`` log1p of decayed units per decayed order;
    ``price_level`` decayed mean log1p of the prices seen (viewed items that
    carry a price and ordered lines): price sensitivity; ``browse_to_buy``
    ``ln((1 + views_30d) / (1 + orders_30d))``; ``cart_abandonment`` the share
    of decayed add-to-carts not matched by ordered lines, in [0, 1]. Means
    over nothing (no order, no price seen) are 0. :meth:`to_units` turns a
    vector, or a centroid of vectors, back into human units.

    **Memory**: 10 decayed and 12 lifetime numbers (unboxed, in two
    :class:`~models.compact.NamedFloats`), three timestamps, at most
    ``max_sessions`` session ids and ``max_categories`` categories (names
    interned: shared by every customer): about 860 bytes per one-click
    customer as Python objects besides its session id string (tracemalloc;
    1.34 KB with dicts of floats), about 1.3 KB as a JSON checkpoint.

    >>> day = 86_400.0
    >>> customer = CustomerFeatures(half_life_days=30)
    >>> customer.apply("clicks", {"event_id": "e1", "ts": 0.0, "customer_id": "c1",
    ...                           "session_id": "s1", "action": "add_to_cart", "sku": "A"})
    >>> customer.apply("orders", {"event_id": "e2", "order_id": "o1", "ts": 600.0,
    ...     "customer_id": "c1", "currency": "EUR",
    ...     "lines": [{"sku": "A", "quantity": 2, "unit_price": 42.0, "category": "toys"}]})
    >>> units = CustomerFeatures.to_units(customer.vector(now=600.0 + 2 * day))
    >>> round(units["avg_order_value"], 2), round(units["days_since_seen"], 2)
    (84.0, 2.0)
    >>> customer.profile(now=600.0)["top_categories"]
    {'toys': 84.0}
    """

    #: Names of :meth:`vector`'s entries, in order.
    FEATURES: ClassVar[tuple[str, ...]] = (
        "recency_weeks",
        "orders_30d",
        "spend_30d",
        "avg_order_value",
        "basket_units",
        "price_level",
        "browse_to_buy",
        "cart_abandonment",
        "sessions_30d",
    )
    STATE_TAG: ClassVar[tuple[str, int]] = ("CustomerFeatures", 1)

    __slots__ = ("half_life_days", "max_sessions", "max_categories", "first_seen", "last_seen", "last_order_at",
                 "decayed", "lifetime", "sessions", "categories")

    def __init__(self, half_life_days: float = 30.0, max_sessions: int = 8, max_categories: int = 5) -> None:
        if half_life_days <= 0 or max_sessions < 1 or max_categories < 1:
            raise ValueError("half_life_days must be > 0, max_sessions and max_categories >= 1")
        self.half_life_days = float(half_life_days)
        self.max_sessions = max_sessions
        self.max_categories = max_categories
        self.first_seen: float | None = None
        #: Latest event time; the decayed sums are expressed as of this instant.
        self.last_seen: float | None = None
        self.last_order_at: float | None = None
        self.decayed = NamedFloats(DECAYED)
        self.lifetime = NamedFloats(LIFETIME)
        #: Recent session id -> its earliest event time.
        self.sessions: dict[str, float] = {}
        #: Top categories -> lifetime spend (Space-Saving estimate).
        self.categories: dict[str, float] = {}

    # -- folding records -------------------------------------------------

    def apply(self, topic: str, record: dict[str, Any]) -> None:
        """Fold one accepted record of ``topic`` (``clicks``, ``orders`` or ``payments``)."""
        if topic == "clicks":
            fold = self._click
        elif topic == "orders":
            fold = self._order
        elif topic == "payments":
            fold = self._payment
        else:
            raise ValueError(f"CustomerFeatures folds clicks, orders and payments, not {topic!r}")
        ts = float(record["ts"])
        fold(record, ts, self._advance(ts))

    def _advance(self, ts: float) -> float:
        """Move the reference time to ``ts`` if it is newer; the weight of an event at ``ts`` now."""
        last = self.last_seen
        if last is None:
            self.first_seen = self.last_seen = ts
            return 1.0
        if ts >= last:
            if ts > last:
                fade = self._fade(last, ts)
                self.decayed.scale(fade)
                self.last_seen = ts
            return 1.0
        if self.first_seen is None or ts < self.first_seen:
            self.first_seen = ts
        return self._fade(ts, last)

    def _fade(self, then: float, now: float) -> float:
        return math.exp2((then - now) / (self.half_life_days * DAY))

    def _add(self, name: str, amount: float, weight: float) -> None:
        self.decayed.add(name, amount * weight)
        self.lifetime.add(name, amount)

    def _click(self, record: dict[str, Any], ts: float, weight: float) -> None:
        action = record["action"]
        if action == "view":
            self._add("views", 1.0, weight)
            price = record.get("price")
            if price is not None:
                self._see_price(price, weight)
        elif action == "add_to_cart":
            self._add("carts", 1.0, weight)
        self._see_session(str(record["session_id"]), ts, weight)

    def _see_session(self, session_id: str, ts: float, weight: float) -> None:
        started = self.sessions.get(session_id)
        if started is None:
            self.sessions[session_id] = ts
            self._add("sessions", 1.0, weight)
            if len(self.sessions) > self.max_sessions:
                oldest = min(self.sessions, key=lambda sid: (self.sessions[sid], sid))
                del self.sessions[oldest]
        elif ts < started:
            # A late event moves the session's start earlier: re-weight it.
            assert self.last_seen is not None
            self.decayed["sessions"] += weight - self._fade(started, self.last_seen)
            self.sessions[session_id] = ts

    def _order(self, record: dict[str, Any], ts: float, weight: float) -> None:
        lines = record["lines"]
        value = record.get("total")
        if value is None:
            value = sum(line["quantity"] * line["unit_price"] for line in lines)
        self._add("orders", 1.0, weight)
        self._add("spend", float(value), weight)
        self._add("log_value", math.log1p(value), weight)
        self._add("units", float(sum(line["quantity"] for line in lines)), weight)
        self._add("lines", float(len(lines)), weight)
        self.last_order_at = ts if self.last_order_at is None else max(self.last_order_at, ts)
        for line in lines:
            self._see_price(line["unit_price"], weight)
            category = line.get("category")
            if category is not None:
                self._spend_in(sys.intern(str(category)), line["quantity"] * line["unit_price"])

    def _see_price(self, price: float, weight: float) -> None:
        self._add("priced", 1.0, weight)
        self._add("log_price", math.log1p(price), weight)

    def _spend_in(self, category: str, amount: float) -> None:
        if category in self.categories or len(self.categories) < self.max_categories:
            self.categories[category] = self.categories.get(category, 0.0) + amount
            return
        smallest = min(self.categories, key=lambda name: (self.categories[name], name))
        self.categories[category] = self.categories.pop(smallest) + amount

    def _payment(self, record: dict[str, Any], ts: float, weight: float) -> None:
        self.lifetime["payments"] += 1.0
        if record.get("status") in DECLINED:
            self.lifetime["declined_payments"] += 1.0

    # -- reading ---------------------------------------------------------

    def _decayed_at(self, now: float) -> tuple[dict[str, float], float]:
        """Decayed sums faded to ``now`` (never before the last event), and that instant."""
        assert self.last_seen is not None
        at = max(now, self.last_seen)
        fade = self._fade(self.last_seen, at)
        return {name: value * fade for name, value in self.decayed.items()}, at

    def vector(self, now: float) -> dict[str, float]:
        """The segmentation vector at event time ``now`` (all zeros before any event).

        ``now`` earlier than the last event reads the state as of the last event.
        """
        if self.last_seen is None:
            return dict.fromkeys(self.FEATURES, 0.0)
        decayed, at = self._decayed_at(now)
        per_30d = LN2 / self.half_life_days * 30.0
        orders = self.decayed["orders"]
        orders_30d = decayed["orders"] * per_30d
        carts = self.decayed["carts"]
        priced = self.decayed["priced"]
        return {
            "recency_weeks": math.log1p((at - self.last_seen) / WEEK),
            "orders_30d": math.log1p(orders_30d),
            "spend_30d": math.log1p(decayed["spend"] * per_30d),
            "avg_order_value": self.decayed["log_value"] / orders if orders > 0 else 0.0,
            "basket_units": math.log1p(self.decayed["units"] / orders) if orders > 0 else 0.0,
            "price_level": self.decayed["log_price"] / priced if priced > 0 else 0.0,
            "browse_to_buy": math.log1p(decayed["views"] * per_30d) - math.log1p(orders_30d),
            "cart_abandonment": min(1.0, max(0.0, 1.0 - self.decayed["lines"] / carts)) if carts > 0 else 0.0,
            "sessions_30d": math.log1p(decayed["sessions"] * per_30d),
        }

    @staticmethod
    def to_units(vector: dict[str, float]) -> dict[str, float]:
        """A vector (or a centroid of vectors) in human units: days, counts per 30 days, money."""
        orders_30d = math.expm1(vector["orders_30d"])
        return {
            "days_since_seen": math.expm1(vector["recency_weeks"]) * WEEK / DAY,
            "orders_per_30d": orders_30d,
            "spend_per_30d": math.expm1(vector["spend_30d"]),
            "avg_order_value": math.expm1(vector["avg_order_value"]),
            "units_per_order": math.expm1(vector["basket_units"]),
            "typical_price": math.expm1(vector["price_level"]),
            "views_per_30d": (1.0 + orders_30d) * math.exp(vector["browse_to_buy"]) - 1.0,
            "cart_abandonment": vector["cart_abandonment"],
            "sessions_per_30d": math.expm1(vector["sessions_30d"]),
        }

    def profile(self, now: float) -> dict[str, Any]:
        """Everything known about the customer in human units, for lookups and debugging."""
        spend = sum(self.categories.values())
        return {
            **self.to_units(self.vector(now)),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "last_order_at": self.last_order_at,
            "lifetime": dict(self.lifetime),
            "top_categories": dict(sorted(self.categories.items(), key=lambda kv: (-kv[1], kv[0]))),
            "category_mix": {name: value / spend for name, value in self.categories.items()} if spend else {},
        }

    # -- checkpoints -----------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint of this customer."""
        model, version = self.STATE_TAG
        return {
            "model": model,
            "version": version,
            "half_life_days": self.half_life_days,
            "max_sessions": self.max_sessions,
            "max_categories": self.max_categories,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "last_order_at": self.last_order_at,
            "decayed": dict(self.decayed),
            "lifetime": dict(self.lifetime),
            "sessions": dict(self.sessions),
            "categories": dict(self.categories),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a customer from :meth:`state_dict` output."""
        check_state_tag(state, *cls.STATE_TAG)
        customer = cls(state["half_life_days"], state["max_sessions"], state["max_categories"])
        customer.first_seen = state["first_seen"]
        customer.last_seen = state["last_seen"]
        customer.last_order_at = state["last_order_at"]
        customer.decayed = NamedFloats(DECAYED, (float(state["decayed"][name]) for name in DECAYED))
        customer.lifetime = NamedFloats(LIFETIME, (float(state["lifetime"][name]) for name in LIFETIME))
        customer.sessions = {str(k): float(v) for k, v in state["sessions"].items()}
        customer.categories = {sys.intern(str(k)): float(v) for k, v in state["categories"].items()}
        return customer
