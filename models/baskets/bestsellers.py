"""Best-sellers per scope (the whole shop, each customer segment): the recommendation fallbacks.

River parts: :class:`SegmentBestSellers` is a ``river.base.Estimator``
(River's ``clone``, ``repr``, parameters and estimator checks). Not River: the
decayed, capped per-scope unit counts (River's ``sketch.HeavyHitters`` counts
occurrences without event-time decay or scopes; a dict of floats per scope is
all this needs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from river import base

from models.base import check_state_tag


class SegmentBestSellers(base.Estimator):
    """Units sold per SKU within each scope, event-time decayed, bounded per scope.

    ``learn_one({"segment": 3, "ts": ..., "lines": [...]})`` counts an order's
    units under its segment (and under ``"global"``); ``predict_one(segment)``
    answers that scope's top SKUs. Counts fade with ``half_life`` seconds of
    event time, so what sells now rises. Memory: at most ``capacity`` SKUs per
    scope; when a scope overflows, the weakest half is dropped (an SKU that
    comes back starts from zero: an underestimate of at most the weakest kept
    count at that time).

    >>> best = SegmentBestSellers(top_n=2)
    >>> for sku, segment in [("A", 1), ("A", 1), ("B", 1), ("C", 2)]:
    ...     best.learn_one({"segment": segment, "ts": 0.0, "lines": [{"sku": sku, "quantity": 1}]})
    >>> best.predict_one(1), best.predict_one("global")[0]
    ([('A', 2.0), ('B', 1.0)], ('A', 2.0))
    """

    STATE = ("SegmentBestSellers", 1)

    @property
    def _supervised(self) -> bool:
        return False

    def __init__(self, top_n: int = 20, half_life: float | None = 7 * 86400.0, capacity: int = 2000) -> None:
        if top_n < 1 or capacity < 2 * top_n:
            raise ValueError("need top_n >= 1 and capacity >= 2 * top_n")
        self.top_n = top_n
        self.half_life = half_life
        self.capacity = capacity
        self.now = float("-inf")
        self.scopes: dict[str, dict[str, float]] = {}

    def _weight(self, ts: float) -> float:
        """An event's weight relative to ``now`` (weights are stored as of ``now``)."""
        if self.half_life is None or self.now == float("-inf"):
            return 1.0
        return 2.0 ** ((ts - self.now) / self.half_life)

    def learn_one(self, x: Mapping[str, Any], y: None = None) -> None:
        """Count the units of order record ``x`` under ``"global"`` and its ``segment``."""
        ts = float(x["ts"])
        if self.half_life is not None and ts > self.now:
            if self.now != float("-inf"):
                fade = 2.0 ** ((self.now - ts) / self.half_life)
                for counts in self.scopes.values():
                    for sku in counts:
                        counts[sku] *= fade
            self.now = ts
        weight = self._weight(ts)
        scopes = ["global"] if x.get("segment") is None else ["global", str(x["segment"])]
        for scope in scopes:
            counts = self.scopes.setdefault(scope, {})
            for line in x["lines"]:
                counts[line["sku"]] = counts.get(line["sku"], 0.0) + weight * line["quantity"]
            if len(counts) > self.capacity:
                kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: self.capacity // 2]
                self.scopes[scope] = dict(kept)

    def predict_one(self, x: Any) -> list[tuple[str, float]]:
        """The top SKUs of scope ``x`` (a segment id or ``"global"``), best first."""
        counts = self.scopes.get(str(x), {})
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: self.top_n]
        return [(sku, round(units, 6)) for sku, units in ranked]

    def metrics(self) -> dict[str, float]:
        """Scopes and SKUs counted."""
        return {"scopes": len(self.scopes), "skus": sum(len(c) for c in self.scopes.values())}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": self.STATE[1], "top_n": self.top_n,
                "half_life": self.half_life, "capacity": self.capacity,
                "now": None if self.now == float("-inf") else self.now,
                "scopes": {scope: dict(sorted(counts.items())) for scope, counts in sorted(self.scopes.items())}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_state_tag(state, *cls.STATE)
        best = cls(state["top_n"], state["half_life"], state["capacity"])
        best.now = float("-inf") if state["now"] is None else state["now"]
        best.scopes = {scope: dict(counts) for scope, counts in state["scopes"].items()}
        return best
