"""The best-selling SKUs by units, in bounded memory."""

from __future__ import annotations

import heapq
from typing import Any, Self

from models.base import check_state_tag


class TopSkus:
    """The ``top`` best-selling SKUs by units sold, tracked with a Space-Saving summary.

    The summary keeps at most ``capacity`` counters (default ``10 x top``): a
    new SKU arriving when it is full takes over the smallest counter, so any SKU
    selling more than ``1 / capacity`` of all units is always counted, with an
    over-estimate of at most the smallest counter (Metwally, Agrawal & El Abbadi,
    2005). The top set holds the ``top`` SKUs with the largest counters: a SKU
    joins it when its counter passes the smallest counter inside, which it then
    displaces. :meth:`add` returns the SKUs that left the top set.

    Memory: ``capacity`` counters and a heap over them; each update costs
    ``O(log capacity)`` amortized, plus ``O(top)`` when a SKU may enter the top.

    >>> top = TopSkus(top=2, capacity=4)
    >>> for sku, units in [("A", 5), ("B", 3), ("C", 1)]:
    ...     top.add(sku, units)
    []
    []
    []
    >>> top.add("C", 4)  # C (5 units) passes B (3 units)
    ['B']
    >>> sorted(top)
    ['A', 'C']
    """

    MODEL = "TopSkus"
    VERSION = 1

    def __init__(self, top: int = 50, capacity: int | None = None) -> None:
        capacity = 10 * top if capacity is None else capacity
        if top < 1 or capacity < top:
            raise ValueError("need top >= 1 and capacity >= top")
        self.top = top
        self.capacity = capacity
        self._counts: dict[str, float] = {}
        # (count when pushed, sku): one entry per counted SKU; counts only grow, so a
        # popped entry whose count is stale is pushed back with its current count.
        self._heap: list[tuple[float, str]] = []
        self._top: set[str] = set()
        # A lower bound of the smallest count inside the top set.
        self._floor = 0.0

    def __contains__(self, sku: object) -> bool:
        return sku in self._top

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._top))

    def __len__(self) -> int:
        return len(self._top)

    def count(self, sku: str) -> float:
        """Units counted for ``sku`` (an over-estimate by at most the smallest counter; 0 if not counted)."""
        return self._counts.get(sku, 0.0)

    def add(self, sku: str, units: float) -> list[str]:
        """Count ``units`` sold of ``sku``; return the SKUs that left the top set (oldest first)."""
        left: list[str] = []
        if sku in self._counts:
            self._counts[sku] += units
        else:
            inherited = 0.0
            if len(self._counts) >= self.capacity:
                evicted, inherited = self._evict_smallest()
                if evicted in self._top:
                    self._top.discard(evicted)
                    left.append(evicted)
            self._counts[sku] = inherited + units
            heapq.heappush(self._heap, (self._counts[sku], sku))
        if sku not in self._top:
            left.extend(self._offer(sku))
        return left

    def _evict_smallest(self) -> tuple[str, float]:
        while True:
            pushed, sku = heapq.heappop(self._heap)
            current = self._counts[sku]
            if current == pushed:
                del self._counts[sku]
                return sku, current
            heapq.heappush(self._heap, (current, sku))

    def _offer(self, sku: str) -> list[str]:
        count = self._counts[sku]
        if len(self._top) < self.top:
            self._top.add(sku)
            self._floor = min(self._floor, count) if len(self._top) > 1 else count
            return []
        if count <= self._floor:
            return []
        weakest = min(self._top, key=lambda s: (self._counts[s], s))
        self._floor = self._counts[weakest]
        if count <= self._floor:
            return []
        self._top.discard(weakest)
        self._top.add(sku)
        self._floor = min(self._counts[s] for s in self._top)
        return [weakest]

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters, counters and the top set."""
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "top": self.top,
            "capacity": self.capacity,
            "counts": dict(sorted(self._counts.items())),
            "members": sorted(self._top),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output."""
        check_state_tag(state, cls.MODEL, cls.VERSION)
        top = cls(state["top"], state["capacity"])
        top._counts = dict(state["counts"])
        top._heap = sorted((count, sku) for sku, count in top._counts.items())
        top._top = set(state["members"])
        top._floor = min((top._counts[s] for s in top._top), default=0.0)
        return top
