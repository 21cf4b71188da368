"""The conversion tree is River's Hoeffding adaptive tree, bit for bit, only cheaper."""

from __future__ import annotations

import random

import pytest
from river import tree

from models.propensity import ConversionClassifier
from models.propensity.classifier import graph_from_state, graph_state
from models.propensity.conversion_tree import ConversionTree, ConversionTreeLeaf


def _sessions(n: int, seed: int, drift_at: int | None = None) -> list[tuple[dict, bool]]:
    """Sessions whose conversion depends on carts, value and the last action; flipped after ``drift_at``."""
    rng, out = random.Random(seed), []
    for i in range(n):
        carts = rng.randint(0, 4)
        x = {"carts": carts, "views": rng.randint(0, 15), "cart_value": round(carts * rng.uniform(5, 90), 2),
             "last_action": rng.choice(["view", "search", "add_to_cart", "remove"])}
        converts = (carts > 1 and x["last_action"] != "remove") or rng.random() < 0.05
        if drift_at is not None and i >= drift_at:
            converts = not converts  # concept drift: the alternate subtrees take over
        out.append((x, converts))
    return out


@pytest.mark.parametrize("leaf_prediction", ["mc", "nba"])
def test_it_learns_and_predicts_as_rivers_tree_through_a_drift(leaf_prediction: str) -> None:
    params = {"grace_period": 40, "max_depth": 6, "delta": 1e-3, "seed": 9, "leaf_prediction": leaf_prediction}
    ours, rivers = ConversionTree(**params), tree.HoeffdingAdaptiveTreeClassifier(**params)
    probes = [x for x, _ in _sessions(30, seed=2)]
    for x, y in _sessions(6000, seed=1, drift_at=3000):
        assert ours.predict_proba_one(x) == rivers.predict_proba_one(x)
        ours.learn_one(x, y)
        rivers.learn_one(x, y)
    assert [ours.predict_proba_one(x) for x in probes] == [rivers.predict_proba_one(x) for x in probes]
    counts = ("n_nodes", "height", "n_alternate_trees", "n_switch_alternate_trees", "n_pruned_alternate_trees")
    assert [getattr(ours, name) for name in counts] == [getattr(rivers, name) for name in counts]
    assert ours.n_nodes > 5 and ours.n_alternate_trees > 0  # it split, and the drift grew an alternate subtree
    assert all(isinstance(leaf, ConversionTreeLeaf) for leaf in ours._root.iter_leaves())


def test_a_checkpointed_conversion_tree_comes_back_as_one_and_goes_on_the_same() -> None:
    model = ConversionClassifier(grace_period=30)
    stream = _sessions(3000, seed=4)
    for x, y in stream[:1500]:
        model.learn_one(x, y)
    restored = ConversionClassifier.from_state(model.state_dict())
    assert type(restored.tree) is ConversionTree
    for x, y in stream[1500:]:
        model.learn_one(x, y)
        restored.learn_one(x, y)
    assert graph_state(restored.tree) == graph_state(model.tree)
    assert type(graph_from_state(graph_state(model.tree))) is ConversionTree


def test_passes_every_river_check_on_sessions() -> None:
    """River's own checks for a classifier (its stock datasets replaced by sessions, as the contract test does)."""
    from river import checks

    model, ran = ConversionTree(grace_period=20, seed=1), []
    sessions = _sessions(300, seed=5)
    for check in checks.yield_checks(model):
        if "dataset" in getattr(check, "keywords", {}):
            check.func(model.clone(), dataset=list(sessions))
        else:
            check(model.clone())
        ran.append(getattr(check, "__name__", getattr(getattr(check, "func", None), "__name__", "")))
    assert "check_clone_is_idempotent" in ran and "check_learn_one" in ran, ran
