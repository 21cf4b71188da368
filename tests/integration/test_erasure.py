"""``kairos forget``: a customer erased leaves no key and no state entry, against a real broker and Redis: one
redis-server, and a local 3-master Redis Cluster (the same views, rules, alerts and lookups on both)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.tools.devstack import start_redis_cluster
from streams.tools.faults import read_features
from tests.integration.harness import (
    Pipeline, expected_views, isolated_settings, keys_mentioning, settings_env, shop_events,
)
from tests.serving.conftest import start_server

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis-server", "redis-cluster"])
def pipeline(request, stack, tmp_path) -> Iterator[Pipeline]:
    """A pipeline on the session's redis-server, or on a 3-master Redis Cluster of its own; a low alert
    threshold, so that the customer's payments also raised alerts to erase."""
    cluster = start_redis_cluster(tmp_path / "cluster") if request.param == "redis-cluster" else None
    where = {"redis_url": cluster.url, "redis_cluster": True} if cluster else {}
    made = Pipeline(stack, isolated_settings(stack, risk_threshold=0.001, sessions_idle_path_seconds=2.0, **where),
                    tmp_path)
    try:
        yield made
    finally:
        made.close()
        if cluster:
            cluster.stop()


def test_a_forgotten_customer_leaves_no_key_no_state_and_no_alert_and_the_others_keep_theirs(pipeline) -> None:
    events = shop_events(900, customers=30, seed=43)
    worker = pipeline.start_worker()
    pipeline.send_events(events)
    pipeline.wait_for_outcomes(len(events), timeout=120)
    expected = expected_views(events)
    pipeline.wait_for_customer_views(expected)
    payers = Counter(event["customer_id"] for kind, event in events if kind == "payments")
    target = payers.most_common(1)[0][0]
    prefix = pipeline.settings.prefix
    pipeline.wait_until(lambda: pipeline.redis.exists(pipeline.keys.propensity_of(target)), 30,
                        "the customer's latest session (applied once every path is past it)")
    before = keys_mentioning(pipeline.redis, prefix, target)
    kinds = {key.removeprefix(f"{prefix}:").split(":")[0] for key in before}
    assert {"customer", "risk", "alerts", "session", "propensity"} <= kinds, before  # something to erase in each family
    assert target in read_features(pipeline.settings)
    pipeline.wait_until(lambda: pipeline.redis.exists(pipeline.keys.segment_of(target)), 30,
                        "the customer's segment (served once the segmenter has seeded)")
    server = start_server(pipeline.settings)  # the lookups over the same Redis (a cluster client on a cluster)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as api:
            found = api.get(f"/api/v1/customers/{target}").json()
            alerts = api.get("/api/v1/alerts", params={"kind": "risk", "limit": 100}).json()["alerts"]
            rule = api.put("/api/v1/risk/rules/big", json={"expression": "amount > 5000", "action": "review"})
            paused = api.post("/api/v1/risk/rules/big/pause")
    finally:
        server.server.should_exit = True
        server.thread.join(10)
    assert found["features"]["orders"] == float(expected[target]["orders"]) and found["segment_id"] is not None
    assert alerts and all(alert["details"]["customer_id"] for alert in alerts), alerts[:3]
    assert rule.status_code == 201 and paused.json()["enabled"] is False

    run = CliRunner().invoke(app, ["forget", target], env={"COLUMNS": "200", **settings_env(pipeline.settings)})
    assert run.exit_code == 0 and f"erased customer {target}" in run.output, run.output

    assert keys_mentioning(pipeline.redis, prefix, target) == []
    assert target not in read_features(pipeline.settings), "the changelog's last record of it is a tombstone"
    others = {c: view for c, view in expected.items() if c != target}
    assert all({k: pipeline.redis.hget(pipeline.keys.customer(c), k) for k in view} == view
               for c, view in others.items())
    # Views republished from state (as after a Redis that came back empty) do not bring it back.
    rebuilt = CliRunner().invoke(app, ["rebuild-views"], env=settings_env(pipeline.settings))
    assert rebuilt.exit_code == 0, rebuilt.output
    pipeline.wait_until(lambda: all(pipeline.redis.exists(pipeline.keys.views_published(p))
                                    for p in range(pipeline.settings.partitions)), 30, "the views republished")
    assert keys_mentioning(pipeline.redis, prefix, target) == []
    pipeline.wait_until(lambda: sum(int(pipeline.redis.hget(key, "customers_erased") or 0)
                                    for key in pipeline.redis.scan_iter(pipeline.keys.pattern("metrics", "worker")))
                        == 1, 30, "customers_erased 1 in the worker metrics")
    assert worker.alive()
