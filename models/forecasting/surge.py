"""Opportunity alerts: sales leaving their forecast's prediction interval."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Self

from models.base import check_state_tag

SURGE = "surge"
SLUMP = "slump"
#: Most evidence one window can add, in interval half-widths (keeps checkpoints finite).
MAX_STEP = 10.0


@dataclass(frozen=True)
class Alert:
    """A series selling far above (``surge``) or below (``slump``) its forecast."""

    kind: str
    series: str
    window_start: float
    actual: float
    forecast: float
    lower: float
    upper: float
    #: Accumulated excess beyond the forecast, in interval half-widths, when the alert was raised.
    evidence: float

    @property
    def score(self) -> float:
        """Actual over forecast: how many times the usual sales the window saw."""
        return self.actual / self.forecast if self.forecast > 0 else float(self.actual > 0)

    def reasons(self) -> list[str]:
        """Why the alert was raised, in words."""
        side = "above" if self.kind == SURGE else "below"
        return [
            f"sold {self.actual:g} against a forecast of {self.forecast:.1f}",
            f"{side} the interval [{self.lower:.1f}, {self.upper:.1f}]",
            f"{self.evidence:.1f} interval half-widths {side} the forecast over recent windows",
        ]

    def to_record(self) -> dict[str, Any]:
        """Plain data for the alerts stream: the fields plus ``score`` and ``reasons``."""
        return asdict(self) | {"score": self.score, "reasons": self.reasons()}


@dataclass
class _Episode:
    """What the detector remembers of a series that is, or recently was, away from its forecast."""

    above: float = 0.0
    below: float = 0.0
    #: Side already alerted in this episode.
    alerted: str | None = None
    #: Windows back inside the interval in a row, counted while an alert is on.
    inside: int = 0


def _half_widths(excess: float, half_width: float) -> float:
    """``excess`` in units of the interval's half-width on that side."""
    if half_width <= 0:
        return MAX_STEP if excess > 0 else 0.0
    return min(excess / half_width, MAX_STEP)


class SurgeDetector:
    """Raise one alert per episode of sales leaving the forecast's interval.

    Each closed window's distance from its forecast is measured in half-widths
    of the interval on that side (1 = on the upper bound for a surge, on the
    lower bound for a slump) and accumulated as a CUSUM (Page, 1954):
    ``evidence = max(0, evidence + distance - allowance)``. An alert is raised
    when a window is outside the interval and the evidence reaches
    ``threshold``. With the defaults (``allowance`` 0.5, ``threshold`` 1.0) that
    is two windows in a row outside the interval, or a single window beyond
    1.5 half-widths: a sustained surge is caught in the window it starts in or
    the next, while a lone noisy window just past the bound is not.

    Guards: a surge needs at least ``min_ratio`` times the forecast, a slump
    at most ``1 / min_ratio`` of it, and the larger of actual and forecast must
    reach ``min_volume`` (tiny series never alert). Deduplication: after an
    alert the episode stays silent until ``recovery`` windows in a row are back
    inside the interval, so a surge of many windows raises one alert.

    Memory: one small record per series away from its forecast or recovering;
    a series back to normal is forgotten.

    >>> detector = SurgeDetector(min_volume=5)
    >>> detector.observe("sku:A", 0.0, actual=9, forecast=8.0, lower=3.0, upper=14.0) is None
    True
    >>> alert = detector.observe("sku:A", 3600.0, actual=40, forecast=8.0, lower=3.0, upper=14.0)
    >>> alert.kind, alert.score
    ('surge', 5.0)
    >>> detector.observe("sku:A", 7200.0, actual=45, forecast=8.5, lower=3.0, upper=15.0) is None  # same episode
    True
    """

    MODEL = "SurgeDetector"
    VERSION = 1

    def __init__(
        self,
        threshold: float = 1.0,
        allowance: float = 0.5,
        recovery: int = 2,
        min_volume: float = 5.0,
        min_ratio: float = 1.5,
    ) -> None:
        if threshold <= 0 or allowance < 0 or recovery < 1 or min_ratio < 1:
            raise ValueError("need threshold > 0, allowance >= 0, recovery >= 1 and min_ratio >= 1")
        self.threshold = threshold
        self.allowance = allowance
        self.recovery = recovery
        self.min_volume = min_volume
        self.min_ratio = min_ratio
        self._episodes: dict[str, _Episode] = {}

    def side(self, actual: float, forecast: float, lower: float, upper: float) -> str | None:
        """``"surge"``, ``"slump"`` or ``None``: whether one window may alert, guards included."""
        if max(actual, forecast) < self.min_volume:
            return None
        if actual > upper and actual >= self.min_ratio * forecast:
            return SURGE
        if actual < lower and actual * self.min_ratio <= forecast:
            return SLUMP
        return None

    def observe(
        self, series: str, window_start: float, actual: float, forecast: float, lower: float, upper: float
    ) -> Alert | None:
        """Take one closed window of ``series``; return an alert when an episode starts."""
        episode = self._episodes.get(series) or _Episode()
        episode.above = max(0.0, episode.above + _half_widths(actual - forecast, upper - forecast) - self.allowance)
        episode.below = max(0.0, episode.below + _half_widths(forecast - actual, forecast - lower) - self.allowance)
        episode.inside = episode.inside + 1 if lower <= actual <= upper else 0
        if episode.inside >= self.recovery:
            episode.alerted = None
        if episode.alerted is None:
            episode.inside = 0
        side = self.side(actual, forecast, lower, upper)
        evidence = episode.above if side == SURGE else episode.below
        alert = None
        if side is not None and side != episode.alerted and evidence >= self.threshold:
            episode.alerted = side
            alert = Alert(side, series, window_start, actual, forecast, lower, upper, evidence)
        if episode == _Episode():
            self._episodes.pop(series, None)
        else:
            self._episodes[series] = episode
        return alert

    def forget(self, series: str) -> None:
        """Drop what is known about ``series`` (it is no longer tracked)."""
        self._episodes.pop(series, None)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters and the open episodes."""
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "threshold": self.threshold,
            "allowance": self.allowance,
            "recovery": self.recovery,
            "min_volume": self.min_volume,
            "min_ratio": self.min_ratio,
            "episodes": {series: asdict(e) for series, e in sorted(self._episodes.items())},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output."""
        check_state_tag(state, cls.MODEL, cls.VERSION)
        detector = cls(
            state["threshold"], state["allowance"], state["recovery"], state["min_volume"], state["min_ratio"]
        )
        detector._episodes = {series: _Episode(**e) for series, e in state["episodes"].items()}
        return detector
