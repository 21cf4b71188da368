"""Opportunity alerts: item pairs whose support or lift jumps against their own history.

River parts: :class:`RisingPairs` is a ``river.base.Estimator`` (River's
``clone``, ``repr``, parameters and estimator checks; ``learn_one`` /
``predict_one`` on a snapshot of pairs). Not River: each pair's history is two
exponentially weighted means kept as two floats. River's ``stats.EWMean``
computes the same average, but one River object per pair and measure would
multiply the memory of thousands of tracked pairs and their checkpoint for
one line of arithmetic, and a pair's history starts from the support
threshold rather than from its first value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from river import base

from models.base import check_state_tag

TREND = "trend"


@dataclass(frozen=True)
class TrendAlert:
    """A pair bought together far more often (or more tightly) than it used to be."""

    items: tuple[str, str]
    ts: float
    support: float
    baseline_support: float
    lift: float
    #: ``None`` for a pair with no history (it was below the snapshot's support threshold).
    baseline_lift: float | None

    kind = TREND

    @property
    def score(self) -> float:
        """The larger jump: support over its baseline, or lift over its baseline."""
        lift_jump = self.lift / self.baseline_lift if self.baseline_lift else 0.0
        return max(self.support / self.baseline_support, lift_jump)

    def reasons(self) -> list[str]:
        """Why the alert was raised, in words."""
        reasons = [f"in {self.support:.2%} of baskets, against {self.baseline_support:.2%} before"]
        if self.baseline_lift is not None:
            reasons.append(f"lift {self.lift:.2f}, against {self.baseline_lift:.2f} before")
        return reasons

    def to_record(self) -> dict[str, Any]:
        """Plain data for the alerts stream: kind, subject, score, reasons, ts and the numbers."""
        return {
            "kind": self.kind,
            "subject": ",".join(self.items),
            "score": self.score,
            "reasons": self.reasons(),
            "ts": self.ts,
            "support": self.support,
            "baseline_support": self.baseline_support,
            "lift": self.lift,
            "baseline_lift": self.baseline_lift,
        }


class RisingPairs(base.Estimator):
    """Detect pairs whose support or lift jumps against their own history; one alert per pair per cooldown.

    One observation per window of event time (say every 15 minutes): the
    frequent pairs of a :class:`~models.baskets.counter.BasketCounter` at that
    moment with their support and lift, as built by :meth:`observation` from
    the counter's :meth:`~models.baskets.counter.BasketCounter.itemsets`. Use a
    counter with a ``half_life`` of a few windows, so its supports follow the
    recent baskets; each pair's history is an exponentially weighted mean
    (factor ``alpha`` per observation) of its support and lift, a much slower
    memory.

    A pair alerts when its support reaches ``ratio`` times its mean support,
    or its lift ``ratio`` times its mean lift, with lift at least
    ``min_lift``. A pair without history (it was below the snapshot's
    ``min_support`` until now) starts from ``min_support``, an upper bound of
    its past support, so a pair rising from nothing alerts once its support
    reaches ``ratio`` times the threshold and its mean (during warm-up a
    pair's history starts at its first support instead). Nothing alerts
    during the first ``warmup`` observations (every pair is new then), and a
    pair that alerted stays silent for ``cooldown`` seconds.
    :meth:`predict_one` tells the alerts an observation raises without
    learning it; :meth:`learn_one` then folds it in. With partitioned
    counters each partition watches the pairs it owns, so no pair alerts
    twice.

    Memory: one mean per pair of the latest observation (a pair that drops
    out is forgotten and starts again from the threshold) plus one timestamp
    per pair that alerted within the cooldown.

    >>> rising = RisingPairs(ratio=2.0, warmup=2)
    >>> calm = {"ts": 0.0, "min_support": 0.01, "pairs": [["beer", "crisps", 0.05, 1.5]]}
    >>> for hour in range(3):
    ...     rising.learn_one(calm | {"ts": hour * 3600.0})
    >>> spike = {"ts": 3 * 3600.0, "min_support": 0.01,
    ...          "pairs": [["beer", "crisps", 0.12, 2.1], ["gin", "tonic", 0.03, 6.0]]}
    >>> [(a.items, round(a.score, 1)) for a in rising.predict_one(spike)]
    [(('beer', 'crisps'), 2.4), (('gin', 'tonic'), 3.0)]
    """

    MODEL = "RisingPairs"
    VERSION = 1

    @property
    def _supervised(self) -> bool:
        return False

    def __init__(
        self, ratio: float = 2.0, alpha: float = 0.1, min_lift: float = 1.0, warmup: int = 4, cooldown: float = 86_400.0
    ) -> None:
        if ratio <= 1 or not 0 < alpha <= 1 or warmup < 0 or cooldown < 0:
            raise ValueError("need ratio > 1, 0 < alpha <= 1, warmup >= 0 and cooldown >= 0")
        self.ratio = ratio
        self.alpha = alpha
        self.min_lift = min_lift
        self.warmup = warmup
        self.cooldown = cooldown
        self._observations = 0
        self._alerts = 0
        #: a -> b -> [mean support, mean lift] for the pairs of the latest observation.
        self._history: dict[str, dict[str, list[float]]] = {}
        #: a -> b -> event time of the pair's last alert (within the cooldown).
        self._alerted: dict[str, dict[str, float]] = {}

    @staticmethod
    def observation(itemsets: Mapping[tuple[str, ...], float], ts: float, min_support: float) -> dict[str, Any]:
        """One observation from a counter's ``itemsets(min_support)`` at event time ``ts`` (lift from the singles)."""
        singles = {itemset[0]: support for itemset, support in itemsets.items() if len(itemset) == 1}
        pairs = [
            [a, b, support, support / (singles[a] * singles[b])]
            for (a, b), support in sorted((i, s) for i, s in itemsets.items() if len(i) == 2)
            if a in singles and b in singles
        ]
        return {"ts": ts, "min_support": min_support, "pairs": pairs}

    def predict_one(self, x: Mapping[str, Any]) -> list[TrendAlert]:
        """The alerts observation ``x`` raises, without learning it."""
        if self._observations < self.warmup:
            return []
        ts = x["ts"]
        alerts = []
        for a, b, support, lift in x["pairs"]:
            last = self._alerted.get(a, {}).get(b)
            if lift < self.min_lift or (last is not None and ts - last < self.cooldown):
                continue
            mean = self._history.get(a, {}).get(b)
            base_support, base_lift = (x["min_support"], None) if mean is None else mean
            alert = TrendAlert((a, b), ts, support, base_support, lift, base_lift)
            if alert.score >= self.ratio:
                alerts.append(alert)
        return alerts

    def learn_one(self, x: Mapping[str, Any], y: None = None) -> None:
        """Fold observation ``x`` in: remember its alerts, update each pair's means, forget absent pairs."""
        ts = x["ts"]
        for alert in self.predict_one(x):
            self._alerted.setdefault(alert.items[0], {})[alert.items[1]] = ts
            self._alerts += 1
        recent = {a: {b: t for b, t in row.items() if ts - t < self.cooldown} for a, row in self._alerted.items()}
        self._alerted = {a: row for a, row in recent.items() if row}
        history: dict[str, dict[str, list[float]]] = {}
        keep = 1.0 - self.alpha
        warm = self._observations >= self.warmup
        for a, b, support, lift in x["pairs"]:
            mean = self._history.get(a, {}).get(b) or [x["min_support"] if warm else support, lift]
            history.setdefault(a, {})[b] = [keep * mean[0] + self.alpha * support, keep * mean[1] + self.alpha * lift]
        self._history = history
        self._observations += 1

    def metrics(self) -> dict[str, float]:
        """Observations seen, alerts raised and pairs with a history."""
        return {
            "observations": self._observations,
            "alerts": self._alerts,
            "pairs_tracked": sum(len(row) for row in self._history.values()),
        }

    def _params(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "alpha": self.alpha,
            "min_lift": self.min_lift,
            "warmup": self.warmup,
            "cooldown": self.cooldown,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters, counters, pair means and alert times."""
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "params": self._params(),
            "observations": self._observations,
            "alerts": self._alerts,
            "history": {a: {b: list(m) for b, m in row.items()} for a, row in self._history.items()},
            "alerted": {a: dict(row) for a, row in self._alerted.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output."""
        check_state_tag(state, cls.MODEL, cls.VERSION)
        rising = cls(**state["params"])
        rising._observations = state["observations"]
        rising._alerts = state["alerts"]
        rising._history = {a: {b: list(m) for b, m in row.items()} for a, row in state["history"].items()}
        rising._alerted = {a: dict(row) for a, row in state["alerted"].items()}
        return rising
