"""The score above which a payment alerts: a fixed value or a target alert rate.

With a target rate the threshold is the ``1 - rate`` quantile of the last
``window`` scores (a bounded window kept sorted, so the quantile is exact for
the window and deterministic). Until ``min_scores`` scores have been seen the
``initial`` value is used. Memory: ``window`` floats.

>>> threshold = AlertThreshold.for_alert_rate(0.1, window=100, min_scores=10)
>>> threshold.value()
0.5
>>> for i in range(100):
...     threshold.observe(i / 100)
>>> threshold.value(), threshold.alerts(0.95), threshold.alerts(0.5)
(0.89, True, False)
>>> AlertThreshold.fixed(0.7).alerts(0.71)
True
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any, Self

from models.base import check_state_tag


class AlertThreshold:
    """Decides whether a score alerts: ``score > value()``."""

    STATE_MODEL = "AlertThreshold"
    STATE_VERSION = 1

    def __init__(
        self,
        initial: float = 0.5,
        alert_rate: float | None = None,
        window: int = 2000,
        min_scores: int = 100,
    ) -> None:
        if alert_rate is not None and not 0.0 < alert_rate < 1.0:
            raise ValueError(f"alert_rate must be in (0, 1), got {alert_rate}")
        if window < 1 or not 1 <= min_scores <= window:
            raise ValueError("need window >= 1 and 1 <= min_scores <= window")
        self.initial = initial
        self.alert_rate = alert_rate
        self.window = window
        self.min_scores = min_scores
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    @classmethod
    def fixed(cls, value: float) -> Self:
        """A threshold that never moves."""
        return cls(initial=value)

    @classmethod
    def for_alert_rate(cls, rate: float, window: int = 2000, min_scores: int = 100, initial: float = 0.5) -> Self:
        """A threshold that lets about ``rate`` of recent payments alert."""
        return cls(initial=initial, alert_rate=rate, window=window, min_scores=min_scores)

    def value(self) -> float:
        """The current threshold."""
        if self.alert_rate is None or len(self._sorted) < self.min_scores:
            return self.initial
        rank = math.ceil(round((1.0 - self.alert_rate) * len(self._sorted), 9)) - 1
        return self._sorted[max(rank, 0)]

    def alerts(self, score: float) -> bool:
        """Whether ``score`` passes the current threshold."""
        return score > self.value()

    def observe(self, score: float) -> None:
        """Add a payment's score to the window (a no-op for a fixed threshold)."""
        if self.alert_rate is None:
            return
        self._recent.append(score)
        bisect.insort(self._sorted, score)
        if len(self._recent) > self.window:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def __repr__(self) -> str:
        return (f"AlertThreshold(initial={self.initial!r}, alert_rate={self.alert_rate!r}, "
                f"window={self.window!r}, min_scores={self.min_scores!r})")

    def clone(self) -> Self:
        """The same settings, no scores seen."""
        return type(self)(self.initial, self.alert_rate, self.window, self.min_scores)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: settings and the scores in the window, oldest first."""
        return {
            "model": self.STATE_MODEL,
            "version": self.STATE_VERSION,
            "initial": self.initial,
            "alert_rate": self.alert_rate,
            "window": self.window,
            "min_scores": self.min_scores,
            "recent": list(self._recent),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a threshold from :meth:`state_dict` output."""
        check_state_tag(state, cls.STATE_MODEL, cls.STATE_VERSION)
        threshold = cls(state["initial"], state["alert_rate"], state["window"], state["min_scores"])
        for score in state["recent"]:
            threshold.observe(score)
        return threshold
