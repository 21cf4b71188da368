"""Stock-out risk in the sales stage: additive, independent of arrival order, replay-safe after a restart."""

from __future__ import annotations

import random

import pytest

from streams.pipeline.packing import PackedBatch
from streams.pipeline.stages.sales import SalesState, restock_alert
from streams.settings import KairosSettings

HOUR = 3600.0
START = 1_793_491_200.0  # 2026-11-01T00:00:00Z
DAYS = 6
SETTINGS = KairosSettings(restock_horizon_hours=24.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _shop() -> tuple[list[dict], list[dict]]:
    """Orders of SKUs A (about 70 units a day, busier by day) and B over six days, and counts of A every two
    hours: restocked to 250 when under 110 until day 3, then left to sell out."""
    rng = random.Random(5)
    orders, counts, on_hand = [], [], 250
    for hour in range(DAYS * 24):
        begin = START + hour * HOUR
        busy = 1 if 8 <= hour % 24 < 22 else 0
        for k in range(2 + 3 * busy):
            ts = begin + (k + rng.random()) * HOUR / (2 + 3 * busy)
            sku = "A" if rng.random() < 0.8 else "B"
            orders.append({"ts": round(ts, 3), "lines": [{"sku": sku, "quantity": 1, "unit_price": 5.0}]})
            on_hand -= sku == "A"
        if hour % 2 == 1:
            if on_hand < 110 and hour < 3 * 24:
                on_hand = 250
            counts.append({"ts": begin + HOUR - 0.5, "sku": "A", "on_hand": max(0, on_hand)})
    return orders, counts


def _batches(records: list[dict], kind: str, path: str, size: int) -> list[PackedBatch]:
    return [PackedBatch(kind, path, [(i + j, record) for j, record in enumerate(records[i:i + size])])
            for i in range(0, len(records), size)]


def _interleaved(orders: list[PackedBatch], counts: list[PackedBatch]) -> list[PackedBatch]:
    return sorted(orders + counts, key=lambda b: (b.entries[0][1]["ts"], b.path))


def _held_back(orders: list[PackedBatch], counts: list[PackedBatch]) -> list[PackedBatch]:
    """The first count, then a day of orders ahead of the counts, then the counts catching up, and so on."""
    out, pending = [counts[0]], counts[1:]
    for day in range(DAYS + 1):
        out += [b for b in orders if START + (day - 1) * 24 * HOUR <= b.entries[0][1]["ts"] < START + day * 24 * HOUR]
        out += [b for b in pending if b.entries[0][1]["ts"] < START + day * 24 * HOUR]
        pending = [b for b in pending if b.entries[0][1]["ts"] >= START + day * 24 * HOUR]
    return out + pending


def _stage() -> tuple[SalesState, Clock]:
    clock = Clock()
    fresh = SalesState.new(SETTINGS)
    state = SalesState(fresh.monitor, idle_seconds=5.0, clock=clock, stock=fresh.stock)
    clock.now = 10.0  # every path counts as heard from now on: the slowest holds the watermark
    return state, clock


def _run(arrival: list[PackedBatch], state: SalesState | None = None) -> tuple[list, dict, SalesState]:
    if state is None:
        state, _ = _stage()
    alerts, stock = [], {}
    for batch in arrival:
        update = state.apply(batch)
        alerts += update.restocks
        stock |= update.stock
    return alerts, stock, state


@pytest.fixture(scope="module")
def shop() -> tuple[list[PackedBatch], list[PackedBatch]]:
    orders, counts = _shop()
    return _batches(orders, "orders", "orders:0>0", 25), _batches(counts, "inventory", "inventory:0>0", 3)


@pytest.fixture(scope="module")
def interleaved(shop) -> tuple[list, dict, SalesState]:
    return _run(_interleaved(*shop))


def test_a_planted_sell_out_is_alerted_ahead_and_served_per_sku(interleaved) -> None:
    alerts, stock, state = interleaved
    assert [a.sku for a in alerts] == ["A"]
    at, on_hand = alerts[0].ts, alerts[0].on_hand
    assert 3 * 24 * HOUR < at - START < DAYS * 24 * HOUR and on_hand > 0
    view = stock["A"]
    assert view["alerted_at"] == at and view["basis"] == "seasonal"
    assert "B" not in stock  # no counts of B: no stock view

    sold_out = next(o["ts"] for o in _sold_out_order())
    assert sold_out - at >= 6 * HOUR  # alerted at least six hours of event time ahead
    alert = restock_alert(alerts[0])
    assert alert.kind == "restock" and alert.alert_id == f"restock:A:{at:.0f}" and alert.subject == "sku:A"
    assert "units on hand" in alert.reasons[0]


def _sold_out_order() -> list[dict]:
    """The order that took A's last unit."""
    orders, counts = _shop()
    last_count = max((c for c in counts if c["on_hand"] > 0), key=lambda c: c["ts"])
    left, out = last_count["on_hand"], []
    for order in orders:
        if order["ts"] > last_count["ts"] and order["lines"][0]["sku"] == "A":
            left -= 1
            if left == 0:
                out.append(order)
    return out


def test_arrival_order_changes_neither_stock_views_nor_alerts(shop, interleaved) -> None:
    orders, counts = shop
    alerts, stock, state = interleaved
    held_alerts, held_stock, held_state = _run(_held_back(orders, counts))
    assert held_alerts == alerts
    assert held_stock == stock
    assert held_state.stock.state_dict() == state.stock.state_dict()


def test_without_inventory_counts_nothing_changes_and_with_them_the_forecasts_do_not(shop, interleaved) -> None:
    orders, _ = shop
    alerts, stock, state = _run(orders)
    assert alerts == [] and stock == {} and len(state.stock) == 0
    assert state.stock.metrics()["recent_lines"] == 0 and not state.stock.active  # no count: no order looked at
    _, _, with_counts = interleaved
    plain, _ = _stage()
    for batch in orders:
        plain.apply(batch)
    # The same forecasts, windows and alerts as without inventory counts (stepping the watermark through each
    # window's close gives what one step does).
    assert plain.monitor.state_dict() == state.monitor.state_dict()
    assert with_counts.monitor.state_dict()["forecasters"] == state.monitor.state_dict()["forecasters"]


def test_a_restart_from_a_checkpoint_replays_to_the_same_alerts(shop, interleaved) -> None:
    arrival = _interleaved(*shop)
    alerts, stock, _ = interleaved
    cut = len(arrival) * 2 // 3
    before, _, state = _run(arrival[:cut])
    restored = SalesState.from_state(state.state_dict(), 5.0, settings=SETTINGS)
    restored._clock = Clock()
    restored._clock.now = 10.0
    restored.paths.started = -10.0
    after, after_stock, _ = _run(arrival[cut - 8:], restored)  # the unacknowledged tail is delivered again
    assert before + after == alerts
    assert after_stock["A"] == stock["A"]
