"""The same events, sent four ways, give the same views (event-time alignment, windows judged once closed)."""

from __future__ import annotations

import itertools
import threading
import time

from streams.tools.determinism import ARRIVALS, arrange, compare, settled_views, summarise
from streams.tools.simulation import ShopSimulator, SimulatorConfig
from tests.integration.harness import Pipeline, isolated_settings


def test_the_same_shop_sent_four_ways_gives_the_same_views(stack, tmp_path) -> None:
    simulator = ShopSimulator(SimulatorConfig(seed=3, customers=200, days=5))
    events = [(event.topic, event.key, event.value) for event in simulator.events()]
    fraud = set(simulator.ground_truth()["fraud_payments"])
    pipelines = {}
    for arrival in ARRIVALS:
        (tmp_path / arrival).mkdir()
        pipelines[arrival] = Pipeline(stack, isolated_settings(stack, sales_idle_path_seconds=1.0, segment_sync_seconds=2.0), tmp_path / arrival)
    try:
        # The backfill: every topic's events in Kafka, one topic after the other, before the worker starts.
        backfill = pipelines["topic-by-topic"]
        backfill.send_events((topic, value) for topic, _, value in arrange(events, "topic-by-topic"))
        for pipeline in pipelines.values():
            pipeline.start_worker()
        for pipeline in pipelines.values():
            pipeline.wait_until(lambda p=pipeline: all("Worker ready" in w.log() for w in p.workers), 90, "ready")
        senders = [threading.Thread(target=pipelines[arrival].send_events, args=(
            [(topic, value) for topic, _, value in arrange(events, arrival, held_topic="orders", held_days=1.0)],
            3000.0 if arrival == "paced" else 0.0)) for arrival in ("interleaved", "paced", "held-back")]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        summaries = []
        for arrival, pipeline in pipelines.items():
            started = time.monotonic()
            pipeline.wait_for_outcomes(len(events), timeout=120)
            summaries.append(summarise(arrival, settled_views(pipeline.settings), events, len(events),
                                       time.monotonic() - started, fraud))
    finally:
        for pipeline in pipelines.values():
            pipeline.close()

    for summary in summaries:
        assert summary.labels_learned == summary.labels_sent > 0, summary.row()
        assert summary.labels_discarded == 0, summary.row()
    reference = summaries[0]
    assert reference.views["customers"] and reference.views["forecasts"] and reference.auc is not None
    for a, b in itertools.combinations(summaries, 2):
        found = compare(a, b)
        pair = f"{a.arrival} / {b.arrival}: {found}"
        assert found["customers_differing"] == 0, pair
        assert found["ingest_equal"], pair
        assert found["sales_alerts_symmetric_difference"] == 0, pair
        assert found["forecast_worst_relative_gap"] <= 0.01, pair
        assert found["auc_gap"] <= 0.01, pair
        assert found["segment_agreement"] >= 0.99, pair
