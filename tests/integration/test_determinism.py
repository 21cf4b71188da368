"""The same events, sent four ways, give the same views (event-time alignment, windows judged once closed).

The CI-sized form of ``kairos bench --suite determinism`` (see :mod:`streams.tools.determinism`).
"""

from __future__ import annotations

import itertools
import threading

from streams.tools.determinism import ARRIVALS, arrange, compare, read_features, settled_views, summarise
from streams.tools.simulation import ShopSimulator, SimulatorConfig
from tests.integration.harness import Pipeline, isolated_settings


def test_the_same_shop_sent_four_ways_gives_the_same_views(stack, tmp_path) -> None:
    # 12,165 events, a surge on day 5, and the stock of the 5 best sellers counted every 2 hours (300 counts).
    simulator = ShopSimulator(SimulatorConfig(seed=3, customers=200, days=5, inventory_skus=5))
    events = [(event.topic, event.key, event.value) for event in simulator.events()]
    fraud = set(simulator.ground_truth()["fraud_payments"])
    pipelines = {}
    for arrival in ARRIVALS:
        (tmp_path / arrival).mkdir()
        pipelines[arrival] = Pipeline(stack, isolated_settings(
            stack, sales_idle_path_seconds=10.0, segment_sync_seconds=5.0), tmp_path / arrival)

    def ordered(arrival: str) -> list[tuple[str, dict]]:
        return [(topic, value) for topic, _, value in arrange(events, arrival, held_topic="orders", held_days=1.0)]

    views = {}

    def settle(arrival: str) -> None:
        pipelines[arrival].wait_for_outcomes(len(events), timeout=120)
        views[arrival] = settled_views(pipelines[arrival].settings)
        views[arrival]["features"] = read_features(pipelines[arrival].settings)

    try:
        # The backfill: each topic's events in Kafka, one topic after the other, before its worker starts.
        pipelines["topic-by-topic"].send_events(ordered("topic-by-topic"))
        for pipeline in pipelines.values():
            pipeline.start_worker()
        for pipeline in pipelines.values():
            pipeline.wait_until(lambda p=pipeline: all("Worker ready" in w.log() for w in p.workers), 90, "ready")
        # The others to running workers: paced, then interleaved and one topic a day behind at full speed.
        for arrival, rate in (("paced", 3000.0), ("interleaved", 0.0), ("held-back", 0.0)):
            pipelines[arrival].send_events(ordered(arrival), rate)
        settlers = [threading.Thread(target=settle, args=(arrival,)) for arrival in ARRIVALS]
        for settler in settlers:
            settler.start()
        for settler in settlers:
            settler.join()
    finally:
        for pipeline in pipelines.values():
            pipeline.close()

    summaries = [summarise(arrival, views[arrival], events, len(events), 0.0, fraud) for arrival in ARRIVALS]
    for summary in summaries:
        assert summary.labels_learned == summary.labels_sent > 0, (summary.row(), summary.views["risk"])
        assert summary.labels_discarded == 0, summary.row()
    reference = summaries[0]
    assert reference.views["customers"] and reference.views["forecasts"] and reference.auc is not None
    assert len(reference.views["features"]) == len(reference.views["customers"])
    assert reference.views["sales_alerts"], "the planted surge is alerted"
    stock = reference.views["stock"]
    assert len(stock) == 5 and all(view["on_hand"] is not None for view in stock.values()), stock
    assert reference.views["traffic"].keys() >= {"all:all", "method:card"}, sorted(reference.views["traffic"])
    assert reference.views["traffic_counts"]["late"] == "0", reference.views["traffic_counts"]
    for a, b in itertools.combinations(summaries, 2):
        found = compare(a, b)
        pair = f"{a.arrival} / {b.arrival}: {found}"
        assert found["customers_differing"] == 0, pair
        assert found["features_differing"] == 0 and found["features_worst_relative_gap"] < 1e-9, pair
        assert found["ingest_equal"], pair
        assert found["sales_alerts_symmetric_difference"] == 0, pair
        assert found["stock_differing"] == 0 and found["restock_alerts_symmetric_difference"] == 0, pair
        assert found["traffic_scopes_differing"] == 0, pair
        assert found["traffic_counts"][0] == found["traffic_counts"][1], pair
        assert found["anomaly_alerts_symmetric_difference"] == 0, pair
        assert found["forecast_worst_relative_gap"] <= 0.01, pair
        assert found["auc_gap"] <= 0.01, pair
        # Not the bar (99 %, met at full size, see BENCHMARKS.md): a guard against a collapse. Segment sync
        # rounds run on the wall clock and a boundary customer sticks to the segment it had (stickiness), so which
        # side it ends on depends on the path; with four workers on two loaded cores this 197-customer shop gave
        # 0.91-0.995 (3 of 4 runs under 0.95 at load 6-10), and 0.898 once (load 5). A collapse (segments
        # relabelled or reseeded differently per arrival) agrees on well under half.
        assert found["segment_agreement"] >= 0.85, pair
