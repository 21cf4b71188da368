"""A customer's features follow their clicks, orders and payments, in event time."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.base import StateVersionError
from models.segmentation import CustomerFeatures

DAY = 86_400.0
T0 = 1_795_000_000.0


def click(ts: float, action: str = "view", session: str = "s1", **extra: Any) -> tuple[str, dict[str, Any]]:
    record = {"event_id": f"c{ts}", "ts": ts, "customer_id": "c1", "session_id": session, "action": action}
    return "clicks", {**record, **extra}


def order(ts: float, *lines: tuple[int, float], category: str | None = None) -> tuple[str, dict[str, Any]]:
    order_lines = [
        {"sku": f"sku{i}", "quantity": q, "unit_price": p, **({"category": category} if category else {})}
        for i, (q, p) in enumerate(lines)
    ]
    return "orders", {"event_id": f"o{ts}", "order_id": f"o{ts}", "ts": ts, "customer_id": "c1",
                      "currency": "EUR", "lines": order_lines}


def payment(ts: float, status: str = "captured") -> tuple[str, dict[str, Any]]:
    return "payments", {"event_id": f"p{ts}", "payment_id": f"p{ts}", "order_id": "o", "ts": ts,
                        "customer_id": "c1", "amount": 10.0, "currency": "EUR", "method": "card", "status": status}


def folded(events: list[tuple[str, dict[str, Any]]], half_life_days: float = 30.0) -> CustomerFeatures:
    customer = CustomerFeatures(half_life_days=half_life_days)
    for topic, record in events:
        customer.apply(topic, record)
    return customer


def test_a_shopper_reads_in_human_units() -> None:
    customer = folded([
        click(T0, "view", price=20.0),
        click(T0 + 10, "add_to_cart"),
        click(T0 + 20, "add_to_cart"),
        order(T0 + 60, (2, 20.0), (1, 40.0), category="toys"),
        payment(T0 + 70),
    ])
    units = CustomerFeatures.to_units(customer.vector(T0 + 70 + 3 * DAY))
    assert units["days_since_seen"] == pytest.approx(3.0)
    assert units["avg_order_value"] == pytest.approx(80.0)
    assert units["units_per_order"] == pytest.approx(3.0)
    assert units["cart_abandonment"] == 0.0
    assert customer.lifetime["orders"] == 1 and customer.lifetime["spend"] == 80.0
    assert customer.lifetime["payments"] == 1 and customer.lifetime["sessions"] == 1
    assert customer.profile(T0)["top_categories"] == {"toys": 80.0}


def test_frequency_fades_by_half_each_half_life() -> None:
    customer = folded([order(T0, (1, 10.0)), order(T0 + DAY, (1, 10.0))], half_life_days=10)
    rate = lambda now: math.expm1(customer.vector(now)["orders_30d"])  # noqa: E731
    assert rate(T0 + 11 * DAY) == pytest.approx(rate(T0 + DAY) / 2)
    assert rate(T0 + 21 * DAY) == pytest.approx(rate(T0 + DAY) / 4)


def test_a_steady_customer_reads_their_true_rate() -> None:
    # One order every 3 days for a year: 10 orders per 30 days.
    customer = folded([order(T0 + i * 3 * DAY, (1, 10.0)) for i in range(122)])
    assert math.expm1(customer.vector(T0 + 121 * 3 * DAY)["orders_30d"]) == pytest.approx(10.0, rel=0.05)


def test_a_late_event_counts_at_its_own_time() -> None:
    fresh = folded([order(T0 + 30 * DAY, (1, 10.0)), order(T0 + 30 * DAY, (1, 10.0))])
    late = folded([order(T0 + 30 * DAY, (1, 10.0)), order(T0, (1, 10.0))])
    assert late.decayed["orders"] == pytest.approx(1.5)  # the 30-day-old order weighs one half
    assert fresh.decayed["orders"] == pytest.approx(2.0)
    assert late.first_seen == T0 and late.last_seen == T0 + 30 * DAY


def test_cart_abandonment_is_the_share_of_carted_items_not_bought() -> None:
    customer = folded([click(T0 + i, "add_to_cart") for i in range(4)] + [order(T0 + 10, (1, 5.0))])
    assert customer.vector(T0 + 10)["cart_abandonment"] == pytest.approx(0.75)


def test_sessions_are_counted_once_and_memory_stays_bounded() -> None:
    events = [click(T0 + i * 60, session=f"s{i // 5}") for i in range(100)]  # 20 sessions of 5 clicks
    events += [order(T0 + i, (1, 1.0), category=f"cat{i}") for i in range(12)]
    customer = folded(events)
    assert customer.lifetime["sessions"] == 20
    assert len(customer.sessions) == customer.max_sessions
    assert len(customer.categories) == customer.max_categories
    assert sum(customer.categories.values()) == pytest.approx(12.0)  # Space-Saving keeps the total


def test_a_late_click_moves_its_session_start_without_double_counting() -> None:
    in_order = folded([click(T0, session="a"), click(T0 + 10 * DAY, session="a"), click(T0 + 20 * DAY, session="b")])
    shuffled = folded([click(T0 + 10 * DAY, session="a"), click(T0 + 20 * DAY, session="b"), click(T0, session="a")])
    assert shuffled.lifetime["sessions"] == 2
    assert shuffled.decayed["sessions"] == pytest.approx(in_order.decayed["sessions"])


def test_payments_count_and_declines_are_remembered() -> None:
    customer = folded([payment(T0), payment(T0 + 1, "declined"), payment(T0 + 2, "failed")])
    assert customer.lifetime["payments"] == 3 and customer.lifetime["declined_payments"] == 2
    assert customer.vector(T0 + 2 + 2 * DAY)["recency_weeks"] == pytest.approx(math.log1p(2 / 7))


def test_other_topics_are_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        CustomerFeatures().apply("labels", {"ts": T0, "payment_id": "p", "is_fraud": True})


def test_an_unseen_customer_reads_zeros() -> None:
    assert set(CustomerFeatures().vector(T0).values()) == {0.0}


HISTORY = [
    click(T0, "view", "s1", price=12.0),
    click(T0 + 30, "add_to_cart", "s1"),
    order(T0 + 90, (2, 12.0), category="toys"),
    payment(T0 + 95),
    click(T0 + 3 * DAY, "view", "s2", price=99.0),
    click(T0 + 3 * DAY + 40, "add_to_cart", "s2"),
    click(T0 + 3 * DAY + 50, "remove_from_cart", "s2"),
    click(T0 + 9 * DAY, "search", "s3"),
    order(T0 + 12 * DAY, (1, 5.0), (3, 2.5), category="books"),
    payment(T0 + 12 * DAY + 5, "declined"),
    click(T0 + 40 * DAY, "view", "s4", price=7.5),
]


@settings(max_examples=40, deadline=None)
@given(st.permutations(HISTORY))
def test_the_same_events_in_any_order_give_the_same_customer(events: list[tuple[str, dict[str, Any]]]) -> None:
    expected, shuffled = folded(HISTORY), folded(events)
    now = T0 + 45 * DAY
    assert shuffled.vector(now) == pytest.approx(expected.vector(now), rel=1e-9, abs=1e-12)
    assert shuffled.lifetime == pytest.approx(expected.lifetime, rel=1e-12)
    assert (shuffled.first_seen, shuffled.last_seen, shuffled.last_order_at) == (
        expected.first_seen, expected.last_seen, expected.last_order_at)
    assert shuffled.categories == expected.categories


def test_a_checkpoint_restores_the_same_customer_who_keeps_learning_identically() -> None:
    customer = folded(HISTORY[:6])
    state = json.loads(json.dumps(customer.state_dict()))
    restored = CustomerFeatures.from_state(state)
    assert restored.state_dict() == state
    for topic, record in HISTORY[6:]:
        customer.apply(topic, record)
        restored.apply(topic, record)
    assert json.loads(json.dumps(restored.state_dict())) == json.loads(json.dumps(customer.state_dict()))


def test_a_checkpoint_of_another_model_is_refused() -> None:
    state = folded(HISTORY).state_dict()
    state["version"] = 99
    with pytest.raises(StateVersionError):
        CustomerFeatures.from_state(state)
