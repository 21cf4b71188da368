"""The contract every Kairos model honours.

A model learns from plain dicts, one observation at a time (``learn_one``), and
answers from plain dicts (``predict_one``). It never touches Kafka, Redis or an
event loop, so the streaming layer can fold batches into it and checkpoint it
next to the source offsets it has applied.

Checkpoints are plain data: ``state_dict()`` returns dicts, lists, numbers and
strings only (JSON-compatible), carrying ``"model"`` and ``"version"`` tags;
``from_state()`` rebuilds an equal model and refuses a state from another model
or an unknown version. Models are also picklable.

>>> from models.base import check_state_tag
>>> check_state_tag({"model": "Demo", "version": 1}, "Demo", 1)
>>> check_state_tag({"model": "Other", "version": 1}, "Demo", 1)
Traceback (most recent call last):
...
models.base.StateVersionError: state is for 'Other' v1, expected 'Demo' v1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Self, runtime_checkable


class StateVersionError(ValueError):
    """A checkpoint was written by another model or an incompatible version."""


def check_state_tag(state: dict[str, Any], model: str, version: int) -> None:
    """Raise :class:`StateVersionError` unless ``state`` is tagged ``model`` / ``version``."""
    got = (state.get("model"), state.get("version"))
    if got != (model, version):
        raise StateVersionError(
            f"state is for {got[0]!r} v{got[1]}, expected {model!r} v{version}"
        )


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
