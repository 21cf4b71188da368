"""Opportunity alerts and the monitor's views: surges, slumps, dedup, late events, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.forecasting import SalesForecaster, SalesMonitor, SalesWindows, SurgeDetector
from tests.models.test_forecasting import WEEK, daily_profile

HOUR = 3600.0
DAY = 24 * HOUR


def shop_orders(
    seed: int, days: int, peaks: dict[str, float], surge: tuple[str, float, float, float] | None = None
) -> list[dict]:
    """Single-line orders per category, Poisson in quarter-hours with a daily and weekly rhythm.

    ``surge`` is ``(category, start, end, factor)``: that category sells ``factor`` times as often in [start, end).
    """
    rng = np.random.default_rng(seed)
    orders = []
    for quarter in range(days * 96):
        t0 = quarter * 900.0
        hour = int(t0 // HOUR)
        for category, peak in peaks.items():
            rate = peak * daily_profile((hour % 24) / 24) * WEEK[hour // 24 % 7] / 4
            if surge and surge[0] == category and surge[1] <= t0 < surge[2]:
                rate *= surge[3]
            for _ in range(rng.poisson(rate)):
                sku = f"{category}-{rng.integers(8)}"
                line = {"sku": sku, "quantity": 1, "unit_price": 10.0, "category": category}
                orders.append({"ts": t0 + rng.uniform(0, 900.0), "lines": [line]})
    return sorted(orders, key=lambda o: o["ts"])


def hourly_monitor() -> SalesMonitor:
    return SalesMonitor(SalesWindows(size=HOUR, top_skus=4), SalesForecaster(HOUR, season_length=24))


def run(monitor: SalesMonitor, orders: list[dict]) -> list:
    alerts = []
    for order in orders:
        monitor.add_order(order)
        alerts += monitor.advance().alerts
    return alerts


def test_a_planted_surge_raises_exactly_one_alert_within_two_windows_of_its_start() -> None:
    start = 15 * DAY + 10 * HOUR + 40 * 60  # 10:40 on day 15, a third of the way into its window
    surge = ("toys", start, start + 5 * HOUR, 4.0)
    orders = shop_orders(seed=1, days=17, peaks={"toys": 12.0, "books": 20.0}, surge=surge)

    first_window = start - start % HOUR

    alerts = run(hourly_monitor(), orders)

    on_toys = [a for a in alerts if a.series == "category:toys" and a.window_start >= 8 * DAY]
    assert [(a.kind, a.window_start >= first_window) for a in on_toys] == [("surge", True)]
    assert on_toys[0].window_start <= first_window + HOUR
    assert on_toys[0].actual > on_toys[0].upper and "above the interval" in on_toys[0].reasons()[1]


def test_the_surge_does_not_become_the_new_normal_nor_end_in_a_false_slump() -> None:
    start = 15 * DAY + 9 * HOUR
    orders = shop_orders(seed=2, days=18, peaks={"toys": 15.0}, surge=("toys", start, start + 6 * HOUR, 4.0))

    alerts = run(hourly_monitor(), orders)

    after = [a for a in alerts if a.series == "category:toys" and a.window_start >= start + 6 * HOUR]
    assert after == []


def test_the_detector_dedups_an_episode_and_rearms_after_recovery() -> None:
    detector = SurgeDetector(min_volume=5)
    observe = lambda actual, at: detector.observe("category:toys", at * HOUR, actual, 10.0, 4.0, 16.0)  # noqa: E731

    assert observe(18, 0) is None  # just above the bound once: not yet evidence enough
    assert observe(19, 1).kind == "surge"  # twice in a row: a surge
    assert observe(40, 2) is None and observe(12, 3) is None and observe(35, 4) is None  # same episode
    assert observe(10, 5) is None and observe(11, 6) is None  # two windows back inside: episode over
    assert observe(45, 7).kind == "surge"
    assert observe(10, 8) is None and observe(10, 9) is None
    assert observe(1, 10).kind == "slump"  # far below in a single window


def test_tiny_series_and_small_relative_moves_never_alert() -> None:
    detector = SurgeDetector(min_volume=5, min_ratio=1.5)
    assert detector.observe("sku:A", 0.0, actual=4, forecast=0.2, lower=0.0, upper=2.0) is None
    assert detector.observe("total:all", 0.0, actual=130, forecast=100.0, lower=90.0, upper=110.0) is None
    assert detector.observe("total:all", HOUR, actual=131, forecast=100.0, lower=90.0, upper=110.0) is None
    assert detector.state_dict()["episodes"]["total:all"]["above"] > 1.0  # evidence, but not 1.5 x the forecast


def test_views_carry_the_next_forecasts_the_interval_the_last_actuals_and_the_errors() -> None:
    monitor = hourly_monitor()
    orders = shop_orders(seed=3, days=9, peaks={"toys": 10.0})
    run(monitor, orders)
    update = monitor.advance(9 * DAY)

    view = update.views["category:toys"]
    assert view["scope"] == "category" and view["key"] == "toys"
    assert view["next_window_start"] == 9 * DAY and view["last_window_start"] == 9 * DAY - HOUR
    assert view["lower_units"] <= view["forecast_units"] <= view["upper_units"]
    assert view["forecast_revenue"] == pytest.approx(10.0 * view["forecast_units"], rel=0.05)
    assert [step["window_start"] for step in view["horizon"]] == [9 * DAY, 9 * DAY + HOUR, 9 * DAY + 2 * HOUR]
    assert len(view["actuals"]) == 6 and view["actuals"][-1]["units"] == view["last_units"]
    assert view["basis"] == "seasonal" and 0 < view["mae_ratio"] < 1.2
    json.dumps(view)


def test_a_late_order_corrects_the_shown_actual_but_not_the_forecaster() -> None:
    monitor = hourly_monitor()
    run(monitor, shop_orders(seed=4, days=2, peaks={"toys": 10.0}))
    monitor.advance(2 * DAY)
    before = monitor.view("category:toys")
    learned = monitor.state_dict()["forecasters"]["category:toys"]

    late_line = {"sku": "x", "quantity": 3, "unit_price": 1.0, "category": "toys"}
    monitor.add_order({"ts": 2 * DAY - 30.0, "lines": [late_line]})
    update = monitor.advance()

    after = update.views["category:toys"]
    assert after["last_units"] == before["last_units"] + 3
    assert after["forecast_units"] == before["forecast_units"]
    assert monitor.state_dict()["forecasters"]["category:toys"] == learned
    assert monitor.metrics()["late_events"] == 1 and monitor.metrics()["late_corrections"] == 2  # total and toys


def test_a_sku_leaving_the_top_is_reported_as_removed() -> None:
    monitor = SalesMonitor(SalesWindows(size=HOUR, top_skus=1), SalesForecaster(HOUR, season_length=24))
    monitor.add_order({"ts": 10.0, "lines": [{"sku": "A", "quantity": 2, "unit_price": 1.0}]})
    monitor.add_order({"ts": HOUR + 10.0, "lines": [{"sku": "A", "quantity": 1, "unit_price": 1.0}]})
    assert "sku:A" in monitor.advance(2 * HOUR).views

    monitor.add_order({"ts": 2 * HOUR + 10.0, "lines": [{"sku": "B", "quantity": 9, "unit_price": 1.0}]})
    update = monitor.advance(3 * HOUR)

    assert update.removed == ["sku:A"]
    assert "sku:A" not in update.views


def test_a_checkpoint_mid_stream_gives_the_same_alerts_and_views_as_an_uninterrupted_run() -> None:
    start = 8 * DAY + 11 * HOUR
    surge = ("toys", start, start + 4 * HOUR, 4.0)
    orders = shop_orders(seed=5, days=9, peaks={"toys": 12.0, "books": 6.0}, surge=surge)
    cut = len(orders) // 2 + 7

    straight = hourly_monitor()
    expected = run(straight, orders)

    first = hourly_monitor()
    got = run(first, orders[:cut])
    wire = json.loads(json.dumps(first.state_dict()))
    restored = SalesMonitor.from_state(wire)
    assert restored.state_dict() == wire
    got += run(restored, orders[cut:])

    assert got == expected and any(a.series == "category:toys" for a in got)
    assert json.loads(json.dumps(restored.state_dict())) == json.loads(json.dumps(straight.state_dict()))
