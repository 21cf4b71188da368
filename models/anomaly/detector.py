"""The per-minute traffic anomaly detector: each signal against its usual value, in standard deviations.

River parts: :class:`TrafficAnomalyDetector` is a ``river.base.AnomalyDetector``
(``learn_one`` / ``score_one``, River's ``clone``, parameters and estimator
checks). Not River: the usual values are exponentially weighted means kept
as plain floats (River 0.26's ``stats.EWMean`` is a Rust object whose state
cannot be written into a plain-data checkpoint); and the score.
River's ``anomaly.HalfSpaceTrees`` was measured on the same per-minute signals
of eight simulated shops (``kairos bench --suite anomaly``, BENCHMARKS.md) and
caught fewer planted incidents at more false alarms: its mass profile over a
random partition of the feature space cannot tell a 5-minute drought of orders
at 3 orders a minute (a real break) from the same drought at night (normal),
and it cannot say *which* signal moved against *what* usual value. Each
signal here is a count or a rate of two counts, so its usual variation is
known (Poisson / binomial, times a learned over-dispersion factor): a minute
is scored by how many of those standard deviations its worst signal moved.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

from river import base

from models.base import check_state_tag

#: Signal name -> (numerator counter, denominator counter or None for a count, direction that is abnormal).
SIGNALS: dict[str, tuple[str, str | None, str]] = {
    "views": ("views", None, "up"),
    "payments": ("payments", None, "up"),
    "add_to_cart_rate": ("carts", "views", "both"),
    "conversion_rate": ("orders", "carts", "down"),
    "decline_rate": ("declined", "payments", "up"),
    "new_device_share": ("new_devices", "payments", "up"),
    "dead_letter_rate": ("dead", "events", "up"),
}
#: Largest squared residual one minute adds to a signal's learned dispersion.
MAX_DISPERSION_STEP = 9.0
#: The counters a minute may carry (see :data:`SIGNALS`).
COUNTERS = ("views", "carts", "orders", "payments", "declined", "new_devices", "dead", "events")


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(x / y)


def poisson_residual(observed: float, expected: float) -> float:
    """The signed deviance residual of a count against a Poisson mean (a z-score with the right tails).

    >>> round(poisson_residual(0, 18.0), 2), round(poisson_residual(13, 3.0), 2)
    (-6.0, 4.26)
    """
    expected = max(expected, 0.5)
    deviance = 2.0 * (_xlogy(observed, expected) - (observed - expected))
    return math.copysign(math.sqrt(max(deviance, 0.0)), observed - expected)


def binomial_residual(hits: float, trials: float, rate: float) -> float:
    """The signed deviance residual of ``hits`` in ``trials`` against a binomial ``rate``.

    >>> round(binomial_residual(0, 100, 0.18), 2), round(binomial_residual(12, 25, 0.025), 2)
    (-6.3, 7.39)
    """
    rate = min(max(rate, 1e-3), 1 - 1e-3)
    deviance = 2.0 * (_xlogy(hits, trials * rate) + _xlogy(trials - hits, trials * (1 - rate)))
    return math.copysign(math.sqrt(max(deviance, 0.0)), hits - trials * rate)


@dataclass(frozen=True)
class Moved:
    """One signal that moved: its value over ``minutes`` minutes against its usual value, and by how much."""

    signal: str
    minutes: int
    value: float
    usual: float
    z: float

    def text(self) -> str:
        span = "the last minute" if self.minutes == 1 else f"the last {self.minutes} minutes"
        return (f"{self.signal} {self.value:.3g} over {span} against a usual {self.usual:.3g} "
                f"({self.z:+.1f} sd)")


class TrafficAnomalyDetector(base.AnomalyDetector):
    """Scores one scope's minutes (``{counter: count}``) by the signal that moved most, in standard deviations.

    Counters are those of :data:`COUNTERS`; a signal is scored when its
    counters are in ``x``. For each signal and each trailing span in
    ``windows`` (minutes, the current one included), the observed count (or
    the numerator given the denominator, for a rate) is compared with what the
    usual per-minute values (exponentially weighted means, ``fading_factor`` the new value's weight) expect (rates: ten times
    slower means of their two counts), as a signed deviance residual (Poisson for counts, binomial for rates: a z-score
    whose tails are right for small counts, so five minutes without an order
    where 18 were expected weigh -6 sd, not the normal approximation's -4.2),
    divided by the square root of the learned dispersion (weighted mean of
    ``z²`` over normal minutes, each minute adding at most 9; at least 1). Only the
    abnormal direction of a signal counts (conversion falling, declines rising,
    add-to-cart rate either way). Views count rising only: on simulated shops,
    falls of half the views within five minutes came every evening (sessions
    arrive in bursts and the hourly profile steps) and were most of the false
    alarms; a stopped checkout shows in the conversion rate, a broken producer in
    the dead letters. The score is the largest such ``z``; ``predict_one``
    says whether it reaches ``threshold``, :meth:`explain_one` which signals did.

    ``learn_one`` scores the minute first, then appends it to the trailing
    span; a minute leaves the span into the usual values only when no minute
    of the span was anomalous, so an incident does not become the usual, unless
    it lasts: after ``max_frozen`` minutes not learned, the level is taken as
    the new usual (else a shop that changed for good would alert forever). Scores
    are 0 until ``warmup`` minutes were learned. Memory: a few ``EWMean`` per
    counter and signal, two floats each, and the last ``max(windows)`` minutes (about 4 KB).

    >>> detector = TrafficAnomalyDetector(warmup=30)
    >>> usual = {"views": 100, "carts": 20, "orders": 8}
    >>> for minute in range(60):
    ...     detector.learn_one({"views": 100 + minute % 7 - 3, "carts": 20 + minute % 3 - 1, "orders": 8})
    >>> detector.predict_one(usual)
    False
    >>> broken = {"views": 100, "carts": 20, "orders": 0}
    >>> for minute in range(3):
    ...     detector.learn_one(broken)
    >>> detector.predict_one(broken)
    True
    >>> print(detector.explain_one(broken)[0].text())
    conversion_rate 0 over the last 4 minutes against a usual 0.418 (-9.3 sd)
    """

    MODEL = "TrafficAnomalyDetector"
    VERSION = 1

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"warmup": 5}

    def __init__(self, threshold: float = 6.0, windows: tuple[int, ...] = (1, 2, 3, 4, 5), fading_factor: float = 0.03,
                 warmup: int = 60, min_support: float = 3.0, max_frozen: int = 30) -> None:
        self.threshold = threshold
        self.windows = tuple(windows)
        self.fading_factor = fading_factor
        self.warmup = warmup
        self.min_support = min_support
        self.max_frozen = max_frozen
        #: Minutes in a row that left the span without being learned.
        self.frozen = 0
        #: Usual per-minute value of each counter (exponentially weighted mean), for counts.
        self._usual: dict[str, float] = {}
        #: The same, ten times slower, for rates: a rate holds through the day while counts follow its shape, and
        #: a rare numerator (declines at night) needs the longer memory.
        self._slow: dict[str, float] = {}
        #: Over-dispersion (weighted mean of z² over normal minutes) per ``signal/span``.
        self._dispersion: dict[str, float] = {}
        #: The last ``max(windows)`` minutes learned: (counts, anomalous).
        self._recent: deque[tuple[dict[str, float], bool]] = deque(maxlen=max(self.windows))
        self.minutes = 0
        self.anomalous = 0

    # -- scoring -----------------------------------------------------------

    def _moves(self, x: dict[str, Any]) -> list[Moved]:
        """Every scored (signal, span) of ``x`` as the next minute, worst first; raw z (no dispersion)."""
        counts = {name: float(value) for name, value in x.items() if name in COUNTERS}
        recent = list(self._recent)
        moves = []
        for span in self.windows:
            minutes = [counts, *(c for c, _ in recent[len(recent) - span + 1:])] if span > 1 else [counts]
            if len(minutes) < span:
                continue
            for signal in sorted(SIGNALS):
                numerator, denominator, _ = SIGNALS[signal]
                if numerator not in counts or (denominator is not None and denominator not in counts):
                    continue
                usual_num = self._usual.get(numerator)
                if usual_num is None:
                    continue
                observed = sum(m.get(numerator, 0.0) for m in minutes)
                if denominator is None:
                    expected = span * usual_num
                    z = poisson_residual(observed, expected)
                    value, usual = observed / span, usual_num
                else:
                    slow_num, usual_den = self._slow.get(numerator, 0.0), self._slow.get(denominator)
                    support = sum(m.get(denominator, 0.0) for m in minutes)
                    if usual_den is None or usual_den <= 0 or support < self.min_support:
                        continue
                    rate = min(1.0, slow_num / usual_den)
                    z = binomial_residual(min(observed, support), support, rate)
                    value, usual = observed / support, rate
                moves.append(Moved(signal, span, value, usual, z))
        return moves

    def _directed(self, move: Moved) -> float:
        """The move's z in its abnormal direction, over the learned dispersion."""
        direction = SIGNALS[move.signal][2]
        z = abs(move.z) if direction == "both" else (move.z if direction == "up" else -move.z)
        dispersion = self._dispersion.get(f"{move.signal}/{move.minutes}")
        return z / math.sqrt(max(1.0, dispersion if dispersion is not None else 1.0))

    def score_one(self, x: dict[str, Any]) -> float:
        """How many standard deviations the worst signal moved, ``x`` taken as the next minute (0 in warm-up)."""
        if self.minutes < self.warmup:
            return 0.0
        return max((self._directed(move) for move in self._moves(x)), default=0.0)

    def predict_one(self, x: dict[str, Any]) -> bool:
        """Whether ``x``, as the next minute, is anomalous."""
        return self.score_one(x) >= self.threshold

    def explain_one(self, x: dict[str, Any]) -> list[Moved]:
        """The signals that moved beyond ``threshold`` (worst first; one span per signal), z over dispersion."""
        if self.minutes < self.warmup:
            return []
        best: dict[str, Moved] = {}
        for move in self._moves(x):
            z = self._directed(move)
            if z >= self.threshold and (move.signal not in best or z > abs(best[move.signal].z)):
                best[move.signal] = Moved(move.signal, move.minutes, move.value, move.usual,
                                          math.copysign(z, move.z))
        return sorted(best.values(), key=lambda m: (-abs(m.z), m.signal))

    def usual(self) -> dict[str, float]:
        """The usual per-minute value of each signal (rates as a share)."""
        found = {}
        for signal, (numerator, denominator, _) in sorted(SIGNALS.items()):
            if denominator is None:
                if (num := self._usual.get(numerator)) is not None:
                    found[signal] = num
            elif (den := self._slow.get(denominator)) is not None and den > 0:
                found[signal] = min(1.0, self._slow.get(numerator, 0.0) / den)
        return found

    # -- learning ----------------------------------------------------------

    def learn_one(self, x: dict[str, Any]) -> None:
        """Score ``x`` as the next minute, then append it; the minute leaving the span becomes usual if its
        span was normal."""
        flagged = self.predict_one(x)
        if not flagged:
            for move in self._moves(x):
                key = f"{move.signal}/{move.minutes}"
                # Slowly, and at most 3 sd a minute: the start of an incident must not teach that moves are usual.
                self._dispersion[key] = self._faded(self._dispersion.get(key), min(move.z * move.z, MAX_DISPERSION_STEP),
                                                    self.fading_factor / 3)
        counts = {name: float(value) for name, value in x.items() if name in COUNTERS}
        if len(self._recent) == self._recent.maxlen:
            leaving = self._recent[0][0]
            if (not flagged and not any(anomalous for _, anomalous in self._recent)) or self.frozen >= self.max_frozen:
                self._learn_usual(leaving)
                self.frozen = 0
            else:
                self.frozen += 1
        elif not self._usual:
            self._learn_usual(counts)  # the very first minute seeds the usual values
        self._recent.append((counts, flagged))
        self.minutes += 1
        self.anomalous += flagged

    def _learn_usual(self, counts: dict[str, float]) -> None:
        for name in sorted(counts):
            self._usual[name] = self._faded(self._usual.get(name), counts[name])
            self._slow[name] = self._faded(self._slow.get(name), counts[name], self.fading_factor / 10)

    def _faded(self, mean: float | None, value: float, weight: float | None = None) -> float:
        """An exponentially weighted mean moved towards ``value`` (the first value starts it)."""
        return value if mean is None else mean + (self.fading_factor if weight is None else weight) * (value - mean)

    def metrics(self) -> dict[str, float]:
        return {"minutes": self.minutes, "anomalous_minutes": self.anomalous}

    # -- checkpoints -------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.MODEL, "version": self.VERSION, "params": {
                "threshold": self.threshold, "windows": list(self.windows), "fading_factor": self.fading_factor,
                "warmup": self.warmup, "min_support": self.min_support, "max_frozen": self.max_frozen},
            "usual": dict(sorted(self._usual.items())), "slow": dict(sorted(self._slow.items())), "dispersion": dict(sorted(self._dispersion.items())),
            "recent": [[counts, anomalous] for counts, anomalous in self._recent],
            "minutes": self.minutes, "anomalous": self.anomalous, "frozen": self.frozen,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_state_tag(state, cls.MODEL, cls.VERSION)
        params = dict(state["params"])
        params["windows"] = tuple(params["windows"])
        detector = cls(**params)
        detector._usual = dict(state["usual"])
        detector._slow = dict(state["slow"])
        detector._dispersion = dict(state["dispersion"])
        detector._recent.extend((dict(counts), bool(anomalous)) for counts, anomalous in state["recent"])
        detector.minutes, detector.anomalous, detector.frozen = state["minutes"], state["anomalous"], state["frozen"]
        return detector
