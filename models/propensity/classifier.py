"""Conversion propensity: will this session end in an order? A River tree and a River logistic regression.

River parts: :class:`ConversionClassifier` is a ``river.base.Classifier``
whose probability is the mean of two River models learned on the same
sessions: ``tree.HoeffdingAdaptiveTreeClassifier`` (a decision tree grown
online, its subtrees replaced when ADWIN sees their error drift: the
interactions, and the rules a shop reads; as :class:`~.conversion_tree.ConversionTree`,
River's tree with cheaper majority-class leaves, bit for bit the same) and ``linear_model.LogisticRegression``
over the numbers scaled by ``preprocessing.StandardScaler`` and a one-hot of
each text feature (the smooth trends, and a ranking within a leaf, where the
tree alone gives one value; wired by hand: River's ``compose.SelectType``
union around ``OneHotEncoder`` cost 34 µs to learn and 11 µs to predict per
session, against about 14 and 4). Measured on simulated
and generated sessions (``kairos bench --suite propensity``, BENCHMARKS.md):
the mean ranks sessions better than either alone, most of all on the first
few thousand sessions, before the tree has split much. It plugs into
``river.evaluate.progressive_val_score`` and River's metrics.
:meth:`ConversionClassifier.explain` gives the tree's leaves as sentences
("sessions with carts ≥ 1 and last_action = add_to_cart convert at 70 %");
the checkpoint holds both models as plain data (:func:`graph_state`: nodes,
split statistics, weights and random generator as tagged JSON; a pickle
would do, but differs byte for byte between equal models, as it records
which objects are shared).

>>> import random
>>> rng = random.Random(3)
>>> model = ConversionClassifier(grace_period=50)
>>> model.predict_proba_one({"carts": 1})[True]
0.5
>>> for _ in range(3000):
...     carts = rng.randint(0, 3)
...     model.learn_one({"carts": carts, "views": rng.randint(0, 9)}, carts > 0 and rng.random() < 0.8)
>>> carted, browsing = model.predict_proba_one({"carts": 2, "views": 3}), model.predict_proba_one({"carts": 0, "views": 3})
>>> carted[True] > 0.6 > 0.2 > browsing[True]
True
>>> top = model.explain(1)[0]
>>> top["rule"], top["converts"]
('carts = 0', 0.0)
"""

from __future__ import annotations

import base64
import builtins
import importlib
import math
import pickle
import random
from collections import Counter, defaultdict
from typing import Any, Self

from river import base, linear_model, optim, preprocessing, proba

from models.base import check_state_tag
from models.propensity.conversion_tree import ConversionTree

#: Features whose values are whole numbers: their split thresholds read as ``≥ n`` / ``≤ n``.
COUNT_FEATURES = frozenset({"views", "searches", "carts", "removes", "cart_items", "clicks", "hour", "orders_before",
                            "clicks_before"})


class ConversionClassifier(base.Classifier):
    """P(session converts | its counters now): the mean of a Hoeffding adaptive tree and a logistic regression
    (the base rate seen so far until ``grace_period`` sessions were learned).

    ``grace_period``, ``max_depth``, ``delta``, ``max_size`` and ``seed`` are River's
    ``HoeffdingAdaptiveTreeClassifier``'s (``max_size``, MiB, caps the tree: River deactivates its least
    promising leaves beyond it, so memory is bounded whatever the stream); ``learning_rate`` is the logistic
    regression's SGD step. The linear part's weights grow with the text features' distinct values only
    (``last_action``: four).
    """

    STATE = ("ConversionClassifier", 2)

    def __init__(self, grace_period: int = 100, max_depth: int = 12, delta: float = 1e-3,
                 max_size: float = 16.0, seed: int = 42, learning_rate: float = 0.01) -> None:
        self.grace_period = grace_period
        self.max_depth = max_depth
        self.delta = delta
        self.max_size = max_size
        self.seed = seed
        self.learning_rate = learning_rate
        self.tree = ConversionTree(
            grace_period=grace_period, max_depth=max_depth, delta=delta, max_size=max_size, seed=seed,
            leaf_prediction="mc")
        #: The linear part: River's scaler on the numbers, and its logistic regression on them and a one-hot of the
        #: text features (unscaled), as ``compose.SelectType`` unions would wire them.
        self.scaler = preprocessing.StandardScaler()
        self.logistic = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))
        #: Sessions learned, and how many of them converted.
        self.learned = 0
        self.converted = 0

    @property
    def _multiclass(self) -> bool:
        return False

    def learn_one(self, x: dict[str, Any], y: bool, **kwargs: Any) -> None:
        self.tree.learn_one(x, bool(y))
        values, text = split_types(x)
        self.scaler.learn_one(values)
        self.logistic.learn_one(self.scaler.transform_one(values) | text, bool(y))
        self.learned += 1
        self.converted += bool(y)

    def predict_proba_one(self, x: dict[str, Any], **kwargs: Any) -> dict[bool, float]:
        p = self._converts(x)
        return {False: 1.0 - p, True: p}

    def _converts(self, x: dict[str, Any]) -> float:
        if self.learned < self.grace_period:
            return (self.converted + 1) / (self.learned + 2)  # the base rate, from 0.5 (Laplace)
        values, text = split_types(x)
        linear = self.logistic.predict_proba_one(self.scaler.transform_one(values) | text).get(True, 0.0)
        proba = self.tree.predict_proba_one(x)
        total = sum(proba.values())
        return 0.5 * (linear + (proba.get(True, 0.0) / total if total > 0 else linear))

    def metrics(self) -> dict[str, float]:
        """Sessions learned, their conversion rate, and the tree's size."""
        return {"learned": self.learned, "conversion_rate": self.converted / self.learned if self.learned else 0.0,
                "nodes": self.tree.n_nodes, "height": self.tree.height}

    def explain(self, top: int = 5) -> list[dict[str, Any]]:
        """The tree's leaves as readable rules, the best supported first: each ``rule`` (the conditions from the
        root, one per feature), ``converts`` (the share of the leaf's sessions that converted) and ``sessions``
        (how many it has seen; River counts since the leaf was made)."""
        rules = []

        def walk(node: Any, conditions: dict[str, tuple]) -> None:
            children = getattr(node, "children", None)
            if not children:
                weight = sum(node.stats.values())
                if weight > 0:
                    rule = " and ".join(_condition_text(feature, c) for feature, c in conditions.items())
                    rules.append({"rule": rule or "all",
                                  "converts": round(node.stats.get(True, 0.0) / weight, 3),
                                  "sessions": int(round(weight))})
                return
            for index, child in enumerate(children):
                walk(child, _with_condition(conditions, node, index))

        if self.learned >= self.grace_period:
            walk(self.tree._root, {})
        rules.sort(key=lambda rule: (-rule["sessions"], rule["rule"]))
        return rules[:top]

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": self.STATE[1], "params": self._get_params(),
                "tree": graph_state(self.tree), "scaler": graph_state(self.scaler),
                "logistic": graph_state(self.logistic),
                "learned": self.learned, "converted": self.converted}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output; a restored model learns features it had not seen yet.

        >>> model = ConversionClassifier(grace_period=1)
        >>> model.learn_one({"carts": 1.0}, True)
        >>> restored = ConversionClassifier.from_state(model.state_dict())
        >>> restored.learn_one({"carts": 0.0, "views": 3.0}, False)
        >>> restored.learned, sorted(restored.scaler.counts)
        (2, ['carts', 'views'])
        """
        check_state_tag(state, *cls.STATE)
        model = cls(**state["params"])
        model.tree = graph_from_state(state["tree"])
        model.scaler = graph_from_state(state["scaler"])
        # Checkpoints written before Counters were kept as such hold the scaler's counts as a plain dict.
        model.scaler.counts = Counter(model.scaler.counts)
        model.logistic = graph_from_state(state["logistic"])
        model.learned, model.converted = state["learned"], state["converted"]
        return model

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {"grace_period": 20}


def split_types(x: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """``x``'s numbers, and a one-hot of its text features (``name=value``: 1).

    >>> split_types({"carts": 2, "last_action": "view"})
    ({'carts': 2}, {'last_action=view': 1.0})
    """
    values, text = {}, {}
    for name, value in x.items():
        if isinstance(value, str):
            text[f"{name}={value}"] = 1.0
        else:
            values[name] = value
    return values, text


def _with_condition(conditions: dict[str, tuple], branch: Any, index: int) -> dict[str, tuple]:
    """``conditions`` and the condition of ``branch``'s child ``index``: a numeric feature's bounds merge."""
    feature, merged = branch.feature, dict(conditions)
    threshold = getattr(branch, "threshold", None)
    if threshold is None:  # nominal: River's own wording ("last_action = add_to_cart")
        merged[feature] = ("text", branch.repr_branch(index, shorten=False))
        return merged
    _, low, high = conditions.get(feature, ("range", None, None))
    if index == 0:  # River's left child: x <= threshold
        high = threshold if high is None else min(high, threshold)
    else:
        low = threshold if low is None else max(low, threshold)
    merged[feature] = ("range", low, high)
    return merged


def _condition_text(feature: str, condition: tuple) -> str:
    """One feature's condition in words: ``low < x <= high``, counts as whole numbers.

    >>> _condition_text("carts", ("range", 0.8, None)), _condition_text("carts", ("range", 0.5, 2.7))
    ('carts ≥ 1', 'carts 1–2')
    >>> _condition_text("cart_value", ("range", None, 74.123))
    'cart_value ≤ 74.1'
    """
    if condition[0] == "text":
        return condition[1]
    _, low, high = condition
    if feature in COUNT_FEATURES:
        first = None if low is None else math.floor(low) + 1
        last = None if high is None else math.floor(high)
        if first is not None and last is not None:
            return f"{feature} = {first}" if first == last else f"{feature} {first}–{last}"
        if first is not None:
            return f"{feature} ≥ {first}"
        return f"{feature} = 0" if last == 0 else f"{feature} ≤ {last}"
    if low is not None and high is not None:
        return f"{feature} {low:.3g}–{high:.3g}"
    return f"{feature} > {low:.3g}" if low is not None else f"{feature} ≤ {high:.3g}"


def graph_state(value: Any, _shared: dict[int, int] | None = None) -> Any:
    """A River model (any River object graph: a tree, a pipeline) as tagged plain data: objects as
    ``{"object": class, "attrs"}``, dicts as ``{"dict": [[key, value], ...]}`` (keys may be booleans or
    numbers), sets sorted; an object held in several places (a pipeline's steps, the tree's random generator)
    once, then ``{"ref": n}`` (the n-th object written); River's Rust parts (ADWIN windows, weight vectors) as
    their own pickle (bytes of numbers, base64). A leaf's Gaussians' own generators (unseeded in River, used only to
    sample, never by the tree) are not kept: they restore unseeded.

    >>> from river import tree
    >>> model = tree.HoeffdingTreeClassifier()
    >>> model.learn_one({"carts": 1.0, "last_action": "view"}, True)
    >>> graph_from_state(graph_state(model)).predict_proba_one({"carts": 1.0})
    {True: 1.0}
    """
    shared = {} if _shared is None else _shared
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, list):
        return [graph_state(item, shared) for item in value]
    if isinstance(value, tuple):
        return {"tuple": [graph_state(item, shared) for item in value]}
    if isinstance(value, dict):
        items = [[graph_state(k, shared), graph_state(v, shared)] for k, v in value.items()]
        if isinstance(value, defaultdict):
            return {"defaultdict": _class_name(value.default_factory), "items": items}
        if isinstance(value, Counter):  # River's StandardScaler counts: a plain dict would refuse a new feature
            return {"counter": items}
        return {"dict": items}
    if isinstance(value, (set, frozenset)):
        return {"set": sorted((graph_state(item, shared) for item in value), key=repr)}
    if id(value) in shared:  # held by several objects (a pipeline's steps, the tree's generator): once
        return {"ref": shared[id(value)]}
    shared[id(value)] = len(shared)
    if isinstance(value, random.Random):
        return {"random": graph_state(value.getstate(), shared)}
    cls = type(value)
    if not _checkpointable(cls.__module__):
        raise TypeError(f"cannot checkpoint a {cls.__module__}.{cls.__qualname__}")
    if cls.__module__.startswith("river._river_rust"):
        return {"rust": _class_name(cls), "pickle": base64.b64encode(pickle.dumps(value, protocol=5)).decode()}
    attrs = {name: None if (name == "_rng" and isinstance(value, proba.Gaussian)) else graph_state(item, shared)
             for name, item in vars(value).items()}
    return {"object": _class_name(cls), "attrs": attrs}


def graph_from_state(state: Any, _shared: list[Any] | None = None) -> Any:
    """Rebuild :func:`graph_state` output (River classes and :data:`OWN_RIVER_MODULES` subclasses only)."""
    shared = [] if _shared is None else _shared
    if isinstance(state, list):
        return [graph_from_state(item, shared) for item in state]
    if not isinstance(state, dict):
        return state
    if "float" in state:
        return float(state["float"])
    if "tuple" in state:
        return tuple(graph_from_state(item, shared) for item in state["tuple"])
    if "dict" in state:
        return {_key(graph_from_state(k, shared)): graph_from_state(v, shared) for k, v in state["dict"]}
    if "counter" in state:
        return Counter({_key(graph_from_state(k, shared)): graph_from_state(v, shared) for k, v in state["counter"]})
    if "defaultdict" in state:
        return defaultdict(_river_class(state["defaultdict"]),
                           {_key(graph_from_state(k, shared)): graph_from_state(v, shared) for k, v in state["items"]})
    if "set" in state:
        return {_key(graph_from_state(item, shared)) for item in state["set"]}
    if "ref" in state:
        return shared[state["ref"]]
    if "random" in state:
        generator = random.Random()
        shared.append(generator)
        generator.setstate(graph_from_state(state["random"], shared))
        return generator
    if "rust" in state:
        _river_class(state["rust"])
        rust = pickle.loads(base64.b64decode(state["pickle"]))  # noqa: S301 (a River class, checked above)
        shared.append(rust)
        return rust
    cls = _river_class(state["object"])
    obj = cls.__new__(cls)
    shared.append(obj)  # before its attributes: they may refer back to it
    for name, item in state["attrs"].items():
        setattr(obj, name, random.Random() if item is None and name == "_rng" and cls is proba.Gaussian
                else graph_from_state(item, shared))
    return obj


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


#: Kairos modules whose classes a checkpoint may hold (River subclasses), besides River's own.
OWN_RIVER_MODULES = frozenset({"models.propensity.conversion_tree"})


def _checkpointable(module: str) -> bool:
    return module.startswith("river.") or module in OWN_RIVER_MODULES


def _class_name(cls: Any) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _river_class(name: str) -> Any:
    """A class from its dotted name: River's, or a builtin container a ``defaultdict`` makes."""
    module, _, qualname = name.rpartition(".")
    if module == "builtins" and qualname in ("dict", "list", "int", "float", "set", "str", "bool"):
        return getattr(builtins, qualname)
    if not _checkpointable(module):
        raise ValueError(f"{name!r} is not a River class")
    return getattr(importlib.import_module(module), qualname)
