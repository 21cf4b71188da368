"""The per-minute traffic anomaly detector: each signal against its usual value, in standard deviations.

River parts: :class:`TrafficAnomalyDetector` is a ``river.base.AnomalyDetector``
(``learn_one`` / ``score_one``, River's ``clone``, parameters and estimator
checks). Not River: the usual values are exponentially weighted means kept
as plain floats (River 0.26's ``stats.EWMean`` is a Rust object whose state
cannot be written into a plain-data checkpoint); and the score. River's
``anomaly.HalfSpaceTrees`` and a batch scikit-learn ``IsolationForest`` were
measured on the same per-minute signals of eight simulated shops
(``kairos bench --suite anomaly``, BENCHMARKS.md) and caught far fewer
planted incidents within five minutes at the same false-alarm budget: a
mass profile over the feature space cannot tell a five-minute drought of
orders at four orders a minute (a broken checkout) from the same drought at
night (normal), and cannot say *which* signal moved against *what* usual
value. Each signal here is a count or a rate of two counts, so its usual
variation is known (Poisson / binomial, times a learned over-dispersion): a
minute is scored by how many standard deviations its worst signal moved.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

from river import base

from models.base import check_state_tag

#: Signal name -> (numerator counter, denominator counter or None for a count, direction that is abnormal:
#: ``up``, ``down``, ``both``, or ``none`` for a signal shown against its usual value but never alerted on).
SIGNALS: dict[str, tuple[str, str | None, str]] = {
    "views": ("views", None, "none"),
    "payments": ("payments", None, "none"),
    "add_to_cart_rate": ("carts", "views", "both"),
    "conversion_rate": ("orders", "carts", "down"),
    "decline_rate": ("declined", "payments", "up"),
    "failure_rate": ("failed", "payments", "up"),
    "new_device_share": ("new_devices", "payments", "up"),
    "dead_letter_rate": ("dead", "events", "up"),
}
#: Rates whose numerator is not a share of the denominator's events but a count they lead to: an order is not one of
#: the minute's add-to-carts (it may follow one of minutes before, or none), so its count given the carts is Poisson
#: around the usual rate times the carts, not binomial (whose variance, ``n p (1 - p)``, is too small for it).
POISSON_RATES = frozenset({"conversion_rate"})
#: The counters a minute may carry (see :data:`SIGNALS`): ``declined`` counts payments the issuer declined,
#: ``failed`` those the gateway failed (version 1 counted both as declined).
COUNTERS = ("views", "carts", "orders", "payments", "declined", "failed", "new_devices", "dead", "events")
#: Largest squared residual one minute adds to a signal's learned dispersion.
MAX_DISPERSION_STEP = 9.0
#: Longest span scored (minutes), and each (signal, span)'s dispersion key.
MAX_SPAN = 60
_KEYS = {(signal, span): f"{signal}/{span}" for signal in SIGNALS for span in range(1, MAX_SPAN + 1)}


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
    usual per-minute values expect (exponentially weighted means,
    ``fading_factor`` the new minute's weight; rates use ten times slower means
    of their two counts: a rate holds through the day while counts follow its
    shape, and a rare numerator such as night-time declines needs the longer
    memory). Declines (the issuer's answer, usually ~2 % of payments, and what
    card testers get) and failures (the gateway's, usually ~0.5 %) are two
    signals: lumped together, a gateway failing half the card payments moved
    a 2.5 % rate by too little to tell within minutes on a small shop. The
    move is a signed deviance residual (Poisson for counts and for the
    conversion rate, whose orders are not a share of the same minute's
    add-to-carts (:data:`POISSON_RATES`); binomial for the other rates: a
    z-score whose tails are right for small counts, so five minutes without
    an order where 18 were expected weigh -6 sd, not the normal
    approximation's -4.2; exact binomial tails were measured instead and
    caught one incident fewer on the eight shops), divided by the square root of the learned
    dispersion (the weighted mean of the squared Pearson residual over normal
    minutes, each minute adding at most 9, at least 1). Only the abnormal
    direction counts: conversion falling; declines, failures, new devices and
    dead letters rising; the add-to-cart rate either way. The counts (views,
    payments) are shown against their usual values but not alerted on: their
    usual value trails the shop's daily shape (the simulator's hourly profile
    steps by up to 70 % on the hour), and on eight simulated shops those
    morning ramps were most of the false alarms, while the rates catch the
    same incidents (bots do not add to cart: the add-to-cart rate falls; card
    testers are declined). The score is the largest move; a minute is
    anomalous when a signal moved by its threshold (``signal_thresholds``,
    else ``threshold``); ``predict_one`` says whether one did,
    :meth:`explain_one` which.

    ``learn_one`` scores the minute, then appends it to the trailing span; a
    minute leaves the span into the usual values only when no minute of the
    span was anomalous, so an incident does not become the usual, unless it
    lasts: after ``max_frozen`` minutes not learned the level is taken as the
    new usual (else a shop that changed for good would alert forever). Scores
    are 0 until ``warmup`` minutes were learned. Memory: three floats per
    counter, one per signal and span, and the last ``max(windows)`` minutes
    (measured: about 6 KB for a shop-wide scope, 2.3 KB as a checkpoint).

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
    conversion_rate 0 over the last 4 minutes against a usual 0.401 (-8.0 sd)

    A signal may have its own threshold (here the conversion rate's is above its move):

    >>> strict = TrafficAnomalyDetector.from_state(detector.state_dict() | {"params": {
    ...     **detector.state_dict()["params"], "signal_thresholds": {"conversion_rate": 9.0}}})
    >>> strict.score_one(broken) > strict.threshold, strict.predict_one(broken)
    (True, False)
    """

    MODEL = "TrafficAnomalyDetector"
    VERSION = 2

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"warmup": 5}

    def __init__(self, threshold: float = 5.0, windows: tuple[int, ...] = (1, 2, 3, 4, 5),
                 fading_factor: float = 0.03, warmup: int = 60, min_support: float = 3.0,
                 max_frozen: int = 30, signal_thresholds: dict[str, float] | None = None) -> None:
        if not windows or not all(1 <= span <= MAX_SPAN for span in windows):
            raise ValueError(f"windows must be spans of 1 to {MAX_SPAN} minutes")
        self.threshold = threshold
        self.windows = tuple(windows)
        self.fading_factor = fading_factor
        self.warmup = warmup
        self.min_support = min_support
        self.max_frozen = max_frozen
        #: Signal -> its own threshold (the others: ``threshold``).
        self.signal_thresholds = dict(sorted((signal_thresholds or {}).items()))
        if unknown := set(self.signal_thresholds) - set(SIGNALS):
            raise ValueError(f"unknown signals {sorted(unknown)}")
        self._lowest = min([threshold, *self.signal_thresholds.values()])
        #: Usual per-minute value of each counter (weighted mean), for counts; ten times slower, for rates.
        self._usual: dict[str, float] = {}
        self._slow: dict[str, float] = {}
        #: Over-dispersion (weighted mean of the squared Pearson residual over normal minutes) per ``signal/span``.
        self._dispersion: dict[str, float] = {}
        #: The last ``max(windows)`` minutes learned: (counts, anomalous).
        self._recent: deque[tuple[dict[str, float], bool]] = deque(maxlen=max(self.windows))
        self.minutes = 0
        self.anomalous = 0
        #: Minutes in a row that left the span without being learned.
        self.frozen = 0
        #: Minutes learned into the usual values, and into the dispersions (the weights start at 1/n).
        self.learned = 0
        self.dispersed = 0

    # -- scoring -----------------------------------------------------------

    def _moves(self, x: dict[str, Any]) -> list[tuple[str, int, float, float, float, float, float]]:
        """Every scored (signal, span) of ``x`` as the next minute: ``(signal, span, value, usual, z, directed,
        pearson²)``, with ``z`` the raw deviance residual (0 in the normal direction), ``directed`` its size over
        the dispersion."""
        counts = {name: float(value) for name, value in x.items() if name in COUNTERS}
        if not any(counts.values()) and not any(any(minute.values()) for minute, _ in self._recent):
            return []  # a quiet scope: nothing rose, no rate has support (and nothing teaches the dispersion)
        usual, slow, dispersion, min_support = self._usual, self._slow, self._dispersion, self.min_support
        signals = [(signal, spec) for signal, spec in SIGNALS.items()
                   if spec[0] in counts and (spec[1] is None or spec[1] in counts) and spec[0] in usual]
        totals = dict(counts)
        earlier = [minute for minute, _ in reversed(self._recent)]
        moves = []
        for span in range(1, max(self.windows) + 1):
            if span > 1:
                if span - 2 >= len(earlier):
                    break
                for name, value in earlier[span - 2].items():
                    if name in totals:
                        totals[name] += value
            if span not in self.windows:
                continue
            for signal, (numerator, denominator, direction) in signals:
                observed = totals[numerator]
                if denominator is None:
                    typical = usual[numerator]
                    expected = variance = max(span * typical, 0.5)
                    value = observed / span
                else:
                    support = totals[denominator]
                    slow_den = slow.get(denominator, 0.0)
                    if slow_den <= 0 or support < min_support:
                        continue
                    typical = min(1.0, slow.get(numerator, 0.0) / slow_den)
                    expected = typical * support
                    if signal in POISSON_RATES:
                        variance = max(expected, 0.5)
                    else:
                        observed = min(observed, support)
                        bounded = min(max(typical, 1e-3), 1 - 1e-3)
                        variance = support * bounded * (1 - bounded)
                    value = observed / support
                deviation = observed - expected
                z = directed = 0.0
                abnormal = direction == "both" or (direction != "none" and (deviation > 0) == (direction == "up"))
                if deviation != 0 and abnormal:
                    z = (poisson_residual(observed, expected) if denominator is None or signal in POISSON_RATES
                         else binomial_residual(observed, support, typical))
                    spread = dispersion.get(_KEYS[signal, span], 1.0)
                    directed = abs(z) / math.sqrt(spread) if spread > 1.0 else abs(z)
                moves.append((signal, span, value, typical, z, directed, deviation * deviation / variance))
        return moves

    def _score(self, moves: list[tuple]) -> float:
        if self.minutes < self.warmup:
            return 0.0
        return max((move[5] for move in moves), default=0.0)

    def _explain(self, moves: list[tuple]) -> list[Moved]:
        if self.minutes < self.warmup:
            return []
        best: dict[str, Moved] = {}
        limits, threshold = self.signal_thresholds, self.threshold
        for signal, span, value, typical, z, directed, _ in moves:
            if directed >= limits.get(signal, threshold) and (signal not in best or directed > abs(best[signal].z)):
                best[signal] = Moved(signal, span, value, typical, math.copysign(directed, z))
        return sorted(best.values(), key=lambda m: (-abs(m.z), m.signal))

    def score_one(self, x: dict[str, Any]) -> float:
        """How many standard deviations the worst signal moved, ``x`` taken as the next minute (0 in warm-up)."""
        return self._score(self._moves(x))

    def predict_one(self, x: dict[str, Any]) -> bool:
        """Whether ``x``, as the next minute, is anomalous: a signal moved by its threshold."""
        return bool(self.explain_one(x))

    def explain_one(self, x: dict[str, Any]) -> list[Moved]:
        """The signals that moved beyond their threshold (worst first; one span per signal), z over dispersion."""
        return self._explain(self._moves(x))

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
        """Score ``x`` as the next minute, then append it (see :meth:`observe`)."""
        self.observe(x)

    def observe(self, x: dict[str, Any]) -> tuple[float, list[Moved]]:
        """Score ``x`` as the next minute and learn it, in one pass: its score and the signals that moved beyond
        the threshold. The minute leaving the span becomes usual if its span was normal."""
        moves = self._moves(x)
        score = self._score(moves)
        moved = self._explain(moves) if score >= self._lowest else []
        flagged = bool(moved)
        if not flagged:
            self.dispersed += 1
            weight = max(self.fading_factor / 3, 1 / self.dispersed)
            dispersion = self._dispersion
            for signal, span, *_, pearson in moves:
                key = _KEYS[signal, span]
                # Slowly, and at most 3 sd a minute: the start of an incident must not teach that moves are usual.
                step = pearson if pearson < MAX_DISPERSION_STEP else MAX_DISPERSION_STEP
                spread = dispersion.get(key)
                dispersion[key] = step if spread is None else spread + weight * (step - spread)
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
        return score, moved

    def _learn_usual(self, counts: dict[str, float]) -> None:
        """Move the usual values towards one minute's counts: by ``1/n`` for the ``n``-th minute learned, then by the
        fading factor (so the first minutes weigh as a plain mean, not the very first one as all of the past)."""
        self.learned += 1
        fast, slow = max(self.fading_factor, 1 / self.learned), max(self.fading_factor / 10, 1 / self.learned)
        for name in sorted(counts):
            self._usual[name] = self._faded(self._usual.get(name), counts[name], fast)
            self._slow[name] = self._faded(self._slow.get(name), counts[name], slow)

    @staticmethod
    def _faded(mean: float | None, value: float, weight: float) -> float:
        """A weighted mean moved towards ``value`` by ``weight`` (the first value starts it)."""
        return value if mean is None else mean + weight * (value - mean)

    def metrics(self) -> dict[str, float]:
        return {"minutes": self.minutes, "anomalous_minutes": self.anomalous}

    # -- checkpoints -------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.MODEL, "version": self.VERSION, "params": {
                "threshold": self.threshold, "windows": list(self.windows), "fading_factor": self.fading_factor,
                "warmup": self.warmup, "min_support": self.min_support, "max_frozen": self.max_frozen,
                "signal_thresholds": dict(self.signal_thresholds)},
            "usual": dict(sorted(self._usual.items())), "slow": dict(sorted(self._slow.items())),
            "dispersion": dict(sorted(self._dispersion.items())),
            "recent": [[counts, anomalous] for counts, anomalous in self._recent],
            "minutes": self.minutes, "anomalous": self.anomalous, "frozen": self.frozen, "learned": self.learned,
            "dispersed": self.dispersed,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output, of this version or of version 1 (failures counted as declines:
        see :func:`_from_version_1`)."""
        if state.get("model") == cls.MODEL and state.get("version") == 1:
            state = _from_version_1(state, cls.VERSION)
        check_state_tag(state, cls.MODEL, cls.VERSION)
        params = dict(state["params"])
        params["windows"] = tuple(params["windows"])
        detector = cls(**params)
        detector._usual = dict(state["usual"])
        detector._slow = dict(state["slow"])
        detector._dispersion = dict(state["dispersion"])
        detector._recent.extend((dict(counts), bool(anomalous)) for counts, anomalous in state["recent"])
        detector.minutes, detector.anomalous, detector.frozen = state["minutes"], state["anomalous"], state["frozen"]
        detector.learned, detector.dispersed = state["learned"], state["dispersed"]
        return detector


#: Share of a version-1 checkpoint's usual declines taken as failures (the simulator's legitimate payments: 2 %
#: declined, 0.5 % failed).
V1_FAILED_SHARE = 0.2


def _from_version_1(state: dict[str, Any], version: int) -> dict[str, Any]:
    """A version-1 state as version ``version``: version 1 counted gateway failures as declines. Its usual declines
    are split into declines and failures (:data:`V1_FAILED_SHARE`), so ``failure_rate`` is scored at once against a
    plausible usual value, not against the first minute's count; its dispersions start at 1. The trailing minutes
    keep their lumped declines (at most ``max(windows)`` minutes).

    >>> old = {"usual": {"payments": 5.0, "declined": 0.125}, "slow": {"payments": 5.0, "declined": 0.125}}
    >>> new = _from_version_1({"model": "TrafficAnomalyDetector", "version": 1, **old}, 2)
    >>> new["version"], new["usual"]["declined"], new["usual"]["failed"]
    (2, 0.1, 0.025)
    """
    migrated = dict(state, version=version)
    for name in ("usual", "slow"):
        means = dict(state[name])
        if "declined" in means:
            lumped = means["declined"]
            means["failed"] = lumped * V1_FAILED_SHARE
            means["declined"] = lumped - means["failed"]
        migrated[name] = means
    return migrated
