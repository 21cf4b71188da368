"""The contract every Kairos model honours.

Every Kairos model is a River estimator: a subclass of the fitting
``river.base`` class (``Clusterer``, ``Regressor``, ``Classifier`` or plain
``Estimator``), so River's ``clone``, ``repr``, ``_get_params`` and its
estimator checks (``river.checks``) apply, and it plugs into
``river.compose`` and ``river.evaluate`` where its types allow. A model learns
from plain dicts, one observation at a time (``learn_one``), and answers from
plain dicts (``predict_one``). It never touches Kafka, Redis or an event loop,
so the streaming layer can fold batches into it and checkpoint it next to the
source offsets it has applied.

Checkpoints are plain data: ``state_dict()`` returns dicts, lists, numbers and
strings only (strict JSON: no NaN or infinity, as orjson writes them),
carrying ``"model"`` and ``"version"`` tags; ``from_state()`` rebuilds an
equal model and refuses a state from another model or an unknown version.
Models are also picklable. The River parts a model holds (metrics, running
statistics, drift detectors, time-series models) go into its checkpoint
through :func:`river_state` / :func:`from_river_state`.

>>> from models.base import check_state_tag
>>> check_state_tag({"model": "Demo", "version": 1}, "Demo", 1)
>>> check_state_tag({"model": "Other", "version": 1}, "Demo", 1)
Traceback (most recent call last):
...
models.base.StateVersionError: state is for 'Other' v1, expected 'Demo' v1
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Self, runtime_checkable

from river import base as river_base


class StateVersionError(ValueError):
    """A checkpoint was written by another model or an incompatible version."""


def check_state_tag(state: dict[str, Any], model: str, version: int) -> None:
    """Raise :class:`StateVersionError` unless ``state`` is tagged ``model`` / ``version``."""
    got = (state.get("model"), state.get("version"))
    if got != (model, version):
        raise StateVersionError(
            f"state is for {got[0]!r} v{got[1]}, expected {model!r} v{version}"
        )


def _plain(value: Any) -> Any:
    """``value`` as strict-JSON data: numbers, strings, lists, string-keyed dicts, nested River objects."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, river_base.Base):
        return river_state(value)
    if isinstance(value, (list, tuple, deque)):
        return [_plain(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item) for key, item in value.items()}
    raise TypeError(f"cannot checkpoint a {type(value).__name__} as plain data")


def _unplain(value: Any) -> Any:
    if isinstance(value, list):
        return [_unplain(item) for item in value]
    if isinstance(value, dict):
        if value.keys() == {"float"}:
            return float(value["float"])
        if value.keys() == {"river", "params", "attributes"}:
            return from_river_state(value)
        return {key: _unplain(item) for key, item in value.items()}
    return value


def river_state(estimator: river_base.Base) -> dict[str, Any]:
    """Plain-data snapshot of a small River object (a metric, statistic, drift detector or time-series model).

    Its class, its ``__init__`` parameters and every other attribute that is
    data (methods bound at construction are rebuilt by the constructor);
    non-finite floats are written as ``{"float": "inf"}``. Only classes from
    the ``river`` package are written and read back.

    >>> from river import metrics
    >>> mae = metrics.MAE()
    >>> mae.update(3.0, 1.0)
    >>> state = river_state(mae)
    >>> state["river"], state["attributes"]["_mean"]["attributes"]
    ('river.metrics.mae.MAE', {'n': 1.0, '_mean': 2.0})
    >>> from_river_state(state).get()
    2.0
    """
    cls = type(estimator)
    if not cls.__module__.startswith("river."):
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not a River class")
    params = estimator._get_params()
    attributes = {
        name: _plain(value)
        for name, value in vars(estimator).items()
        if name not in params and not callable(value)
    }
    return {"river": f"{cls.__module__}.{cls.__qualname__}", "params": _plain(params), "attributes": attributes}


def from_river_state(state: dict[str, Any]) -> Any:
    """Rebuild a River object from :func:`river_state` output (deques are refilled in place, keeping their type)."""
    module, _, name = state["river"].rpartition(".")
    if not module.startswith("river."):
        raise StateVersionError(f"{state['river']!r} is not a River class")
    estimator = getattr(importlib.import_module(module), name)(**_unplain(state["params"]))
    for attribute, value in state["attributes"].items():
        current = getattr(estimator, attribute, None)
        if isinstance(current, deque) and isinstance(value, list):
            current.clear()
            current.extend(_unplain(value))
        else:
            setattr(estimator, attribute, _unplain(value))
    return estimator


def rolling_state(rolling: Any) -> dict[str, Any]:
    """Plain-data snapshot of a ``river.utils.Rolling`` of a River statistic or metric: its object and its window."""
    return {"obj": river_state(rolling.obj), "window": [_plain(list(args)) for args, _ in rolling.window]}


def rolling_from_state(rolling: Any, state: dict[str, Any]) -> Any:
    """Load :func:`rolling_state` output into a fresh ``rolling`` of the same class and size; returns it."""
    rolling.obj = from_river_state(state["obj"])
    rolling.window.clear()
    rolling.window.extend((tuple(_unplain(args)), {}) for args in state["window"])
    return rolling


@runtime_checkable
class OnlineModel(Protocol):
    """What the streaming layer and the contract test rely on."""

    def learn_one(self, x: Any, y: Any = None) -> None:
        """Learn from one observation (and its target, where the model has one)."""

    def predict_one(self, x: Any) -> Any:
        """Answer for one observation; must work before any learning."""

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint, tagged with ``model`` and ``version``."""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild the model from :meth:`state_dict` output."""

    def clone(self) -> Self:
        """A fresh, unlearned model with the same parameters."""

    def metrics(self) -> dict[str, float]:
        """The model's own progressive metrics (may be empty before learning)."""


@dataclass
class ContractCase:
    """One model for the shared contract test.

    ``factory`` builds a fresh model; ``samples`` are ``(x, y)`` pairs it can
    learn from (``y`` may be ``None``); ``predict_inputs`` are inputs for
    ``predict_one``. ``equal`` compares two predictions (default ``==``).
    """

    name: str
    factory: Callable[[], OnlineModel]
    samples: list[tuple[Any, Any]]
    predict_inputs: list[Any]
    equal: Callable[[Any, Any], bool] = field(default=lambda a, b: a == b)
