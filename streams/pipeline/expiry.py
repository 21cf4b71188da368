"""Bounded customers: eviction by event-time inactivity and a hard cap per partition.

**Policy.** Each internal partition of the ``customers`` table keeps a
:class:`PartitionClock`: its event-time *watermark* and its *horizon*. The
watermark is the event time every input has reached: the latest event time
folded from each upstream path (``topic:partition``) feeding the partition,
the least of those (never the wall clock), so a topic read behind the others
(a backfill topic by topic) holds it back instead of seeing its events
expire. The partition remembers exactly the customers last seen at or after
the horizon, and only events at or after it:

- **Inactivity.** The horizon follows the watermark at
  ``KAIROS_CUSTOMER_IDLE_DAYS`` behind it: a customer with no event for that
  long in event time is evicted.
- **Cap.** When a new customer would make the partition hold more than
  ``KAIROS_MAX_CUSTOMERS_PER_PARTITION`` customers, the least recently seen
  (event time; ties by id) are evicted until a sixteenth of the cap is free
  (so the scan that finds them runs once per cap/16 new customers): the
  horizon moves just past the last seen time of the newest one evicted
  (every customer last seen at that time goes too).
- An event older than the horizon is not applied: it is counted as
  ``expired`` in the ingest counters (its customer would be forgotten at
  once). A customer found last seen before the horizon is evicted on the
  spot, so whether the event-time sweep (``stages.customers``) has deleted it
  yet does not change any result.

An evicted customer leaves the table (a changelog tombstone, so a restart
does not bring it back) and the segmenter; its ``customer`` hash and its
``segment:customer`` key are deleted from Redis, so the served segment keys
and ``segment:sizes`` keep agreeing. If the customer comes back with a new
event, it starts anew (counters from zero).

**Redelivery.** An evicted customer's replay guard is gone with it, but it
is not needed: every event the customer had applied is dated at or before
its last seen time, which is before the horizon, and the horizon never moves
back (it is in the table, flushed with the tombstones). A redelivered old
event of an evicted customer is therefore dropped as ``expired``, never
applied twice.

**Determinism.** The clock moves with the events only (never the wall
clock): the same events arriving in the same order give the same evictions,
however they are batched and wherever the sweep has got to (a customer
found past the horizon is evicted on access). Arrival order across
paths matters only at the margins: an event more than the idle horizon
behind the slowest path's latest is dropped as expired, and the cap counts
customers as they arrive. A path that falls silent holds the watermark where
it stopped: idle eviction then waits for it (the cap still bounds memory).
A path seen for the first time after the others moved on by more than the
horizon cannot hold it back: its older events expire (the ingest's
event-time alignment across topics is what prevents that).

>>> clock = PartitionClock()
>>> clock.advance("clicks:0", 100 * DAY, idle_seconds=90 * DAY)
>>> clock.advance("orders:0", 120 * DAY, idle_seconds=90 * DAY)
>>> clock.watermark / DAY, clock.horizon / DAY, clock.expired(5 * DAY), clock.expired(10 * DAY)
(100.0, 10.0, True, False)
>>> clock.raise_horizon(20 * DAY)
>>> clock.expired(20 * DAY), clock.expired(20.001 * DAY)
(True, False)
"""

from __future__ import annotations

import math
from typing import Any

DAY = 86_400.0
#: Marks partition clocks in the customers table (customer ids cannot hold control characters).
CLOCK_KEY_PREFIX = "\x1fclock/"


def clock_key(partition: int) -> str:
    """Table key of the clock of internal ``partition``."""
    return f"{CLOCK_KEY_PREFIX}{partition}"


class PartitionClock:
    """One partition's event-time watermark (over its upstream paths), horizon and last completed sweep."""

    __slots__ = ("paths", "watermark", "horizon", "swept_at")

    def __init__(self, paths: dict[str, float] | None = None, horizon: float = -math.inf,
                 swept_at: float = -math.inf) -> None:
        #: Latest event time folded per upstream path.
        self.paths: dict[str, float] = dict(paths or {})
        self.watermark = min(self.paths.values(), default=-math.inf)
        self.horizon = horizon
        self.swept_at = swept_at

    def expired(self, ts: float) -> bool:
        """True for an event time (or a last seen time) before the horizon."""
        return ts < self.horizon

    def advance(self, path: str, ts: float, idle_seconds: float) -> None:
        """Fold the time of an event from ``path``: the watermark, and the horizon ``idle_seconds`` behind it."""
        latest = self.paths.get(path)
        if latest is None or ts > latest:
            self.paths[path] = ts
            if latest is None or latest == self.watermark:
                self.watermark = min(self.paths.values())
                self.horizon = max(self.horizon, self.watermark - idle_seconds)

    def raise_horizon(self, last_evicted: float) -> None:
        """Forget everything last seen at or before ``last_evicted`` (the cap)."""
        self.horizon = max(self.horizon, math.nextafter(last_evicted, math.inf))

    def sweep_due(self, every: float) -> float | None:
        """The event time of a sweep the watermark has reached and that has not run, if any."""
        if self.watermark == -math.inf:
            return None
        at = math.floor(self.watermark / every) * every
        return at if at > self.swept_at else None

    def to_state(self) -> dict[str, Any]:
        return {"kind": "clock", "paths": self.paths, "horizon": _finite(self.horizon),
                "swept_at": _finite(self.swept_at)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PartitionClock:
        def read(name: str) -> float:
            value = state.get(name)
            return -math.inf if value is None else float(value)

        return cls({str(path): float(ts) for path, ts in state["paths"].items()}, read("horizon"), read("swept_at"))


def _finite(value: float) -> float | None:
    return None if value == -math.inf else value
