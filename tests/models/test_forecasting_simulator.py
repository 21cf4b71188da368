"""The forecasting flow on the shop simulator's orders: errors against seasonal-naive and planted surges."""

from __future__ import annotations

from streams.tools.evaluation.forecasting import evaluate_simulator


def test_on_simulated_orders_categories_beat_seasonal_naive_and_each_planted_surge_alerts_once_in_time() -> None:
    # Ten days of a 3,000-customer shop with two planted surges (a category, then a top SKU),
    # replayed order by order through hourly windows; errors are scored after a five-day warm-up.
    report = evaluate_simulator(seed=7, customers=3000, days=10, surges=2, warmup_days=5)

    categories = report["scopes"]["category"]
    assert categories["series"] == 8 and categories["windows"] == 8 * 5 * 24
    assert categories["mae_ratio"] <= 0.8, categories
    assert report["scopes"]["total"]["mae_ratio"] <= 0.8
    assert [s["series"].partition(":")[0] for s in report["surges"]] == ["category", "sku"]
    for surge in report["surges"]:
        assert surge["alerts"] == 1 and surge["delay"] <= 1, surge
