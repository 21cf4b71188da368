"""Conversion propensity against the exact batch answer, at small scale, on a generated file of the REES46 layout.

The live score at each session's last click (progressive: the model had learned only the sessions that ended
before) must rank the second half's sessions at least as well as a batch scikit-learn decision tree, its depth
tuned by cross-validation, trained on the first half. Full size (the simulator, the shared REES46 sample):
``kairos bench --suite propensity`` and BENCHMARKS.md.
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timezone
from pathlib import Path

from streams.tools.evaluation.propensity import evaluate, rees46_records

HEADER = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id",
          "user_session"]


def write_rees46(path: Path, sessions: int, seed: int) -> None:
    """Sessions of views and carts, some ending in a purchase: carts and cheap items convert more."""
    rng = random.Random(seed)
    t, rows = 1_569_888_000.0, []
    for index in range(sessions):
        user = str(500_000_000 + rng.randrange(sessions // 3))
        t += rng.expovariate(1 / 60)
        at, session = t, f"sess-{index}"
        views, carts = 1 + int(rng.expovariate(1 / 3)), rng.choices([0, 1, 2, 3], [0.6, 0.25, 0.1, 0.05])[0]
        price = round(rng.uniform(5, 300), 2)
        for kind in ["view"] * views + ["cart"] * carts:
            at += rng.uniform(5, 90)
            rows.append((at, kind, price, user, session))
        if rng.random() < 0.03 + 0.25 * carts + 0.1 * (price < 50):
            rows.append((at + rng.uniform(10, 120), "purchase", price, user, session))
    rows.sort()
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(HEADER)
        for at, kind, price, user, session in rows:
            stamp = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            out.writerow([stamp, kind, "1", "2", "", "", price, user, session])


def test_the_live_score_ranks_sessions_at_least_as_well_as_a_batch_decision_tree(tmp_path) -> None:
    path = tmp_path / "user_behavior_sample.csv"
    write_rees46(path, sessions=2000, seed=1)
    result = evaluate("generated", rees46_records(path), grace_period=100, timeout=1800.0)
    assert result["sessions"] == 2000 and 0.1 < result["conversion_rate"] < 0.3, result
    assert result["live_auc_second_half"] >= result["batch_tree_auc_second_half"] > 0.75, result
    assert result["rules"] and result["rules"][0]["sessions"] > 0, result
