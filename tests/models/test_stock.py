"""StockBook: stock on hand from counts and orders in any arrival order, hours to stock-out, restock alerts."""

from __future__ import annotations

import random

from models.forecasting import Forecast, StockBook

HOUR = 3600.0


class Steady:
    """A forecaster selling ``rate`` units an hour, the lower bound of demand at 3/4 of it."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def demand(self, start: float, steps: int) -> list[Forecast]:
        first = start // HOUR * HOUR
        out = []
        for k in range(steps):
            sold = self.rate * (first + (k + 1) * HOUR - start) / HOUR
            out.append(Forecast(first + k * HOUR, sold, 0.75 * sold, 1.25 * sold, "seasonal"))
        return out


def _order(ts: float, sku: str, quantity: int) -> dict:
    return {"ts": ts, "lines": [{"sku": sku, "quantity": quantity, "unit_price": 1.0}]}


def _events() -> list[tuple[str, dict]]:
    """Two SKUs over ten hours: counts every two hours (a restock of A at 6 h), an order every 20 minutes."""
    events = [("count", {"ts": 0.0, "sku": "A", "on_hand": 40}), ("count", {"ts": 0.0, "sku": "B", "on_hand": 9}),
              ("count", {"ts": 6 * HOUR, "sku": "A", "on_hand": 100})]
    for k in range(1, 31):
        events.append(("order", _order(k * 1200.0, "A" if k % 3 else "B", 2)))
        if k % 6 == 0 and k != 18:
            ts = k * 1200.0
            sold_a = sum(2 for j in range(1, k + 1) if j % 3) - (0 if k < 18 else sum(2 for j in range(1, 19) if j % 3))
            events.append(("count", {"ts": ts, "sku": "A", "on_hand": (40 if k < 18 else 100) - sold_a}))
    return events


def _feed(book: StockBook, events: list[tuple[str, dict]]) -> None:
    for kind, record in events:
        (book.add_count if kind == "count" else book.add_order)(record)


def _run(events: list[tuple[str, dict]], at: list[float]) -> list:
    book = StockBook(horizon_hours=8.0)
    _feed(book, events)
    out = []
    for instant in at:
        update = book.evaluate(instant, lambda sku: Steady(3.0))
        out.append((update.views, [(a.sku, a.ts, a.on_hand) for a in update.alerts]))
    return out


def test_stock_on_hand_is_the_same_whatever_order_counts_and_orders_arrive_in() -> None:
    events = _events()
    expected = _run(events, [2 * HOUR, 5 * HOUR, 9 * HOUR])
    for seed in range(5):
        shuffled = events[1:]  # the book's very first count comes first (before it, no order is looked at)
        random.Random(seed).shuffle(shuffled)
        assert _run([events[0], *shuffled], [2 * HOUR, 5 * HOUR, 9 * HOUR]) == expected
    views = expected[-1][0]
    assert views["A"]["on_hand"] == 100 - 2 * sum(1 for j in range(19, 28) if j % 3)  # restocked at 6 h, sold since
    assert views["B"]["on_hand"] == 0  # 9 counted, 18 ordered since: never shown below zero
    assert views["B"]["hours_to_stockout"] == 0.0


def test_a_late_count_never_replaces_a_newer_one() -> None:
    book = StockBook(horizon_hours=8.0, retain_seconds=HOUR)
    book.add_count({"ts": 10 * HOUR, "sku": "A", "on_hand": 50})
    book.add_order(_order(10.5 * HOUR, "A", 5))
    book.evaluate(12 * HOUR, lambda sku: None)
    book.add_count({"ts": 9 * HOUR, "sku": "A", "on_hand": 500})  # older than every count kept: late
    assert book.on_hand("A", 12 * HOUR) == 45
    assert book.late_counts == 1
    # A count late but within retain_seconds, between two others, still applies exactly at its own time.
    book.add_count({"ts": 11.5 * HOUR, "sku": "A", "on_hand": 30})
    book.add_order(_order(11.75 * HOUR, "A", 1))
    assert book.on_hand("A", 11.6 * HOUR) == 30 and book.on_hand("A", 12 * HOUR) == 29


def test_a_restock_alert_once_per_episode_then_again_after_a_restock() -> None:
    book = StockBook(horizon_hours=10.0)
    book.add_count({"ts": 0.0, "sku": "A", "on_hand": 60})
    alerts = []
    for hour in range(1, 30):
        if hour == 15:
            book.add_count({"ts": hour * HOUR - 1, "sku": "A", "on_hand": 60})  # restocked
        book.add_order(_order(hour * HOUR - 1800.0, "A", 3))
        update = book.evaluate(hour * HOUR, lambda sku: Steady(3.0))
        alerts += [(a.ts / HOUR, a.on_hand) for a in update.alerts]
        view = update.views["A"]
        assert view["hours_to_stockout"] == view["on_hand"] / 3.0  # expected demand: 3 an hour
    # 10 h at the lower bound (2.25 an hour) is 22.5 units: alerted when at most that is left, once per episode.
    assert alerts == [(13.0, 21), (28.0, 21)]


def test_checkpoint_restores_the_same_book() -> None:
    events = _events()
    book = StockBook(horizon_hours=8.0)
    _feed(book, events[:20])
    served = book.evaluate(3 * HOUR, lambda sku: Steady(3.0)).views
    restored = StockBook.from_state(book.state_dict())
    # The last evaluation's views come back with it (a Redis that lost its views is given them again).
    assert served and restored.latest == book.latest == served
    _feed(book, events[20:])
    _feed(restored, events[20:])
    assert restored.evaluate(9 * HOUR, lambda sku: Steady(3.0)) == book.evaluate(9 * HOUR, lambda sku: Steady(3.0))
    assert restored.state_dict() == book.state_dict()


def test_memory_is_bounded_by_the_sku_cap_and_pruned_as_event_time_passes() -> None:
    book = StockBook(max_skus=3, retain_seconds=HOUR)
    for k in range(5):
        book.add_count({"ts": float(k), "sku": f"S{k}", "on_hand": 10})
    assert len(book) == 3 and book.dropped_skus == 2
    for k in range(200):
        book.add_order(_order(10.0 + k * 60.0, "S4", 1))
    book.evaluate(20 * HOUR, lambda sku: None)
    assert book.metrics()["recent_lines"] == 0
    assert book.metrics()["held_orders"] == 200  # S4 has one count: its orders since are its stock
    book.add_count({"ts": 19 * HOUR, "sku": "S4", "on_hand": 3})
    book.evaluate(21 * HOUR, lambda sku: None)
    assert book.metrics()["held_orders"] == 0 and book.on_hand("S4", 21 * HOUR) == 3
