"""Traffic anomalies through the real pipeline: a checkout break and a broken producer are alerted."""

from __future__ import annotations

import json
import random

from tests.integration.harness import Pipeline, iso

MINUTE = 60.0
START = 1_795_305_600.0  # 2026-11-22T00:00:00Z
MINUTES, BREAK, BROKEN = 45, 35, 25


def checkout_breaking_shop() -> tuple[list[tuple[str, dict | bytes]], int]:
    """Views, add-to-carts, orders and payments of a steady shop; 15 malformed clicks in minute 25; no order or
    payment from minute 35 on. Returns the events (wire dicts, or bytes for the broken ones) and how many the
    anomaly stage counts."""
    rng = random.Random(3)
    events: list[tuple[str, dict | bytes]] = []
    counted = 0
    number = 0
    for minute in range(MINUTES):
        for second in sorted(rng.uniform(0, 60) for _ in range(30)):
            number += 1
            customer = f"c{rng.randrange(40)}"
            click = {"event_id": f"e{number}", "ts": iso(START + minute * MINUTE + second), "customer_id": customer,
                     "session_id": f"s{customer}", "action": "add_to_cart" if rng.random() < 0.25 else "view",
                     "sku": "A", "category": "toys"}
            events.append(("clicks", click))
            counted += 1
            if minute == BROKEN and number % 2:
                events.append(("clicks", json.dumps({k: v for k, v in click.items() if k != "session_id"}).encode()))
                counted += 1
        if minute < BREAK:
            for second in sorted(rng.uniform(0, 60) for _ in range(5)):
                number += 1
                customer, ts = f"c{rng.randrange(40)}", iso(START + minute * MINUTE + second)
                events.append(("orders", {"event_id": f"e{number}", "order_id": f"o{number}", "ts": ts,
                                          "customer_id": customer, "currency": "EUR", "country": "DE",
                                          "lines": [{"sku": "A", "quantity": 1, "unit_price": 10.0}]}))
                events.append(("payments", {"event_id": f"p{number}", "payment_id": f"p{number}",
                                            "order_id": f"o{number}", "ts": ts, "customer_id": customer,
                                            "amount": 10.0, "currency": "EUR", "method": "card",
                                            "status": "captured", "device_id": f"d{customer}"}))
                counted += 2
    return events, counted


def test_a_checkout_break_and_a_broken_producer_raise_anomaly_alerts(make_pipeline) -> None:
    events, counted = checkout_breaking_shop()
    pipeline: Pipeline = make_pipeline(partitions=2, anomaly_warmup_minutes=20, anomaly_idle_path_seconds=2.0)
    pipeline.start_worker()
    for topic, value in events:
        key = value["customer_id"] if isinstance(value, dict) else "broken"
        pipeline.send(getattr(pipeline.settings.topics, topic), value, key)
    pipeline.producer.flush()

    def anomalies() -> list[dict[str, str]]:
        return [fields for _, fields in pipeline.redis.xrange(pipeline.keys.alerts()) if fields["kind"] == "anomaly"]

    pipeline.wait_until(lambda: len(anomalies()) >= 2, 90, "two anomaly alerts")
    metrics = pipeline.keys.metrics("anomaly")
    # Every minute closes once the paths fall idle, each event counted once.
    pipeline.wait_until(lambda: pipeline.redis.hget(metrics, "minutes_closed") == str(MINUTES - 1), 30,
                        "every minute but the last closed")
    assert [fields["subject"] for fields in anomalies()] == ["all:all", "all:all"], anomalies()
    reasons = [json.loads(fields["reasons"])[0] for fields in anomalies()]
    starts = sorted(fields["ts"] for fields in anomalies())
    assert starts[0] == iso(START + BROKEN * MINUTE) and "dead_letter_rate" in " ".join(reasons)
    assert iso(START + BREAK * MINUTE) <= starts[1] <= iso(START + (BREAK + 4) * MINUTE)
    assert any("conversion_rate" in reason for reason in reasons)
    assert pipeline.redis.hget(metrics, "records") == str(counted)
    assert pipeline.redis.hget(metrics, "late") == "0"
    view = pipeline.redis.hgetall(pipeline.keys.anomaly("all", "all"))
    assert view["minute"] == iso(START + (MINUTES - 2) * MINUTE) and view["count_orders"] == "0"
    assert pipeline.redis.zscore(pipeline.keys.anomaly_scopes(), "all:all") is not None
