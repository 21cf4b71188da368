"""Card payments with the shop's own fraud signals, replayed in the ULB layout through the real pipeline."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline as sklearn_pipeline
from sklearn.preprocessing import StandardScaler

from streams.tools.replay import ReplayOptions, read_source
from tests.integration.harness import Pipeline
from tests.models.test_risk_shop_signals import write_creditcard


def test_scores_with_shop_signals_through_the_pipeline_match_a_batch_model(make_pipeline, tmp_path: Path) -> None:
    path = write_creditcard(tmp_path / "cards.csv", rows=3000, seed=6)
    _, _, source = read_source([path], options=ReplayOptions(label_delay_hours=600 / 3600))
    events = [(topic, value) for topic, _, value in source.events]
    pipeline: Pipeline = make_pipeline(partitions=2, risk_sync_seconds=0.5, risk_min_labels=100,
                                       risk_min_fraud_labels=5)
    pipeline.start_worker()
    pipeline.send_events(events[:50])
    pipeline.wait_for_outcomes(50, timeout=120)
    # Paced (about 25 s), so the scoring model is synced from the learners many times along the stream.
    pipeline.send_events(events[50:], rate=250.0)
    payment_ids = [value["payment_id"] for topic, value in events if topic == "payments"]
    keys = [pipeline.keys.risk_payment(payment_id) for payment_id in payment_ids]
    pipeline.wait_until(lambda: sum(pipeline.redis.exists(*keys[i:i + 500]) for i in range(0, len(keys), 500))
                        == len(keys), 120, "a risk view for every payment")
    scores = [float(pipeline.redis.hget(key, "score")) for key in keys]
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    truth = [row["Class"] == "1" for row in rows]
    signals = [[float(row[f"V{i}"]) for i in range(1, 29)] + [math.log1p(float(row["Amount"]))] for row in rows]
    half = len(rows) // 2
    batch = sklearn_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    batch.fit(signals[:half], truth[:half])
    batch_auc = roc_auc_score(truth[half:], batch.predict_proba(signals[half:])[:, 1])
    online_auc = roc_auc_score(truth[half:], scores[half:])
    assert batch_auc > 0.9
    assert online_auc >= batch_auc, (online_auc, batch_auc)
    assert pipeline.redis.hget(pipeline.keys.metrics("risk"), "mode") == "model"
