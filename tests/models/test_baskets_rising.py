"""RisingPairs on a planted trend: a pair that starts selling together raises one trend alert per cooldown."""

from __future__ import annotations

import random

import pytest

from models.baskets import BasketCounter, RisingPairs, TrendAlert

HOUR = 3600.0
BACKGROUND = [f"S{i:02d}" for i in range(30)]


def hourly_observations(hours: int, trend_from: int) -> list[dict]:
    """40 orders an hour; ("TEA", "MUG") steady in 20% of baskets, ("PQ-1", "PQ-2") from 1% to 15% at ``trend_from``."""
    rng = random.Random(9)
    counter = BasketCounter(epsilon=0.002, min_support=0.03, half_life=6 * HOUR)
    observations = []
    for hour in range(hours):
        for k in range(40):
            basket = set(rng.sample(BACKGROUND, rng.randint(1, 3)))
            if rng.random() < 0.2:
                basket |= {"TEA", "MUG"}
            if rng.random() < (0.15 if hour >= trend_from else 0.01):
                basket |= {"PQ-1", "PQ-2"}
            counter.learn_one({"ts": hour * HOUR + k * 90.0, "lines": [{"sku": sku} for sku in basket]})
        observations.append(RisingPairs.observation(counter.itemsets(), (hour + 1) * HOUR, counter.min_support))
    return observations


@pytest.fixture(scope="module")
def observations() -> list[dict]:
    return hourly_observations(hours=120, trend_from=72)


def run(rising: RisingPairs, observations: list[dict]) -> list[TrendAlert]:
    alerts = []
    for observation in observations:
        alerts += rising.predict_one(observation)
        rising.learn_one(observation)
    return alerts


def test_the_planted_trend_raises_one_alert_soon_after_it_starts(observations: list[dict]) -> None:
    alerts = run(RisingPairs(ratio=2.0, warmup=6, cooldown=7 * 24 * HOUR), observations)
    assert [a.items for a in alerts] == [("PQ-1", "PQ-2")]
    (alert,) = alerts
    assert 72 * HOUR < alert.ts <= 78 * HOUR
    assert alert.to_record()["kind"] == "trend" and alert.to_record()["subject"] == "PQ-1,PQ-2"
    assert alert.score >= 2.0 and alert.reasons()


def test_a_lasting_trend_alerts_again_only_after_the_cooldown(observations: list[dict]) -> None:
    # A slow history keeps the new level far above the baseline: the pair is re-announced every cooldown.
    alerts = run(RisingPairs(ratio=2.0, alpha=0.02, warmup=6, cooldown=12 * HOUR), observations)
    times = [a.ts for a in alerts if a.items == ("PQ-1", "PQ-2")]
    assert len(times) >= 2
    assert all(later - earlier >= 12 * HOUR for earlier, later in zip(times, times[1:]))


def test_steady_pairs_and_warmup_stay_silent(observations: list[dict]) -> None:
    quiet = run(RisingPairs(ratio=2.0, warmup=6), observations[:72])
    assert quiet == []
    assert RisingPairs(warmup=3).predict_one(observations[80]) == []


def test_observations_carry_support_and_lift_of_each_frequent_pair(observations: list[dict]) -> None:
    pairs = {(a, b): (support, lift) for a, b, support, lift in observations[-1]["pairs"]}
    support, lift = pairs[("MUG", "TEA")]
    assert support == pytest.approx(0.2, abs=0.05)
    assert lift == pytest.approx(5.0, rel=0.25)
