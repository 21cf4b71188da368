"""Sales forecasts: beating seasonal-naive, cold start, intervals, robustness to surges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.forecasting import ForecastErrors, SalesForecaster, SeasonalNaive

#: Relative sales per weekday: a quiet Monday-Tuesday, a busy weekend.
WEEK = (0.8, 0.85, 1.0, 1.0, 1.1, 1.4, 1.25)


def daily_profile(phase: float) -> float:
    """Relative sales at ``phase`` of the day (0-1): quiet nights, a lunch peak and an evening peak."""
    return 0.08 + math.exp(-(((phase - 0.5) / 0.12) ** 2)) + 0.8 * math.exp(-(((phase - 0.83) / 0.07) ** 2))


def seasonal_sales(seed: int, days: int, peak: float, season: int = 24) -> list[float]:
    """Units per window: daily profile x weekday factor x ``peak``, with Poisson noise."""
    rng = np.random.default_rng(seed)
    return [
        float(rng.poisson(peak * daily_profile((k % season) / season) * WEEK[k // season % 7]))
        for k in range(days * season)
    ]


def learn(forecaster: SalesForecaster, values: list[float], first: int = 0) -> None:
    size = forecaster.calendar.size
    for k, value in enumerate(values, start=first):
        forecaster.learn_one({"window_start": k * size}, value)


@pytest.mark.parametrize(
    ("window_size", "season_length"),
    [(3600.0, 24), (60.0, 30)],
    ids=["hourly windows, 24-hour day", "1-minute demo windows, 30-minute day"],
)
@pytest.mark.parametrize("peak", [8.0, 40.0])
def test_after_a_week_the_forecaster_beats_seasonal_naive_by_over_20_percent(
    window_size: float, season_length: int, peak: float
) -> None:
    forecaster = SalesForecaster(window_size=window_size, season_length=season_length)

    learn(forecaster, seasonal_sales(seed=3, days=28, peak=peak, season=season_length))

    metrics = forecaster.metrics()
    assert metrics["windows"] == 21 * season_length  # scored after the one-week warm-up
    assert metrics["mae_ratio"] <= 0.8, metrics


def test_before_a_whole_season_it_forecasts_the_mean_so_far_and_says_so() -> None:
    forecaster = SalesForecaster(window_size=3600.0, season_length=24)
    assert forecaster.predict_one({"window_start": 0.0}).value == 0.0

    learn(forecaster, [4.0, 8.0, 6.0])

    early = forecaster.forecast()
    assert [f.basis for f in early] == ["warming-up"] * 3
    assert [f.window_start for f in early] == [3 * 3600.0, 4 * 3600.0, 5 * 3600.0]
    assert early[0].value == pytest.approx(6.0)
    learn(forecaster, [6.0] * 21, first=3)
    assert forecaster.forecast()[0].basis == "seasonal"


def test_the_interval_holds_about_the_promised_share_of_actuals() -> None:
    forecaster = SalesForecaster(window_size=3600.0, season_length=24, coverage=0.9)
    sales = seasonal_sales(seed=8, days=35, peak=30.0)
    learn(forecaster, sales[: 14 * 24])

    inside = 0
    for k, actual in enumerate(sales[14 * 24 :], start=14 * 24):
        expected = forecaster.predict_one({"window_start": k * 3600.0})
        inside += expected.lower <= actual <= expected.upper
        forecaster.learn_one({"window_start": k * 3600.0}, actual)

    assert 0.84 <= inside / (21 * 24) <= 0.97


def test_a_surge_is_not_learned_as_the_new_normal() -> None:
    normal = seasonal_sales(seed=4, days=21, peak=20.0)
    surge = [4 * v for v in seasonal_sales(seed=5, days=1, peak=20.0)[10:16]]  # 10:00-16:00 at four times the usual
    robust = SalesForecaster(window_size=3600.0, season_length=24)
    naive_learner = SalesForecaster(window_size=3600.0, season_length=24, robustness=math.inf)
    for forecaster in (robust, naive_learner):
        learn(forecaster, normal)
    before = robust.predict_one({"window_start": (22 * 24 + 12) * 3600.0}).value

    for forecaster in (robust, naive_learner):
        learn(forecaster, normal[-24:-14], first=21 * 24)
        learn(forecaster, surge, first=21 * 24 + 10)

    next_noon = {"window_start": (22 * 24 + 12) * 3600.0}
    assert robust.predict_one(next_noon).value < 1.25 * before
    assert naive_learner.predict_one(next_noon).value > 1.5 * before


def test_it_scores_itself_against_seasonal_naive_on_the_same_windows() -> None:
    sales = seasonal_sales(seed=6, days=10, peak=15.0)
    forecaster = SalesForecaster(window_size=3600.0, season_length=24, warmup=48)
    naive = SeasonalNaive(window_size=3600.0, season_length=24)
    by_hand = ForecastErrors()

    for k, actual in enumerate(sales):
        x = {"window_start": k * 3600.0}
        if k >= 48:
            by_hand.update(actual, forecaster.predict_one(x).value, naive.predict_one(x))
        forecaster.learn_one(x, actual)
        naive.learn_one(x, actual)

    assert forecaster.metrics() == by_hand.as_dict()
