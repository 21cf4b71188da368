"""The shop the serving tests look at, written in the serving contract's shapes."""

from __future__ import annotations

import redis

from streams.pipeline.keys import RedisKeys
from streams.serving.sample import (
    write_alert,
    write_anomaly_scope,
    write_bestsellers,
    write_customer,
    write_forecast,
    write_item_rules,
    write_metrics,
    write_payment_risk,
    write_propensity_model,
    write_segment,
    write_session,
)

CATEGORIES = ("toys", "books", "garden")


def write_shop(r: redis.Redis, keys: RedisKeys) -> None:
    """A small, complete shop: segments, customers, rules, best-sellers, risk, alerts, forecasts, metrics."""
    for segment_id, (name, size, summary) in enumerate([
        ("loyal big spenders", 120, "4.0 orders, 320 EUR spent"),
        ("occasional browsers", 340, "1.2 orders, 40 EUR spent"),
        ("new customers", 80, "1.0 orders, 25 EUR spent"),
    ]):
        write_segment(r, keys, segment_id, name, size, summary)
    write_customer(r, keys, "c1", segment_id=0)
    write_customer(r, keys, "c2", segment_id=1, orders=1, spend=20.0)
    write_customer(r, keys, "c-new", segment_id=None, orders=1, spend=9.0)
    write_item_rules(r, keys, "tea", {"milk": 0.5, "scones": 0.4}, lift=3.0)
    write_item_rules(r, keys, "scones", {"jam": 0.6, "milk": 0.2}, lift=2.5)
    write_item_rules(r, keys, "bread", {"butter": 0.3}, lift=1.2)
    write_bestsellers(r, keys, {"bread": 99.0, "tea": 80.0, "apples": 50.0, "soap": 20.0})
    write_bestsellers(r, keys, {"jam": 30.0, "honey": 12.0}, segment_id=0)
    write_payment_risk(r, keys, "pay-1", "c1", 0.93, "review", ["card not seen before", "rule big-abroad: large payment"],
                       rule_hits=["big-abroad"])
    write_alert(r, keys, "risk", "pay-1", 0.93, ["card not seen before"], customer_id="c1", decision="review")
    write_alert(r, keys, "surge", "category:toys", 3.2, ["sold 40 against a forecast of 12.5"], actual=40.0)
    write_alert(r, keys, "trend", "jam+scones", 2.5, ["in 4.00% of baskets, against 1.00% before"])
    for level, category in enumerate(CATEGORIES, start=1):
        write_forecast(r, keys, "category", category, level=5.0 * level)
    write_forecast(r, keys, "total", "all", level=40.0)
    write_anomaly_scope(r, keys, "all:all", 7.2, {"views": 130, "carts": 21, "orders": 0, "payments": 0, "declined": 0,
                                                  "new_devices": 0, "dead": 1, "events": 152},
                        {"views": 120.0, "add_to_cart_rate": 0.16, "conversion_rate": 0.21, "decline_rate": 0.024})
    write_anomaly_scope(r, keys, "method:card", 1.1, {"payments": 3, "declined": 0, "new_devices": 0},
                        {"payments": 3.1, "decline_rate": 0.02})
    write_session(r, keys, "s-1", "c1", 0.62)
    write_propensity_model(r, keys, 5210, 1240, 0.912, [
        {"rule": "last_action = add_to_cart and cart_items ≥ 3", "converts": 0.97, "sessions": 640},
        {"rule": "last_action = view", "converts": 0.01, "sessions": 2284}])
    write_metrics(r, keys)
