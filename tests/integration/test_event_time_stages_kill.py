"""A worker killed mid-stream: the stages that judge event time (stock, sessions, anomaly, sales) end as a run
without the kill, because each checkpoints its state with held acknowledgements and replays what came after.

The CI-sized form of what ``kairos chaos -s kills`` compares for these families: stock views, ended sessions'
final views, the traffic scopes' final views (counts, score and learned usual values), and every event-time alert
id (``restock``, ``abandon``, ``anomaly``, ``surge``/``slump``).
"""

from __future__ import annotations

from typing import Any

import redis

from streams.tools.determinism import TRAFFIC_COUNTS, arrange, settled_views
from streams.tools.faults import read_alert_ids, split_alert_ids
from streams.tools.simulation import ShopSimulator, SimulatorConfig
from tests.integration.harness import Pipeline, isolated_settings

#: Short idle and snapshot times: the last windows, minutes and sessions close within seconds of the stream's end,
#: and a kill finds checkpoints behind it (the restarted worker restores them and replays what came after).
STAGE_SETTINGS = dict(sales_idle_path_seconds=8.0, anomaly_idle_path_seconds=8.0, sessions_idle_path_seconds=8.0,
                      snapshot_seconds=1.0, segment_sync_seconds=5.0, propensity_warmup_sessions=40,
                      abandon_cart_value=20.0)


def hashes(pipeline: Pipeline, pattern: str) -> dict[str, dict[str, str]]:
    """Every hash whose key matches ``pattern``, by key without the run's prefix."""
    client = redis.Redis.from_url(pipeline.settings.redis_dsn(), decode_responses=True, socket_timeout=10)
    try:
        return {key.split(":", 1)[1]: client.hgetall(key) for key in client.scan_iter(pattern, count=1000)}
    finally:
        client.close()


def traffic_counts(pipeline: Pipeline) -> dict[str, str]:
    """The traffic monitor's counts: records counted and late, minutes closed and skipped."""
    counts = pipeline.redis.hgetall(pipeline.keys.metrics("anomaly"))
    return {name: counts.get(name) for name in TRAFFIC_COUNTS}


def ended_sessions(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """The final views of the sessions that ended (converted or timed out); open sessions are scored on the wall
    clock and are not compared."""
    return {key: {k: v for k, v in view.items() if k != "updated_at"}
            for key, view in hashes(pipeline, pipeline.keys.session("*")).items()
            if view.get("status") in ("converted", "ended")}


def test_a_worker_killed_mid_stream_ends_with_the_event_time_views_and_alerts_of_a_run_without_the_kill(
        stack, tmp_path) -> None:
    simulator = ShopSimulator(SimulatorConfig(seed=5, customers=150, days=3, inventory_skus=4,
                                              incidents=2))
    events = [(topic, value) for topic, _, value in arrange(
        [(event.topic, event.key, event.value) for event in simulator.events()], "interleaved")]
    runs = {}
    for kill in (False, True):
        (tmp_path / str(kill)).mkdir()
        pipeline = Pipeline(stack, isolated_settings(stack, **STAGE_SETTINGS), tmp_path / str(kill))
        try:
            pipeline.start_worker()
            if kill:
                pipeline.send_killing_the_worker_mid_stream(events, warmup=300, rate=1500.0)
            else:
                pipeline.send_events(events)
            pipeline.wait_for_outcomes(len(events), timeout=180)
            views = settled_views(pipeline.settings)
            runs[kill] = (views["stock"], ended_sessions(pipeline),
                          {**hashes(pipeline, pipeline.keys.anomaly("*", "*")), "monitor": traffic_counts(pipeline)},
                          split_alert_ids(read_alert_ids(pipeline.settings))["alert_ids"])
            assert pipeline.workers[-1].alive()
        finally:
            pipeline.close()

    (stock, sessions, traffic, alerts), (stock_killed, sessions_killed, traffic_killed, alerts_killed) = (
        runs[False], runs[True])
    # The comparison means something: stock counted, sessions ended, traffic scopes learned and alerts raised
    # (here 5 `abandon`, 1 `surge`) in the run without a kill.
    assert len(stock) == 4 and all(view["on_hand"] is not None for view in stock.values()), stock
    assert {"anomaly:all:all", "anomaly:method:card"} <= traffic.keys(), sorted(traffic)
    assert float(traffic["anomaly:all:all"]["usual_views"]) > 0, traffic["anomaly:all:all"]
    # The traffic scopes' views are compared only when neither run counted a record late. A stream replayed at
    # ~1 hour of event time per second of wall clock makes the anomaly stage's minutes (30 s of allowed lateness)
    # the most sensitive to a path declared idle: this test's 8 s of idleness was exceeded once on a loaded CI
    # machine (a suite of 12 minutes) by a path still recovering after the restart, and the killed run's views
    # differed. The four-arrival test and `kairos chaos` (30 s, the default) compare them always.
    if traffic["monitor"]["late"] == traffic_killed["monitor"]["late"] == "0":
        assert traffic_killed == traffic, {k: (traffic.get(k), traffic_killed.get(k))
                                           for k in traffic.keys() | traffic_killed.keys()
                                           if traffic.get(k) != traffic_killed.get(k)}
    assert len(sessions) > 200, len(sessions)
    assert {alert.split(":", 1)[0] for alert in alerts} >= {"abandon"}, alerts
    assert stock_killed == stock
    assert sessions_killed.keys() == sessions.keys()
    assert [s for s in sessions if sessions_killed[s] != sessions[s]] == []
    assert alerts_killed == alerts, (sorted(alerts - alerts_killed), sorted(alerts_killed - alerts))
