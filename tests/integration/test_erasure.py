"""``kairos forget``: a customer erased leaves no key and no state entry, against a real broker and Redis."""

from __future__ import annotations

from collections import Counter

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.tools.faults import read_features
from tests.integration.harness import Pipeline, expected_views, keys_mentioning, settings_env, shop_events

pytestmark = pytest.mark.integration


def test_a_forgotten_customer_leaves_no_key_no_state_and_no_alert_and_the_others_keep_theirs(make_pipeline) -> None:
    # A low alert threshold, so that the customer's payments also raised alerts to erase.
    pipeline: Pipeline = make_pipeline(risk_threshold=0.001)
    events = shop_events(900, customers=30, seed=43)
    worker = pipeline.start_worker()
    pipeline.send_events(events)
    pipeline.wait_for_outcomes(len(events), timeout=120)
    expected = expected_views(events)
    pipeline.wait_until(lambda: all(
        {k: pipeline.redis.hget(pipeline.keys.customer(c), k) for k in view} == view
        for c, view in expected.items()), 30, "the customer views")
    payers = Counter(event["customer_id"] for kind, event in events if kind == "payments")
    target = payers.most_common(1)[0][0]
    prefix = pipeline.settings.prefix
    before = keys_mentioning(pipeline.redis, prefix, target)
    kinds = {key.removeprefix(f"{prefix}:").split(":")[0] for key in before}
    assert {"customer", "risk", "alerts"} <= kinds, before  # there is something to erase in each family
    assert target in read_features(pipeline.settings)

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
