"""A shop whose daily sales shape moves: the forecasters' drift reaches the alerts once per series."""

from __future__ import annotations

import json

import pytest

from streams.pipeline.stages.sales import SalesState
from tests.integration.harness import Pipeline, iso
from tests.models.test_forecasting import _shifted_sales

pytestmark = pytest.mark.integration

#: One-minute windows, a 24-window "day": three weeks of them in eight hours of event time.
WINDOW = 60.0
#: A Monday 00:00 UTC that is also a whole number of 7 "days" of 24 windows, so the weekdays line up.
START = 178_106 * 7 * 24 * WINDOW


def orders() -> list[tuple[float, dict]]:
    """Three weeks of seasonal sales of one SKU whose daily shape moves six "hours" later on day 14:
    ``(event time, wire order)`` pairs, orders of up to five units."""
    events = []
    for k, units in enumerate(_shifted_sales(3, 21, 20.0, change_day=14)):
        for j, first in enumerate(range(0, int(units), 5)):
            ts = START + k * WINDOW + j
            events.append((ts, {"event_id": f"o-{k}-{j}", "order_id": f"o-{k}-{j}", "ts": iso(ts),
                                "customer_id": f"c-{(k + j) % 40}", "currency": "EUR",
                                "lines": [{"sku": "A", "quantity": min(5, int(units) - first), "unit_price": 1.0}]}))
    return events


def test_a_moved_daily_shape_raises_one_drift_alert_per_series_as_the_model_does(make_pipeline) -> None:
    pipeline: Pipeline = make_pipeline(sales_window_seconds=WINDOW, sales_season_windows=24,
                                       sales_allowed_lateness_seconds=0.0)
    sent = orders()
    # What the model alone reports on the same orders.
    model = SalesState.new(pipeline.settings).monitor
    for ts, order in sent:
        model.add_order({"ts": ts, "lines": order["lines"]})
    expected = model.advance(START + 21 * 24 * WINDOW).drifts
    assert sorted(d["series"] for d in expected) == ["category:uncategorized", "sku:A", "total:all"], expected

    pipeline.start_worker()
    pipeline.send_events(("orders", order) for _, order in sent)

    def drift_alerts() -> list[dict]:
        return [fields for _, fields in pipeline.redis.xrange(pipeline.keys.alerts()) if fields["kind"] == "drift"]

    pipeline.wait_until(lambda: len(drift_alerts()) >= len(expected), timeout=60.0, what="the drift alerts")
    pipeline.wait_until(lambda: float(pipeline.redis.hget(pipeline.keys.metrics("forecast"), "watermark") or 0)
                        >= START + 21 * 24 * WINDOW - WINDOW, timeout=30.0, what="the last window to close")
    alerts = drift_alerts()
    assert len(alerts) == len(expected)  # one per series, though units and revenue both signalled
    by_series = {a["series"]: a for a in alerts}
    for drift in expected:
        alert = by_series[drift["series"]]
        assert alert["alert_id"] == f"drift:forecast:{drift['series']}:{drift['window_start']:.0f}"
        assert alert["subject"] == f"forecast:{drift['series']}" and alert["model"] == "SalesForecaster"
        assert alert["metric"] == "scaled_abs_error" and alert["measure"] == drift["measure"]
        assert json.loads(alert["before"]) == pytest.approx(drift["before"])
        assert json.loads(alert["after"]) == pytest.approx(drift["after"]) and drift["after"] > drift["before"]
        assert json.loads(alert["window_start"]) >= START + 14 * 24 * WINDOW
