"""One live shopping session as a few counters: what the conversion model sees at each click.

A session is a customer's run of clicks under one ``session_id``. It holds
counts, not clicks (memory per session is constant, however long it runs),
and the customer's history as the customers stage knew it at the session's
first click (orders and clicks before, orders per 100 clicks, days since the
last order).

>>> session = LiveSession("s1", "c1", started=1_000.0, orders_before=2, last_order_ts=1_000.0 - 3 * 86_400)
>>> session.click({"ts": 1_030.0, "action": "view", "price": 20.0})
>>> session.click({"ts": 1_060.0, "action": "add_to_cart", "price": 20.0})
>>> session.click({"ts": 1_090.0, "action": "add_to_cart", "price": 35.5})
>>> x = session.features()
>>> x["carts"], x["cart_items"], x["cart_value"], x["minutes"], x["last_action"], x["days_since_order"]
(2, 2, 55.5, 1.5, 'add_to_cart', 3.0)
>>> LiveSession.from_state(session.to_state()).features() == x
True
"""

from __future__ import annotations

from typing import Any

DAY = 86_400.0
#: ``days_since_order`` of a customer who never ordered (a tree splits it off like any large value).
NEVER_ORDERED_DAYS = 999.0
#: The feature names, in the order :meth:`LiveSession.features` gives them.
FEATURES = ("views", "searches", "carts", "removes", "cart_items", "cart_value", "clicks", "minutes",
            "last_action", "hour", "orders_before", "clicks_before", "buy_rate", "days_since_order")
#: Actions a click may carry (wire contract).
ACTIONS = ("view", "search", "add_to_cart", "remove_from_cart")


class LiveSession:
    """The counters of one open session; :meth:`features` is the model's input at its latest click."""

    __slots__ = ("session_id", "customer_id", "started", "last_click", "views", "searches", "carts", "removes",
                 "cart_items", "cart_value", "last_action", "orders_before", "clicks_before", "days_since_order", "score", "peak",
                 "alerted")

    def __init__(self, session_id: str, customer_id: str, started: float, orders_before: int = 0,
                 last_order_ts: float | None = None, clicks_before: int = 0) -> None:
        self.session_id = session_id
        self.customer_id = customer_id
        self.started = started
        self.last_click = started
        self.views = self.searches = self.carts = self.removes = self.cart_items = 0
        self.cart_value = 0.0
        self.last_action = "view"
        self.orders_before = orders_before
        self.clicks_before = clicks_before
        self.days_since_order = (NEVER_ORDERED_DAYS if last_order_ts is None
                                 else round(max(0.0, started - last_order_ts) / DAY, 2))
        #: The conversion probability served for its latest click (``None`` until scored), and the highest.
        self.score: float | None = None
        self.peak = 0.0
        #: Whether an ``abandon`` alert was raised for it.
        self.alerted = False

    def click(self, record: dict[str, Any]) -> None:
        """Count one click (``ts``, ``action``, optional ``price``)."""
        action = record["action"]
        self.last_click = max(self.last_click, record["ts"])
        self.last_action = action
        price = record.get("price") or 0.0
        if action == "view":
            self.views += 1
        elif action == "search":
            self.searches += 1
        elif action == "add_to_cart":
            self.carts += 1
            self.cart_items += 1
            self.cart_value += price
        elif action == "remove_from_cart":
            self.removes += 1
            if self.cart_items > 0:
                self.cart_items -= 1
                self.cart_value = max(0.0, self.cart_value - price)

    def features(self) -> dict[str, Any]:
        """The model's input now (numbers, and ``last_action`` as a category)."""
        return {
            "views": self.views, "searches": self.searches, "carts": self.carts, "removes": self.removes,
            "cart_items": self.cart_items, "cart_value": round(self.cart_value, 2),
            "clicks": self.views + self.searches + self.carts + self.removes,
            "minutes": round((self.last_click - self.started) / 60.0, 2), "last_action": self.last_action,
            "hour": int(self.last_click // 3600 % 24), "orders_before": self.orders_before,
            "clicks_before": self.clicks_before,
            "buy_rate": round(100.0 * self.orders_before / max(1, self.clicks_before), 2),
            "days_since_order": self.days_since_order,
        }

    def to_state(self) -> list[Any]:
        return [getattr(self, name) for name in self.__slots__]

    @classmethod
    def from_state(cls, state: list[Any]) -> LiveSession:
        session = cls.__new__(cls)
        for name, value in zip(cls.__slots__, state):
            setattr(session, name, value)
        return session

