"""A customer's payment history turns each payment into risk features, in event time."""

from __future__ import annotations

import json

from models.risk import FEATURE_NAMES, PaymentHistory
from models.risk.features import ALERT_LOG, KNOWN_INSTRUMENTS, RECENT_PAYMENTS, feature_reason

DAY = 86400.0


def payment(n: int, ts: float, amount: float = 20.0, **fields: object) -> dict:
    record = {"payment_id": f"p{n}", "order_id": f"o{n}", "customer_id": "c1", "ts": ts,
              "amount": amount, "currency": "EUR", "method": "card",
              "card_fingerprint": "card-1", "device_id": "phone", "ip_country": "DE", "billing_country": "DE"}
    record.update(fields)
    return record


def regular_customer(payments: int = 10) -> PaymentHistory:
    history = PaymentHistory()
    history.update({"event_id": "k0", "ts": 0.0, "customer_id": "c1", "session_id": "s0", "action": "view"})
    for n in range(payments):
        history.update(payment(n, ts=DAY * (n + 1), amount=20.0 + n % 3))
    return history


def test_a_payment_never_sees_itself() -> None:
    history = regular_customer()
    late_night = payment(99, ts=DAY * 20, amount=500.0)
    before = history.features(late_night)
    history.update(late_night)
    assert before["velocity_1m"] == before["velocity_1h"] == 0.0
    assert history.features(payment(100, ts=DAY * 20 + 30))["velocity_1m"] == 1.0


def test_takeover_looks_different_from_the_customers_habits() -> None:
    history = regular_customer()
    usual = history.features(payment(50, ts=DAY * 12, amount=21.0))
    takeover = history.features(payment(51, ts=DAY * 12, amount=400.0, card_fingerprint="stolen",
                                        device_id="bot", ip_country="NG"))
    assert set(FEATURE_NAMES) <= usual.keys()
    assert abs(usual["amount_z"]) < 1 and takeover["amount_z"] > 5
    signals = ("new_card", "new_device", "new_ip_country", "country_mismatch")
    assert [usual[name] for name in signals] == [0, 0, 0, 0]
    assert [takeover[name] for name in signals] == [1, 1, 1, 1]
    assert takeover["account_age_days"] == 12.0  # first seen at the click on day 0
    assert feature_reason("amount_z", takeover).startswith("amount ")


def test_a_first_payment_is_not_a_new_card() -> None:
    features = PaymentHistory().features(payment(0, ts=DAY))
    assert features["first_payment"] == 1.0 and features["new_card"] == 0.0 and features["amount_z"] == 0.0


def test_card_testing_burst_shows_velocity_cards_and_failures() -> None:
    history = PaymentHistory()
    for n in range(6):
        history.update(payment(n, ts=1000.0 + 10 * n, amount=2.0, card_fingerprint=f"card-{n % 3}",
                               status="declined"))
    burst = history.features(payment(9, ts=1055.0, amount=2.0, card_fingerprint="card-0"))
    assert burst["velocity_1m"] == 6 and burst["velocity_1h"] == 6
    assert burst["card_velocity_1h"] == 2 and burst["device_velocity_1m"] == 6
    assert burst["cards_1h"] == 3 and burst["failed_1h"] == 6
    later = history.features(payment(10, ts=1000.0 + 2 * 3600, amount=2.0))
    assert later["velocity_1h"] == 0 and later["failed_1h"] == 0


def test_a_late_payment_counts_only_what_happened_before_it() -> None:
    history = PaymentHistory()
    for n, ts in enumerate([1000.0, 1100.0, 1200.0]):
        history.update(payment(n, ts=ts))
    late = history.features(payment(7, ts=1150.0))
    assert late["velocity_1h"] == 2.0 and late["velocity_1m"] == 1.0


def test_a_redelivered_payment_is_not_counted_twice() -> None:
    history = PaymentHistory()
    history.update(payment(1, ts=1000.0))
    history.update(payment(1, ts=1000.0))
    assert history.payments_seen == 1
    assert history.features(payment(2, ts=1010.0))["velocity_1m"] == 1.0


def test_memory_stays_bounded() -> None:
    history = PaymentHistory()
    for n in range(500):
        history.update(payment(n, ts=float(n), card_fingerprint=f"card-{n}", device_id=f"device-{n}"))
        history.update({"event_id": f"k{n}", "ts": float(n), "customer_id": "c1", "session_id": "s", "action": "view"})
        history.admit_alert(f"p{n}", float(n) * 3600, max_per_hour=10)
    assert len(history.recent) <= RECENT_PAYMENTS and len(history.clicks) <= RECENT_PAYMENTS
    assert len(history.cards) == len(history.devices) == KNOWN_INSTRUMENTS
    assert len(history.alerts) == ALERT_LOG and len(history.log_amounts) == 32


def test_alerts_are_deduplicated_and_rate_limited_per_customer() -> None:
    history = PaymentHistory()
    assert history.admit_alert("p1", 100.0, max_per_hour=2)
    assert not history.admit_alert("p1", 101.0, max_per_hour=2)  # same payment again
    assert history.admit_alert("p2", 200.0, max_per_hour=2)
    assert not history.admit_alert("p3", 300.0, max_per_hour=2)  # third within the hour
    assert history.admit_alert("p4", 100.0 + 3600.0, max_per_hour=2)


def test_history_survives_a_checkpoint() -> None:
    history = regular_customer()
    history.admit_alert("p3", DAY * 3)
    restored = PaymentHistory.from_state(json.loads(json.dumps(history.state_dict())))
    assert restored.state_dict() == json.loads(json.dumps(history.state_dict()))
    probe = payment(77, ts=DAY * 11, amount=90.0, card_fingerprint="other")
    assert restored.features(probe) == history.features(probe)
