"""A marketer reads each segment: a unique name from its traits, a one-line summary, its size."""

from __future__ import annotations

from typing import Any

import pytest

from models.segmentation import CustomerFeatures, Segmenter, SegmentProfile, profile_segments, segment_names
from models.segmentation.profiles import days_ago, money

DAY = 86_400.0
T0 = 1_795_000_000.0


def shopper(kind: str, number: int, end: float) -> CustomerFeatures:
    """A customer whose 60-day history is typical of ``kind``."""
    customer = CustomerFeatures()
    every, views, price, stop = {
        "big spender": (3.0, 2, 90.0, end),
        "browser": (20.0, 15, 8.0, end),
        "lapsed": (4.0, 3, 30.0, end - 40 * DAY),
    }[kind]
    t = end - 60 * DAY + number * 3600.0
    while t < stop:
        session = f"{kind}-{number}-{t}"
        for view in range(views):
            customer.apply("clicks", {"ts": t + view, "session_id": session, "action": "view", "price": price})
        if int((t - end) / DAY) % int(every) == 0:
            customer.apply("orders", {"ts": t + 60, "lines": [{"sku": "x", "quantity": 2, "unit_price": price}]})
        t += DAY
    return customer


def test_each_planted_kind_of_customer_gets_a_fitting_unique_name_and_summary() -> None:
    end = T0 + 90 * DAY
    kinds = ["big spender", "browser", "lapsed"]
    customers = {f"{kind}-{n}": shopper(kind, n, end) for kind in kinds for n in range(20)}
    segmenter = Segmenter(k=3, warmup=30, seed=0)
    segmenter.learn_many({cid: customer.vector(end) for cid, customer in customers.items()})
    profiles = profile_segments(segmenter, updated_at=end, currency="EUR")
    assert sorted(p.size for p in profiles) == [20, 20, 20]
    assert len({p.name for p in profiles}) == 3
    by_kind: dict[str, SegmentProfile] = {}
    for kind in kinds:
        segment = segmenter.predict_one(customers[f"{kind}-0"].vector(end))
        by_kind[kind] = next(p for p in profiles if p.segment_id == segment)
    assert "lapsing" in by_kind["lapsed"].name
    lapsed_days = by_kind["lapsed"].centroid["days_since_seen"]
    assert lapsed_days == pytest.approx(40.5, abs=1.0)
    assert by_kind["lapsed"].summary.endswith(f"last seen {round(lapsed_days)} days ago")
    assert "brows" in by_kind["browser"].name
    assert by_kind["big spender"].centroid["avg_order_value"] == pytest.approx(180.0, rel=0.01)
    assert by_kind["big spender"].summary.startswith("avg order €180")
    assert all(p.updated_at == end for p in profiles)
    plain: dict[str, Any] = by_kind["browser"].to_dict()
    assert plain["segment_id"] == by_kind["browser"].segment_id and plain["size"] == 20


def test_clashing_names_are_made_unique() -> None:
    names = segment_names({
        0: {"recency_weeks": 2.0, "orders_30d": -1.0},
        1: {"recency_weeks": 1.5, "orders_30d": -0.8, "spend_30d": 0.6},
        2: {"recency_weeks": 1.0},
        3: {"recency_weeks": 1.0},
    })
    assert names == {
        0: "occasional lapsing customers",
        1: "high-value occasional lapsing customers",
        2: "lapsing customers (2)",
        3: "lapsing customers (3)",
    }


def test_a_segment_without_strong_traits_is_typical() -> None:
    assert segment_names({7: {"orders_30d": 0.2, "spend_30d": -0.3}}) == {7: "typical customers"}


def test_money_and_days_read_naturally() -> None:
    assert money(84.2, "EUR") == "€84"
    assert money(4.5, "GBP") == "£4.50"
    assert money(1234.0, "CHF") == "1,234 CHF"
    assert days_ago(0.4) == "today"
    assert days_ago(1.2) == "1 day ago"
    assert days_ago(2.0) == "2 days ago"


def test_an_unseeded_segmenter_has_no_profiles() -> None:
    assert profile_segments(Segmenter(), updated_at=T0) == []
