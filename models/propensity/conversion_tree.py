"""River's Hoeffding adaptive tree, with the work its majority-class leaves throw away left out.

River parts: :class:`ConversionTree` *is* ``tree.HoeffdingAdaptiveTreeClassifier``
(the same splits, drift detectors, alternate subtrees, random generator and
size cap); only its leaves differ, and only in how they compute, never in
what: with ``leaf_prediction="mc"`` (the conversion model's), River's
adaptive leaf still

* runs a naive Bayes prediction and a majority-class prediction on every
  instance it learns, to count which of the two would have been right
  (``LeafNaiveBayesAdaptive``): counts read only with ``leaf_prediction="nba"``;
* deep-copies its class counts twice for each prediction
  (``normalize_values_in_dict(..., inplace=False)`` on a dict of floats).

Measured on the sessions stage's work (the bench's 193,366 click and order
records, 16,974 sessions learned): 2.2–2.4 s with these leaves, 3.0 s with
River's (BENCHMARKS.md, 2026-12-07 second session).
:class:`ConversionTreeLeaf` skips the first and does the second with plain
dict comprehensions, the same floating-point operations in the same order
(``value * (1 / factor)``), so every probability is bit for bit River's
(``tests/models/test_propensity_tree.py`` learns both side by side). With
another ``leaf_prediction`` the leaves are River's own code.

>>> import random
>>> from river import tree
>>> rng = random.Random(1)
>>> ours = ConversionTree(grace_period=30, seed=4)
>>> rivers = tree.HoeffdingAdaptiveTreeClassifier(grace_period=30, seed=4)
>>> for _ in range(2000):
...     x = {"carts": rng.randint(0, 3), "views": rng.randint(0, 9)}
...     y = x["carts"] > 0 and rng.random() < 0.8
...     ours.learn_one(x, y); rivers.learn_one(x, y)
>>> probe = {"carts": 2, "views": 5}
>>> ours.predict_proba_one(probe) == rivers.predict_proba_one(probe), ours.n_nodes == rivers.n_nodes > 1
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

from river import tree
from river.tree.nodes.hatc_nodes import AdaLeafClassifier
from river.tree.nodes.htc_nodes import LeafNaiveBayesAdaptive


class _WithoutPredictorContest(LeafNaiveBayesAdaptive):
    """``LeafNaiveBayesAdaptive`` learning without counting whether naive Bayes or the majority class would have
    predicted the instance (the counts only a ``leaf_prediction="nba"`` tree reads)."""

    def learn_one(self, x: dict, y: Any, *, w: float = 1.0, tree: Any = None) -> None:
        if tree is not None and tree.leaf_prediction == tree._NAIVE_BAYES_ADAPTIVE:
            super().learn_one(x, y, w=w, tree=tree)
        else:
            super(LeafNaiveBayesAdaptive, self).learn_one(x, y, w=w, tree=tree)


class ConversionTreeLeaf(AdaLeafClassifier, _WithoutPredictorContest):
    """River's ``AdaLeafClassifier``; its majority-class prediction without deep copies (the same arithmetic)."""

    def prediction(self, x: dict, *, tree: Any = None) -> dict | None:
        if self.is_active() and tree.leaf_prediction != tree._MAJORITY_CLASS:
            return super().prediction(x, tree=tree)
        if not self.stats:
            return None
        dist = _normalized(self.stats, sum(self.stats.values()))
        error = self._mean_error.get()
        return _normalized(dist, sum(dist.values()) * error * error)


def _normalized(counts: dict, factor: float) -> dict:
    """River's ``normalize_values_in_dict(counts, factor, inplace=False)`` for a flat dict of numbers."""
    if factor == 0 or math.isnan(factor):
        return dict(counts)
    multiplier = 1 / factor
    return {label: value * multiplier for label, value in counts.items()}


class ConversionTree(tree.HoeffdingAdaptiveTreeClassifier):
    """``tree.HoeffdingAdaptiveTreeClassifier`` growing :class:`ConversionTreeLeaf` leaves (see the module)."""

    def _new_leaf(self, initial_stats: dict | None = None, parent: Any = None) -> ConversionTreeLeaf:
        return ConversionTreeLeaf(stats={} if initial_stats is None else initial_stats,
                                  depth=0 if parent is None else parent.depth + 1, splitter=self.splitter,
                                  drift_detector=self.drift_detector.clone(), rng=self._rng)
