"""Progressive forecast errors of a model and of its seasonal-naive baseline."""

from __future__ import annotations

from typing import Any, Iterable, Self

from models.base import check_state_tag


def smape_term(actual: float, forecast: float) -> float:
    """One window's symmetric absolute percentage error, in percent (0 when both are 0)."""
    scale = abs(actual) + abs(forecast)
    return 200.0 * abs(actual - forecast) / scale if scale else 0.0


class ForecastErrors:
    """MAE and sMAPE of a model and of seasonal-naive, accumulated over the same windows.

    Each window is scored before the model learns it (progressive validation),
    so every number is an honest out-of-sample error. ``mae_ratio`` below 1
    means the model beats seasonal-naive. Memory: five numbers.

    >>> errors = ForecastErrors()
    >>> errors.update(actual=10.0, forecast=8.0, baseline=5.0)
    >>> errors.update(actual=0.0, forecast=0.0, baseline=2.0)
    >>> errors.as_dict()["mae"], errors.as_dict()["naive_mae"], errors.as_dict()["mae_ratio"]
    (1.0, 3.5, 0.2857142857142857)
    """

    MODEL = "ForecastErrors"
    VERSION = 1
    #: The running sums; everything reported is derived from them.
    SUMS = ("windows", "abs_error", "baseline_abs_error", "smape_sum", "baseline_smape_sum")

    def __init__(self) -> None:
        self.windows = 0
        self.abs_error = 0.0
        self.baseline_abs_error = 0.0
        self.smape_sum = 0.0
        self.baseline_smape_sum = 0.0

    def update(self, actual: float, forecast: float, baseline: float) -> None:
        """Score one window's model forecast and baseline forecast against its actual."""
        self.windows += 1
        self.abs_error += abs(actual - forecast)
        self.baseline_abs_error += abs(actual - baseline)
        self.smape_sum += smape_term(actual, forecast)
        self.baseline_smape_sum += smape_term(actual, baseline)

    @classmethod
    def pooled(cls, parts: Iterable[ForecastErrors]) -> Self:
        """The errors of several series taken together (sums of their absolute errors)."""
        total = cls()
        for part in parts:
            for name in cls.SUMS:
                setattr(total, name, getattr(total, name) + getattr(part, name))
        return total

    def as_dict(self) -> dict[str, float]:
        """``windows``, ``mae``, ``smape``, ``naive_mae``, ``naive_smape`` and ``mae_ratio``.

        Empty before any window; ``mae_ratio`` is left out while seasonal-naive
        has made no error at all.
        """
        if not self.windows:
            return {}
        n = self.windows
        report = {
            "windows": n,
            "mae": self.abs_error / n,
            "smape": self.smape_sum / n,
            "naive_mae": self.baseline_abs_error / n,
            "naive_smape": self.baseline_smape_sum / n,
        }
        if self.baseline_abs_error:
            report["mae_ratio"] = self.abs_error / self.baseline_abs_error
        return report

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint."""
        return {"model": self.MODEL, "version": self.VERSION} | {name: getattr(self, name) for name in self.SUMS}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output."""
        check_state_tag(state, cls.MODEL, cls.VERSION)
        errors = cls()
        for name in cls.SUMS:
            setattr(errors, name, state[name])
        return errors
