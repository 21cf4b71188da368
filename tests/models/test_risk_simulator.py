"""On the shop simulator's stream, with fraud patterns changing half way, the scorer keeps up."""

from __future__ import annotations

import pytest

from streams.tools.evaluation.risk import evaluate_simulator


@pytest.fixture(scope="module")
def drifting_shop() -> dict:
    return evaluate_simulator(seed=7, drift=True, through_json=False)


def test_progressive_auc_after_warm_up(drifting_shop: dict) -> None:
    assert drifting_shop["frauds"] >= 40
    assert drifting_shop["progressive_auc"] >= 0.95
    assert drifting_shop["progressive_auc_model_mode"] >= 0.95


def test_once_the_new_patterns_labels_arrive_online_matches_a_batch_model_fitted_before_the_drift(
    drifting_shop: dict,
) -> None:
    # The batch model got every true label of the first half; the online scorer only the late labels.
    assert drifting_shop["online_auc_second_half"] >= 0.95
    assert drifting_shop["online_auc_last_quarter"] >= drifting_shop["batch_auc_last_quarter"] - 0.005


def test_every_payment_is_learned_at_most_once(drifting_shop: dict) -> None:
    pending = drifting_shop["pending"]
    assert pending["repeated"] == pending["late"] == pending["unmatched"] == 0
    assert pending["labelled"] + pending["matured"] + pending["pending"] == drifting_shop["payments"]
    assert drifting_shop["scorer_metrics"]["labels_learned"] == pending["labelled"] + pending["matured"]
