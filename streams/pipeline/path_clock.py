"""The event time a downstream stage has reached: the slowest of its upstream paths that are still talking.

Records reach a downstream stage (sales, anomaly, sessions) along many
paths: a raw topic partition through a customers partition (``clicks:3>1``).
One path can run behind another (in a replay, or while a worker catches up
after a restart), so the stage's **watermark** is the latest event time that
*every* path has reached, not the fastest. A path silent for
``idle_seconds`` of wall clock does not hold the others back (a quiet
partition would stall every window), but only while the stage has read its
own input to the end (:attr:`PathClock.backlog` false): a path not heard
from because its records wait further down a backlog is not idle (as Kafka
Streams waits ``max.task.idle.ms`` only on an empty buffer). When every path
is silent, the watermark is the latest event time any path reached. For the
first ``idle_seconds`` after a start (new or restored) there is no
watermark, so every live path is heard from before anything closes (ending
it once every customers partition had delivered made late events in a
backlog: the customers stage drains its partitions one after another, so a
path can stay silent upstream while the stage's own input is empty).

>>> now = [0.0]
>>> paths = PathClock(idle_seconds=10.0, clock=lambda: now[0])
>>> paths.heard("clicks:0>0", 100.0); paths.heard("orders:0>0", 40.0)
>>> now[0] = 10.0
>>> paths.watermark()                       # the slower path holds it
40.0
>>> paths.heard("clicks:0>0", 130.0)
>>> now[0] = 12.0                           # orders silent for 12 s: no longer waited for
>>> paths.watermark()
130.0
>>> paths.backlog = True                     # unless the stage has more input queued: no path is idle then
>>> paths.watermark()
40.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from streams.pipeline.packing import PackedBatch


def fold_packet(state: Any, batches: Iterable[PackedBatch]) -> Any:
    """Fold one internal message into a downstream stage's ``state`` (sales, anomaly, sessions): every batch
    added, then one ``tick``. Nothing closes half-way through a packet: a customers chunk packs each path's
    records of its event-time range into one batch, so a path first heard in the packet's second batch would
    find the windows of that range closed by the first batch's tick (late records, seen in a backfill)."""
    for batch in batches:
        state.add(batch)
    return state.tick()


class PathClock:
    """Per upstream path, the latest event time it delivered and when (wall clock) it last did."""

    def __init__(self, paths: dict[str, float] | None = None, idle_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        #: Per upstream path, the latest event time it delivered.
        self.paths = dict(paths or {})
        self.idle_seconds = idle_seconds
        self.clock = clock
        now = clock()
        # A restored path counts as just heard.
        self._heard = dict.fromkeys(self.paths, now)
        self.started = now
        #: Set by the stage: whether its input has more records queued than it has read (then no path is idle).
        self.backlog = False

    def heard(self, path: str, latest: float, now: float | None = None) -> None:
        """``path`` delivered records up to event time ``latest`` (its time never goes back)."""
        self.paths[path] = max(self.paths.get(path, latest), latest)
        self._heard[path] = self.clock() if now is None else now

    def warming(self, now: float) -> bool:
        """True for the first ``idle_seconds`` after a start, or while no path was heard."""
        return now - self.started < self.idle_seconds or not self.paths

    def active(self, now: float) -> list[float]:
        """The event times of the paths heard within ``idle_seconds`` (all of them while in a backlog)."""
        if self.backlog:
            return list(self.paths.values())
        return [ts for path, ts in self.paths.items() if now - self._heard.get(path, -math.inf) <= self.idle_seconds]

    def watermark(self, now: float | None = None) -> float | None:
        """The event time every path heard within ``idle_seconds`` has reached (every path idle: the latest);
        ``None`` while :meth:`warming`."""
        now = self.clock() if now is None else now
        if self.warming(now):
            return None
        active = self.active(now)
        return min(active) if active else max(self.paths.values())

    def to_state(self) -> dict[str, float]:
        return dict(sorted(self.paths.items()))
