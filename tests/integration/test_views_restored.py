"""A Redis that lost every view (flushed, or restarted without persistence) after the stream ended gets each
view family back from the worker's state, with no new event: customers and their segments, payment risk, basket
rules, forecasts, stock, traffic scopes, open sessions and the propensity model (``KairosApp._restore_views``)."""

from __future__ import annotations

from typing import Any

from streams.tools.determinism import arrange, settled_views
from streams.tools.simulation import ShopSimulator, SimulatorConfig
from tests.integration.harness import Pipeline, isolated_settings

#: Fields written with the wall-clock time of their writing (not part of what a view says).
WALL_CLOCK_FIELDS = ("updated_at", "published_at")


def served(pipeline: Pipeline) -> dict[str, Any]:
    """Every key of the deployment but its metrics, meta markers and alerts stream, as comparable values."""
    r, prefix = pipeline.redis, pipeline.settings.prefix
    found: dict[str, Any] = {}
    for key in r.scan_iter(f"{prefix}:*", count=1000):
        name = key.split(":", 1)[1]
        if name.startswith(("metrics:", "meta:", "alerts")):
            continue
        kind = r.type(key)
        if kind == "hash":
            found[name] = {k: v for k, v in r.hgetall(key).items() if k not in WALL_CLOCK_FIELDS}
        elif kind == "string":
            found[name] = r.get(key)
        elif kind == "zset":
            found[name] = r.zrange(key, 0, -1, withscores=True)
        else:
            found[name] = kind
    return found


def family(name: str) -> str:
    parts = name.split(":")
    return parts[0] if parts[0] in ("customer", "session") else ":".join(parts[:2])


def test_a_redis_that_lost_every_view_gets_each_family_back_from_state(stack, tmp_path) -> None:
    simulator = ShopSimulator(SimulatorConfig(seed=5, customers=150, days=3, inventory_skus=4, incidents=2))
    events = [(topic, value) for topic, _, value in arrange(
        [(event.topic, event.key, event.value) for event in simulator.events()], "interleaved")]
    pipeline = Pipeline(stack, isolated_settings(stack, sales_idle_path_seconds=5.0, anomaly_idle_path_seconds=5.0,
                                                 sessions_idle_path_seconds=5.0, segment_sync_seconds=2.0,
                                                 basket_publish_seconds=2.0, propensity_warmup_sessions=40),
                        tmp_path)
    try:
        pipeline.start_worker()
        pipeline.send_events(events)
        pipeline.wait_for_outcomes(len(events), timeout=180)
        settled_views(pipeline.settings)
        before = served(pipeline)
        families = {family(name) for name in before}
        assert families >= {"customer", "segment:customer", "risk:payment", "reco:rule", "forecast:sku", "stock:sku",
                            "stock:risk", "anomaly:all", "anomaly:scopes", "session", "propensity:model"}, families
        open_sessions = {name for name, view in before.items() if family(name) == "session" and view["status"] == "open"}
        assert open_sessions, "the last sessions are still open (no event time passed their timeout)"
        # What comes back: all but the ended sessions' views and the customers' pointers to them.
        ended = {name for name in before if family(name) == "session"} - open_sessions
        expected = {name: view for name, view in before.items()
                    if name not in ended and not (family(name) == "propensity:customer"
                                                  and f"session:{view}" in ended)}

        # Every key at once, markers included (the worker may start republishing within a tick of this).
        deleted = pipeline.redis.delete(*pipeline.redis.scan_iter(f"{pipeline.settings.prefix}:*", count=1000))
        assert deleted >= len(before)

        def back() -> bool:
            now = served(pipeline)
            return all(now.get(name) == view for name, view in expected.items())

        pipeline.wait_until(back, 30, "every view family back from state")
        pipeline.wait_until(lambda: "republished the event-time views" in pipeline.workers[0].log(), 10, "the log line")
    finally:
        pipeline.close()
