"""Planted demand surges: a category or SKU selling several times its usual rate for a few hours."""

from __future__ import annotations

import random
from dataclasses import dataclass

from streams.tools.simulation.catalog import Catalog
from streams.tools.simulation.clock import DAY, HOUR, iso_s

#: Surges start after this much of the run (capped at 40% of it), so forecasters are warmed up.
WARMUP = 5 * DAY
#: Least time between the end of one surge and the start of the next. Two surges of one item half an hour
#: apart are one long surge to anyone watching (a detector's episode outlasts the gap), so none is planted closer.
GAP = 12 * HOUR


@dataclass(frozen=True, slots=True)
class Surge:
    """Orders holding ``key`` (a category or a SKU, per ``scope``) arrive ``factor`` times as often in [start, end).

    The simulator adds the extra orders as their own Poisson process with
    ``factor - 1`` times the expected ordinary rate, following the seasonality.
    """

    scope: str
    key: str
    start: float
    end: float
    factor: float

    def active(self, t: float) -> bool:
        """Whether the surge is on at ``t``."""
        return self.start <= t < self.end

    def covers(self, sku: str, catalog: Catalog) -> bool:
        """Whether selling ``sku`` counts as the surging demand."""
        return sku == self.key if self.scope == "sku" else catalog.category[sku] == self.key

    def truth(self) -> dict[str, str | float]:
        """The surge as ground truth: scope, key, ISO start and end, factor."""
        return {"scope": self.scope, "key": self.key, "start": iso_s(self.start), "end": iso_s(self.end),
                "factor": self.factor}


def plant_surges(
    rng: random.Random, catalog: Catalog, best_selling: list[str], count: int, start_ts: float, end_ts: float,
) -> list[Surge]:
    """Up to ``count`` surges of 3–8 hours starting between 08:00 and 16:00 UTC, at least :data:`GAP` apart.

    Scopes alternate category, SKU (one of the 10 best sellers), category, …;
    factors are 3–5. A run too short to hold them all gets fewer.

    >>> catalog = Catalog(random.Random(1), skus=40, categories=4)
    >>> start = 1_793_491_200.0
    >>> [s.scope for s in plant_surges(random.Random(2), catalog, catalog.skus, 2, start, start + 14 * DAY)]
    ['category', 'sku']
    """
    earliest = start_ts + min(WARMUP, 0.4 * (end_ts - start_ts))
    top_sellers = best_selling[:10]
    surges: list[Surge] = []
    for i in range(count):
        scope = "category" if i % 2 == 0 else "sku"
        key = rng.choice([c.name for c in catalog.categories]) if scope == "category" else rng.choice(top_sellers)
        for _ in range(50):
            hours = rng.uniform(3, 8)
            day = rng.uniform(earliest, end_ts)
            begin = day - day % DAY + rng.uniform(8, 16) * HOUR
            end = begin + hours * HOUR
            if earliest <= begin and end <= end_ts and all(end + GAP <= s.start or begin >= s.end + GAP for s in surges):
                surges.append(Surge(scope, key, begin, end, round(rng.uniform(3, 5), 2)))
                break
    return surges
