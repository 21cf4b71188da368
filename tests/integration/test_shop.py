"""A simulated fortnight through the real pipeline: segments, bundles, forecasts, risk — with 1 and 2 workers.

The simulator plants customer segments, bundles and fraud (with late labels);
the pipeline must find them in its Redis views whatever the number of workers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from streams.tools.simulation import ShopSimulator, SimulatorConfig
from tests.integration.harness import Pipeline, isolated_settings

pytestmark = pytest.mark.integration

CONFIG = SimulatorConfig(seed=3, customers=400, days=14.0, fraud_rate=0.05, surges=1)


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def fortnight(request, stack, tmp_path_factory) -> Iterator[tuple[Pipeline, dict]]:
    """The simulated shop streamed through ``n`` workers until every event is counted."""
    settings = isolated_settings(stack, segment_k=5, segment_sync_seconds=1.0, risk_sync_seconds=1.0, sales_idle_path_seconds=30.0,
                                 basket_publish_seconds=1.0, risk_min_labels=100,
                                 risk_min_fraud_labels=10)
    pipeline = Pipeline(stack, settings, tmp_path_factory.mktemp("fortnight"))
    simulator = ShopSimulator(CONFIG)
    events = [(e.topic, e.value) for e in simulator.events()]
    try:
        for _ in range(request.param):
            pipeline.start_worker()
        # The first week, then (once the late labels have taught the risk model) the second.
        half = len(events) // 2
        pipeline.send_events(events[:half])
        pipeline.wait_until(lambda: pipeline.redis.hget(pipeline.keys.metrics("risk"), "mode") == "model", 120,
                            "the risk model to take over from the cold-start rules")
        pipeline.send_events(events[half:])
        pipeline.wait_for_outcomes(len(events), timeout=240)
        # The sales stage closes a window once every path has passed it: wait for the last hours to close.
        last = max(value["ts"] for topic, value in events if topic == "orders")
        last_ts = datetime.fromisoformat(last).timestamp() if isinstance(last, str) else last
        pipeline.wait_until(lambda: float(pipeline.redis.hget(pipeline.keys.metrics("forecast"), "watermark") or 0)
                            >= last_ts - 2 * 3600, 60, "the sales stage to reach the end of the stream")
        # The sessions stage learns a session once its watermark passes the session's timeout: wait for it too.
        pipeline.wait_until(lambda: sessions_watermark(pipeline) >= last_ts - 2 * 3600, 60,
                            "the sessions stage to reach the end of the stream")
        rounds = int(pipeline.redis.hget(pipeline.keys.metrics("segments"), "sync_rounds") or 0)
        pipeline.wait_until(lambda: int(pipeline.redis.hget(pipeline.keys.metrics("segments"), "sync_rounds")) >= rounds + 2,
                            30, "two segment sync rounds after the stream")
        yield pipeline, simulator.ground_truth()
    finally:
        pipeline.close()


def sessions_watermark(pipeline: Pipeline) -> float:
    """The sessions stage's watermark (epoch seconds; 0 before it has one)."""
    mark = pipeline.redis.hget(pipeline.keys.metrics("sessions"), "watermark")
    return datetime.fromisoformat(mark.replace("Z", "+00:00")).timestamp() if mark and mark != "-" else 0.0


def test_live_segments_recover_the_planted_ones(fortnight) -> None:
    pipeline, truth = fortnight
    customers = [c for c in truth["segments"] if pipeline.redis.exists(pipeline.keys.customer(c))]
    live = pipeline.redis.mget([pipeline.keys.segment_of(c) for c in customers])
    assert all(segment is not None for segment in live), "every active customer has a segment"
    ari = adjusted_rand_score([truth["segments"][c] for c in customers], [int(s) for s in live])
    assert ari >= 0.8, f"adjusted Rand index {ari:.3f}"
    sizes = pipeline.redis.hgetall(pipeline.keys.segment_sizes())
    views = sum(1 for _ in pipeline.redis.scan_iter(pipeline.keys.pattern("customer"), count=1000))
    assert len(sizes) == 5 and sum(int(n) for n in sizes.values()) == views  # fraudsters' accounts included
    assert set(sizes) == {s for s in live}, "the published segments are the profiled ones"
    for segment_id, size in sizes.items():
        profile = pipeline.redis.hgetall(pipeline.keys.segment_profile(segment_id))
        assert profile["name"] and profile["summary"] and profile["size"] == size


def test_planted_bundles_are_the_top_recommendations_of_their_items(fortnight) -> None:
    pipeline, truth = fortnight

    def tops() -> dict[str, set[str]]:
        return {b[0]: set(pipeline.redis.zrevrange(pipeline.keys.reco_item(b[0]), 0, len(b) - 2))
                for b in truth["bundles"]}

    # Rules are republished every second from every basket partition: wait for a round after the stream.
    pipeline.wait_until(lambda: all(tops()[b[0]] == set(b[1:]) for b in truth["bundles"]), 20,
                        f"planted bundles on top of their items' recommendations: {tops()}")
    for bundle in truth["bundles"]:
        head, partners = bundle[0], set(bundle[1:])
        top = pipeline.redis.zrevrange(pipeline.keys.reco_item(head), 0, len(partners) - 1)
        assert set(top) == partners, (head, top, partners)
        rule = pipeline.redis.hgetall(pipeline.keys.reco_rule([head], top[0]))
        assert float(rule["confidence"]) > 0.5 and float(rule["lift"]) > 1.0
    # Every order reaches every basket partition: the totals count each basket once, whoever owns what.
    orders = int(pipeline.redis.hget(pipeline.keys.metrics("ingest"), "orders.processed"))
    pipeline.wait_until(lambda: float(pipeline.redis.hget(pipeline.keys.metrics("baskets"), "baskets") or 0) == orders,
                        20, "kairos:metrics:baskets to count every order once")
    baskets = pipeline.redis.hgetall(pipeline.keys.metrics("baskets"))
    assert float(baskets["partitions"]) == pipeline.settings.partitions and float(baskets["rules"]) > 0


def test_forecasts_are_served_with_intervals_and_errors(fortnight) -> None:
    pipeline, _ = fortnight
    view = pipeline.redis.hgetall(pipeline.keys.forecast("total", "all"))
    assert float(view["lower_units"]) <= float(view["forecast_units"]) <= float(view["upper_units"])
    assert len(json.loads(view["horizon"])) == pipeline.settings.sales_horizon_windows
    assert float(view.get("mae_ratio", "nan")) < 1.0, "the forecaster beats seasonal-naive: " + json.dumps(sorted(view))
    # Product views reach the sales stage through the customers stage: counted per window and forecast.
    actuals = json.loads(view["actuals"])
    assert sum(w["views"] for w in actuals) > sum(w["lines"] for w in actuals) > 0, actuals
    assert float(view["forecast_views"]) > 0
    # Views and orders reach the sales stage along many paths, some hours of event time behind others in a
    # replay this fast: windows wait for the slowest, so nothing is dropped as late (with the fastest path's event
    # time as the watermark, 20,254 views and 1,171 orders were).
    metrics = pipeline.redis.hgetall(pipeline.keys.metrics("forecast"))
    assert int(metrics["late_views"]) <= 10 and int(metrics["late_events"]) <= 10, metrics  # measured: 0 and 0


def test_the_planted_surge_is_alerted_once_within_two_windows_of_its_start(fortnight) -> None:
    pipeline, truth = fortnight
    (surge,) = truth["surges"]
    series = f"{surge['scope']}:{surge['key']}"
    start, end = (datetime.fromisoformat(surge[k]).timestamp() for k in ("start", "end"))
    first_window = start - start % pipeline.settings.sales_window_seconds
    entries = [fields for _, fields in pipeline.redis.xrange(pipeline.keys.alerts())]
    during = [a for a in entries if a["kind"] == "surge" and a["subject"] == series
              and first_window <= float(a["window_start"]) < end]
    metrics = pipeline.redis.hgetall(pipeline.keys.metrics("forecast"))
    assert len(during) == 1, (during, metrics)
    (alert,) = during
    assert float(alert["window_start"]) <= first_window + pipeline.settings.sales_window_seconds
    assert alert["led_by"] in ("orders", "views") and alert["alert_id"] == f"surge:{series}:{float(alert['window_start']):.0f}"
    assert float(alert["actual"]) > float(alert["upper"]) or alert["led_by"] == "views"


def test_payments_are_scored_explained_and_learned_from_late_labels(fortnight) -> None:
    pipeline, truth = fortnight
    fraud = truth["fraud_payments"]
    keys = sorted(pipeline.redis.scan_iter(pipeline.keys.pattern("risk", "payment"), count=5000))
    views = [pipeline.redis.hgetall(key) for key in keys]
    assert len(views) > 1000
    scored = [(v["payment_id"] in fraud, float(v["score"])) for v in views if v["mode"] == "model"]
    assert len(scored) > 500, "the model took over from the cold-start rules"
    assert roc_auc_score([y for y, _ in scored], [s for _, s in scored]) >= 0.9
    alert = next(v for v in views if v["decision"] != "allow")
    assert json.loads(alert["reasons"]), "every alert says why"
    metrics = pipeline.redis.hgetall(pipeline.keys.metrics("risk"))
    assert int(metrics["labels_labelled"]) > 100 and int(metrics["labels_repeated"]) == 0


def test_live_sessions_are_scored_and_the_model_learns_who_converts(fortnight) -> None:
    pipeline, _ = fortnight
    metrics = pipeline.redis.hgetall(pipeline.keys.metrics("sessions"))
    model = pipeline.redis.hgetall(pipeline.keys.propensity_model())
    assert int(metrics["late_records"]) == 0 and int(metrics["sessions_dropped"]) == 0, metrics
    assert int(model["learned"]) >= 1000 and int(model["converted"]) > 0, model
    assert float(model["roc_auc"]) > 0.8, model  # each session at its last click, scored just before it is learned
    rules = json.loads(model["rules"])
    assert rules and all(0 <= rule["converts"] <= 1 and rule["sessions"] > 0 for rule in rules), rules
    # A customer's latest session and its own view.
    key = next(pipeline.redis.scan_iter(match=pipeline.keys.pattern("propensity", "customer"), count=1000))
    session = pipeline.redis.hgetall(pipeline.keys.session(pipeline.redis.get(key)))
    assert session["customer_id"] == key.rsplit(":", 1)[1] and 0 <= float(session["propensity"]) <= 1, session
