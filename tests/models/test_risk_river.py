"""The risk scorer is a River classifier: River's own estimator checks and evaluation accept it."""

from __future__ import annotations

from river import checks, datasets, evaluate, metrics

from models.risk import RiskScorer


def test_river_estimator_checks_pass() -> None:
    # Phishing's 200-row check streams leave the cold start (min 20 labels, 3 frauds): the model is checked too.
    model = RiskScorer(min_labels=20, min_positives=3)
    ran = 0
    for check in checks.yield_checks(model):
        check(model.clone())
        ran += 1
    assert ran > 20


def test_progressive_val_score_on_river_data_learns_past_the_cold_start() -> None:
    # Phishing's features are none of the cold-start rule's, so the rules score every page alike (AUC 0.5).
    scorer = RiskScorer(min_labels=50, min_positives=10)
    auc = evaluate.progressive_val_score(datasets.Phishing(), scorer, metrics.ROCAUC(n_thresholds=50))
    assert scorer.mode == "model"
    assert auc.get() > 0.85
