"""When the fraud pattern changes, the scorer notices from its own errors, says so, and adapts."""

from __future__ import annotations

import json
import random

from sklearn.metrics import roc_auc_score

from models.risk import RiskScorer


def payments(rng: random.Random, count: int, drifted: bool) -> list[tuple[dict[str, float], bool]]:
    """Legit payments, and 3 % frauds lighting up ``pattern_a`` before the drift, ``pattern_b`` (less) after it."""
    stream = []
    for _ in range(count):
        fraud = rng.random() < 0.03
        x = {"pattern_a": rng.gauss(0, 1), "pattern_b": rng.gauss(0, 1), "noise": rng.gauss(0, 1)}
        if fraud:
            x["pattern_b" if drifted else "pattern_a"] += 2.5 if drifted else 4.0
        stream.append((x, fraud))
    return stream


def run(scorer: RiskScorer, stream: list[tuple[dict[str, float], bool]]) -> list[dict]:
    drifts = []
    for x, fraud in stream:
        assessment = scorer.assess(x)
        scorer.learn_one(x, fraud, score=assessment.score, alerted=assessment.alert)
        drifts += scorer.take_drifts()
    return drifts


def test_a_new_fraud_pattern_raises_a_drift_with_before_and_after_and_the_model_adapts() -> None:
    rng = random.Random(11)
    scorer = RiskScorer(min_labels=100, min_positives=10)
    assert run(scorer, payments(rng, 4000, drifted=False)) == []  # a stable pattern: no drift
    assert len(scorer._replay) == scorer.replay_frauds
    labels_at_drift = scorer.labels
    drifts = run(scorer, payments(rng, 1500, drifted=True))
    assert drifts, "the new pattern went unnoticed"
    first = drifts[0]
    assert (first["model"], first["metric"]) == ("RiskScorer", "fraud_rank_error")
    assert first["after"] > first["before"] + 0.2  # rank error: share of legit payments scored above a fraud
    assert first["labels"] - labels_at_drift <= 1000
    late = payments(rng, 2000, drifted=True)
    # The best possible AUC on a 2.5 sigma shift of one signal is 0.96.
    assert roc_auc_score([fraud for _, fraud in late], [scorer.score_one(x) for x, _ in late]) > 0.9


def test_the_drift_test_survives_a_checkpoint() -> None:
    rng = random.Random(12)
    scorer = RiskScorer(min_labels=100, min_positives=10)
    run(scorer, payments(rng, 3000, drifted=False))
    restored = RiskScorer.from_state(json.loads(json.dumps(scorer.state_dict(), allow_nan=False)))
    rest = payments(rng, 1500, drifted=True)
    assert run(scorer, rest) == run(restored, rest)
    assert json.dumps(scorer.state_dict(), sort_keys=True) == json.dumps(restored.state_dict(), sort_keys=True)
