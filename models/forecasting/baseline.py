"""The seasonal-naive baseline every forecaster is measured against.

River parts: :class:`SeasonalNaive` is a ``river.base.Regressor`` (River's
``clone``, ``repr``, parameters and estimator checks; it runs in
``river.evaluate.progressive_val_score``). Not River: the rule itself, one
line keyed by the window's event time (River's time-series forecasters count
steps, not event-time windows, and have no seasonal-naive).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Self

from river import base

from models.base import check_state_tag
from models.forecasting.window_calendar import WindowCalendar


class SeasonalNaive(base.Regressor):
    """Forecast a window's sales as the sales one season (``season_length`` windows) earlier.

    ``x`` is ``{"window_start": epoch seconds}``; ``y`` the window's sales.
    Before a season has passed it has no answer (``None``). Memory: the last
    ``season_length`` values.

    >>> naive = SeasonalNaive(window_size=3600.0, season_length=24)
    >>> naive.learn_one({"window_start": 0.0}, 5.0)
    >>> naive.predict_one({"window_start": 24 * 3600.0})
    5.0
    >>> naive.predict_one({"window_start": 3600.0}) is None
    True

    As any River regressor, it can be scored with ``progressive_val_score``
    (windows without an answer yet are skipped):

    >>> from river import evaluate, metrics
    >>> hours = [({"window_start": h * 3600.0}, float(h % 24)) for h in range(72)]
    >>> evaluate.progressive_val_score(hours, SeasonalNaive(3600.0, season_length=24), metrics.MAE())
    MAE: 0.
    """

    MODEL = "SeasonalNaive"
    VERSION = 1

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"window_size": 3600.0, "season_length": 24}

    def __init__(self, window_size: float, season_length: int, origin: float = 0.0) -> None:
        self.window_size = window_size
        self.season_length = season_length
        self.origin = origin
        self.calendar = WindowCalendar(window_size, season_length, origin=origin)
        # A ring over the last season: slot ``k % season_length`` holds window ``k``.
        self._indices: list[int | None] = [None] * season_length
        self._values: list[float] = [0.0] * season_length

    def learn_one(self, x: dict[str, Any], y: float) -> None:
        """Remember the sales ``y`` of the window starting at ``x["window_start"]``."""
        index = self.calendar.index_of_start(x["window_start"])
        slot = index % self.calendar.season_length
        self._indices[slot] = index
        self._values[slot] = float(y)

    def predict_one(self, x: dict[str, Any]) -> float | None:
        """Sales of the window one season before ``x["window_start"]``, if seen."""
        before = self.calendar.index_of_start(x["window_start"]) - self.calendar.season_length
        slot = before % self.calendar.season_length
        return self._values[slot] if self._indices[slot] == before else None

    def metrics(self) -> dict[str, float]:
        """The baseline is what others are measured against; it keeps no metrics."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters and the remembered season."""
        c = self.calendar
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "window_size": c.size,
            "season_length": c.season_length,
            "origin": c.origin,
            "indices": list(self._indices),
            "values": list(self._values),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output."""
        check_state_tag(state, cls.MODEL, cls.VERSION)
        naive = cls(state["window_size"], state["season_length"], state["origin"])
        naive._indices = list(state["indices"])
        naive._values = [float(v) for v in state["values"]]
        return naive
