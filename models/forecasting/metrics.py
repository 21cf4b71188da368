"""Progressive forecast errors of a model and of its seasonal-naive baseline, as River metrics.

River parts: ``river.metrics.MAE`` and ``river.metrics.SMAPE`` (cumulative,
for the model and for seasonal-naive) and ``river.utils.Rolling`` of
``metrics.MAE`` (the recent errors, over the last ``recent`` windows). Pooling
several series adds up the metrics' ``river.stats.Mean`` with River's own
merge. Nothing here is hand-written but the bookkeeping around them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

from river import metrics, stats, utils

from models.base import check_state_tag, from_river_state, river_state, rolling_from_state, rolling_state

#: Windows in the recent (rolling) errors by default: a day of hourly windows.
RECENT = 24


def _rolling_mae(size: int) -> utils.Rolling:
    return utils.Rolling(metrics.MAE, window_size=size)


class ForecastErrors:
    """MAE and sMAPE of a model and of seasonal-naive over the same windows, and their recent MAE.

    Each window is scored before the model learns it (progressive validation),
    so every number is an honest out-of-sample error. ``mae_ratio`` below 1
    means the model beats seasonal-naive; ``recent_mae`` and
    ``recent_mae_ratio`` cover the last ``recent`` windows only (River's
    ``Rolling`` form). Memory: four running means and ``2 x recent`` pairs
    of numbers.

    >>> errors = ForecastErrors()
    >>> errors.update(actual=10.0, forecast=8.0, baseline=5.0)
    >>> errors.update(actual=0.0, forecast=0.0, baseline=2.0)
    >>> errors.as_dict()["mae"], errors.as_dict()["naive_mae"], errors.as_dict()["mae_ratio"]
    (1.0, 3.5, 0.2857142857142857)
    >>> errors.mae
    MAE: 1.
    """

    MODEL = "ForecastErrors"
    VERSION = 2

    def __init__(self, recent: int = RECENT) -> None:
        self.recent = recent
        self.windows = 0
        self.mae = metrics.MAE()
        self.smape = metrics.SMAPE()
        self.naive_mae = metrics.MAE()
        self.naive_smape = metrics.SMAPE()
        self.recent_mae = _rolling_mae(recent)
        self.recent_naive_mae = _rolling_mae(recent)

    def update(self, actual: float, forecast: float, baseline: float) -> None:
        """Score one window's model forecast and baseline forecast against its actual."""
        self.windows += 1
        self.mae.update(actual, forecast)
        self.smape.update(actual, forecast)
        self.naive_mae.update(actual, baseline)
        self.naive_smape.update(actual, baseline)
        self.recent_mae.update(actual, forecast)
        self.recent_naive_mae.update(actual, baseline)

    @classmethod
    def pooled(cls, parts: Iterable[ForecastErrors]) -> Self:
        """The cumulative errors of several series taken together (their River means merged; no recent errors)."""
        total = cls()
        for part in parts:
            if not part.windows:
                continue
            total.windows += part.windows
            for name in ("mae", "smape", "naive_mae", "naive_smape"):
                getattr(total, name)._mean += getattr(part, name)._mean
        return total

    def as_dict(self) -> dict[str, float]:
        """``windows``, ``mae``, ``smape``, ``naive_mae``, ``naive_smape``, ``mae_ratio`` and the recent MAE.

        Empty before any window; a ratio is left out while seasonal-naive has
        made no error at all; the recent fields are left out of pooled errors.
        """
        if not self.windows:
            return {}
        report: dict[str, float] = {
            "windows": self.windows,
            "mae": self.mae.get(),
            "smape": self.smape.get(),
            "naive_mae": self.naive_mae.get(),
            "naive_smape": self.naive_smape.get(),
        }
        if report["naive_mae"]:
            report["mae_ratio"] = report["mae"] / report["naive_mae"]
        if self.recent_mae.window:
            report["recent_mae"] = self.recent_mae.get()
            if self.recent_naive_mae.get():
                report["recent_mae_ratio"] = report["recent_mae"] / self.recent_naive_mae.get()
        return report

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: the River metrics' states and the recent windows."""
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "recent": self.recent,
            "windows": self.windows,
            **{name: river_state(getattr(self, name)) for name in ("mae", "smape", "naive_mae", "naive_smape")},
            "recent_mae": rolling_state(self.recent_mae),
            "recent_naive_mae": rolling_state(self.recent_naive_mae),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output (or from version 1's sums: no recent errors then)."""
        if state.get("model") == cls.MODEL and state.get("version") == 1:
            return cls._from_sums(state)
        check_state_tag(state, cls.MODEL, cls.VERSION)
        errors = cls(state["recent"])
        errors.windows = state["windows"]
        for name in ("mae", "smape", "naive_mae", "naive_smape"):
            setattr(errors, name, from_river_state(state[name]))
        rolling_from_state(errors.recent_mae, state["recent_mae"])
        rolling_from_state(errors.recent_naive_mae, state["recent_naive_mae"])
        return errors

    @classmethod
    def _from_sums(cls, state: dict[str, Any]) -> Self:
        """Version 1 kept sums of errors: each becomes the River metric's running mean."""
        errors = cls()
        n = errors.windows = state["windows"]
        sums = {"mae": "abs_error", "smape": "smape_sum", "naive_mae": "baseline_abs_error",
                "naive_smape": "baseline_smape_sum"}
        for name, total in sums.items():
            scale = 100.0 if name.endswith("smape") else 1.0  # River's SMAPE averages fractions, reported x 100
            getattr(errors, name)._mean = stats.Mean._from_state(n, state[total] / n / scale if n else 0.0)
        return errors
