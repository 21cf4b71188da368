"""The forecasting flow on the shop simulator's orders: errors against seasonal-naive and planted surges."""

from __future__ import annotations

import math

import pytest

from models.forecasting import SurgeDetector
from streams.tools.evaluation.forecasting import evaluate_simulator, surge_evidence


def test_on_simulated_orders_categories_beat_seasonal_naive_and_each_planted_surge_alerts_once_in_time() -> None:
    # Ten days of a 3,000-customer shop with two planted surges (a category, then a top SKU),
    # replayed order by order and view by view through hourly windows; errors are scored after a five-day warm-up.
    # Seed 8: of seeds 7-9, the one whose SKU surge's first two hours of orders hold too little evidence alone
    # (on seeds 7 and 9 the orders hold enough, and both surges alert in time too).
    report = evaluate_simulator(seed=8, customers=3000, days=10, surges=2, warmup_days=5)

    categories = report["scopes"]["category"]
    assert categories["series"] == 8 and categories["windows"] == 8 * 5 * 24
    assert categories["mae_ratio"] <= 0.8, categories
    assert report["scopes"]["total"]["mae_ratio"] <= 0.8
    assert [s["series"].partition(":")[0] for s in report["surges"]] == ["category", "sku"]
    # The SKU's orders in its first two hours say too little: its views, with those orders, say enough.
    assert [s["in_data"] for s in report["surges"]] == [True, False]
    for surge in report["surges"]:
        assert surge["alerts"] == 1 and surge["delay"] <= 1, surge
    assert report["surges"][1]["interest"] >= SurgeDetector().interest_threshold
    assert report["other_alerts_per_day"] < 2


def test_the_evidence_a_surge_leaves_in_its_first_two_windows_is_the_poisson_log_likelihood_ratio() -> None:
    # 24 usual orders per active day on a flat clock: 2 in two hours; a surge of 3x from 00:30 adds 3 more.
    truth = [{"start": "2026-11-10T00:30:00+00:00", "end": "2026-11-10T05:00:00+00:00", "factor": 3.0,
              "usual_orders_per_active_day": 24.0}] * 2
    flat = lambda t0, t1: (t1 - t0) / 86_400  # noqa: E731

    as_surging, as_usual = surge_evidence(truth, [5, 2], flat)

    assert as_surging == pytest.approx(5 * math.log(5 / 2) - 3)
    assert as_usual < 0 < as_surging < 4.5  # five orders for two expected: a hint, not yet the detector's threshold
