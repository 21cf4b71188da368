"""The shop's stock: inventory counts, restocks and planted sell-outs laid over the simulated stream.

:class:`StockKeeper` tracks the on-hand units of the shop's best sellers
(``SimulatorConfig.inventory_skus``, ranked by the units the run orders),
takes every ordered unit out, and sends a count of each SKU every
``COUNT_HOURS`` (staggered) on the ``inventory`` topic, keyed by SKU. Orders
are not changed: a SKU out of stock stays at 0 (back-orders).

* **Restocks** keep an ordinary SKU well stocked: at a count that finds less
  than ``REORDER_DAYS`` of its usual demand, it is refilled to
  ``TARGET_DAYS`` (and the count says so). A well-run shop never comes close
  to running out, so a ``restock`` alert on such a SKU is a false alarm.
* **Planted sell-outs** (``SimulatorConfig.sellouts``): at a planted time a
  count finds a SKU short (``PLANT_DAYS`` of usual demand left: shrinkage, a
  delivery that did not come) and it is not restocked until ``OUTAGE_HOURS``
  after it sold out. The ground truth records when each was planted and when
  it sold out (the order that took the last unit).

The usual demand is each SKU's units over the whole run per day (a first pass
over the same seeded stream). Memory: a few fields per tracked SKU and a heap
of their next counts.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from streams.tools.simulation.clock import DAY, HOUR, iso_ms

#: Hours between two counts of a SKU.
COUNT_HOURS = 2.0
#: An ordinary SKU is restocked when a count finds less than this many days of usual demand, up to TARGET_DAYS.
REORDER_DAYS = 4.0
TARGET_DAYS = 9.0
#: Days of usual demand a planted sell-out leaves (drawn uniformly between the two).
PLANT_DAYS = (2.5, 4.0)
#: A sold-out SKU is restocked at the first count this long after it sold out.
OUTAGE_HOURS = 12.0
#: Plants start after this much of the run (the forecasters learn a few seasons first) and leave this much after.
PLANT_AFTER_DAYS = 3.0
PLANT_BEFORE_END_DAYS = 5.0


@dataclass
class Sellout:
    """One planted sell-out."""

    sku: str
    planted_at: float
    on_hand_at_plant: int
    sold_out_at: float | None = None
    restocked_at: float | None = None

    def truth(self) -> dict[str, Any]:
        return {"sku": self.sku, "planted_at": self.planted_at, "on_hand_at_plant": self.on_hand_at_plant,
                "sold_out_at": self.sold_out_at, "restocked_at": self.restocked_at,
                "planted_at_iso": iso_ms(int(self.planted_at * 1000)),
                "sold_out_at_iso": None if self.sold_out_at is None else iso_ms(int(self.sold_out_at * 1000))}


def plan_sellouts(rng: random.Random, skus: list[str], count: int, start: float, end: float) -> list[tuple[float, str]]:
    """``count`` planted ``(time, sku)``, spread over the run; a SKU gets a second one only when every SKU has one."""
    first, last = start + PLANT_AFTER_DAYS * DAY, end - PLANT_BEFORE_END_DAYS * DAY
    if count and last <= first:
        raise ValueError(f"planted sell-outs need a run of more than {PLANT_AFTER_DAYS + PLANT_BEFORE_END_DAYS:g} days")
    chosen = [skus[i % len(skus)] for i in range(count)]
    rng.shuffle(chosen)
    times = sorted(rng.uniform(first, last) for _ in range(count))
    return list(zip(times, chosen))


class StockKeeper:
    """Lays inventory counts over a simulated stream (see the module docstring)."""

    def __init__(self, rng: random.Random, seed: int, daily_units: dict[str, float], sellouts: int,
                 start: float, end: float) -> None:
        self.rng = rng
        self.seed = seed
        self.daily = daily_units
        self.start, self.end = start, end
        self.on_hand = {sku: round(rate * rng.uniform(REORDER_DAYS, TARGET_DAYS)) for sku, rate in daily_units.items()}
        self.plans = plan_sellouts(rng, sorted(daily_units), sellouts, start, end)
        self.sellouts: list[Sellout] = []
        #: SKU -> its planted sell-out under way (not restocked until OUTAGE_HOURS after it sold out).
        self.short: dict[str, Sellout] = {}
        self.restocks = 0
        self.counts = 0
        self._numbers = 0

    def overlay(self, stream: Iterable[Any], event: type) -> Iterator[Any]:
        """``stream`` with the counts merged in, in event-time order (``event`` builds a ``SimEvent``).

        A count dated at the same instant as an order follows it (a count holds the orders dated up to it).
        """
        skus = sorted(self.daily)
        # (time, tie-break, sku, is a plant): scheduled counts and planted sell-outs, in time order.
        heap: list[tuple[float, int, str, bool]] = [
            (self.start + self.rng.uniform(0, COUNT_HOURS * HOUR), i, sku, False) for i, sku in enumerate(skus)]
        heap += [(t, len(skus) + i, sku, True) for i, (t, sku) in enumerate(self.plans)]
        heapq.heapify(heap)
        for sku in skus:
            yield self._count(event, sku, self.start)
        for message in stream:
            while heap and heap[0][0] < message.ts:
                yield from self._next(event, heap)
            if message.topic == "orders" and isinstance(message.value, dict):
                self._take(message.value, message.ts)
            yield message
        while heap and heap[0][0] < self.end:
            yield from self._next(event, heap)

    def _next(self, event: type, heap: list[tuple[float, int, str, bool]]) -> Iterator[Any]:
        t, i, sku, plant = heapq.heappop(heap)
        if plant:
            yield from self._plant(event, t, sku)
            return
        heapq.heappush(heap, (t + COUNT_HOURS * HOUR, i, sku, False))
        short = self.short.get(sku)
        if short is not None:
            if short.sold_out_at is not None and t >= short.sold_out_at + OUTAGE_HOURS * HOUR:
                del self.short[sku]
                short.restocked_at = int(t * 1000) / 1000  # as its count is dated
                self._restock(sku)
        elif self.on_hand[sku] < REORDER_DAYS * self.daily[sku]:
            self._restock(sku)
        yield self._count(event, sku, t)

    def _restock(self, sku: str) -> None:
        self.on_hand[sku] = max(self.on_hand[sku], round(TARGET_DAYS * self.daily[sku]))
        self.restocks += 1

    def _plant(self, event: type, t: float, sku: str) -> Iterator[Any]:
        if sku in self.short:  # still short from an earlier plant: this one is dropped
            return
        units = min(self.on_hand[sku], round(self.rng.uniform(*PLANT_DAYS) * self.daily[sku]))
        self.on_hand[sku] = units
        self.short[sku] = sellout = Sellout(sku, int(t * 1000) / 1000, units)
        self.sellouts.append(sellout)
        yield self._count(event, sku, t)

    def _take(self, order: dict[str, Any], t: float) -> None:
        for line in order["lines"]:
            sku = line["sku"]
            if sku in self.on_hand:
                self.on_hand[sku] = max(0, self.on_hand[sku] - line["quantity"])
                short = self.short.get(sku)
                if short is not None and short.sold_out_at is None and self.on_hand[sku] == 0:
                    short.sold_out_at = t

    def _count(self, event: type, sku: str, t: float) -> Any:
        self._numbers += 1
        self.counts += 1
        ms = int(t * 1000)
        value = {"event_id": f"inv-{self.seed}-{self._numbers}", "ts": iso_ms(ms), "sku": sku,
                 "on_hand": self.on_hand[sku]}
        return event("inventory", sku, value, ms / 1000)

    def truth(self) -> dict[str, Any]:
        """What was planted and done: tracked SKUs with their usual daily units, sell-outs, restocks."""
        return {"skus": {sku: round(rate, 3) for sku, rate in sorted(self.daily.items())},
                "sellouts": [s.truth() for s in self.sellouts], "restocks": self.restocks, "counts": self.counts,
                "count_hours": COUNT_HOURS, "reorder_days": REORDER_DAYS, "target_days": TARGET_DAYS}


def daily_units(orders: Iterable[dict[str, Any]], top: int, days: float) -> dict[str, float]:
    """The ``top`` SKUs by units ordered, with their units per day."""
    units: Counter[str] = Counter()
    for order in orders:
        for line in order["lines"]:
            units[line["sku"]] += line["quantity"]
    return {sku: total / days for sku, total in sorted(units.most_common(top))}
