"""Event-time alignment of the input partitions a worker reads.

Kafka orders nothing across topics or partitions: in a backfill, a consumer
group reset or behind a lagging producer, one topic can be days of event
time ahead of another. :class:`EventTimeAligner` sits between the ingest's
fetches and the stages and releases records in event-time order across every
partition it holds, as Kafka Streams does with timestamp-ordered task input
and ``max.task.idle.ms``:

* each partition is a FIFO (records of one partition are released in offset
  order, which the downstream replay guards rely on); the next record
  released is the head with the smallest event time;
* a partition with nothing buffered **holds the others back** at the event
  time of its last record while it may still send earlier events: while its
  consumer is not at its end offset (it has unread records), or, at its end,
  for ``idle_seconds`` of wall clock after it was last heard from (a live
  partition between two records). A partition at its end and silent longer
  than that is idle and holds nothing (a quiet topic must not stall the
  others): wall clock decides idleness only, never what a record means;
* a partition with ``max_buffered`` records waiting is **paused** (the
  consumer stops fetching it) until half of them are released, so memory is
  bounded by ``partitions × max_buffered`` records.

Records the validator rejected carry no event time (``None``): they are
released as soon as they reach the head of their partition.

The watermark (the event time up to which everything was released) and the
partition holding it are in :meth:`EventTimeAligner.report`, published with
the worker metrics.

>>> aligner = EventTimeAligner(idle_seconds=1.0, clock=lambda: 0.0)
>>> aligner.assign(["clicks", "orders"])
>>> aligner.add("clicks", [(10.0, "c10"), (20.0, "c20"), (30.0, "c30")], at_end=False)
>>> aligner.release()  # orders has sent nothing yet and has unread records: everything waits
[]
>>> aligner.add("orders", [(15.0, "o15")], at_end=True)
>>> [item for _, item in aligner.release()]  # orders, at its end, was heard just now: it holds at 15
['c10', 'o15']
>>> aligner.clock = lambda: 5.0  # ... until it has been silent for idle_seconds
>>> [item for _, item in aligner.release()]
['c20', 'c30']
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Partition = Hashable


class _Buffer(Generic[Item]):
    __slots__ = ("records", "last_ts", "heard", "at_end", "paused")

    def __init__(self, now: float) -> None:
        self.records: deque[tuple[float | None, Item]] = deque()
        #: Event time of the latest record received (-inf: none yet).
        self.last_ts = -math.inf
        #: Wall clock of the last fetch that returned records (or of the assignment).
        self.heard = now
        #: The consumer has read everything up to the partition's end (as of the last fetch).
        self.at_end = False
        self.paused = False


class EventTimeAligner(Generic[Item]):
    """Per-partition FIFOs released in event-time order (see the module docstring)."""

    def __init__(self, idle_seconds: float = 1.0, max_buffered: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.max_buffered = max_buffered
        self.clock = clock
        self.buffers: dict[Partition, _Buffer[Item]] = {}
        #: Event time of the latest record released (the stages' input watermark).
        self.watermark = -math.inf
        self.released = 0
        #: Records released although older than the watermark (a partition's own records out of order).
        self.behind = 0

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Start holding ``partitions`` (a new assignment); those already held keep their buffers."""
        now = self.clock()
        for partition in partitions:
            self.buffers.setdefault(partition, _Buffer(now))

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """Forget ``partitions`` and what they buffered (their new owner reads it again from the commit)."""
        for partition in partitions:
            self.buffers.pop(partition, None)

    def add(self, partition: Partition, records: Iterable[tuple[float | None, Item]], at_end: bool) -> None:
        """Buffer a fetch's ``(event time or None, item)`` of ``partition``; ``at_end``: nothing more to read now."""
        buffer = self.buffers.get(partition)
        if buffer is None:
            buffer = self.buffers[partition] = _Buffer(self.clock())
        received = False
        for ts, item in records:
            buffer.records.append((ts, item))
            received = True
            if ts is not None and ts > buffer.last_ts:
                buffer.last_ts = ts
        if received:
            buffer.heard = self.clock()
        buffer.at_end = at_end

    def mark_end(self, partition: Partition, at_end: bool) -> None:
        """Whether ``partition``'s consumer is at its end offset (for partitions a fetch returned nothing of)."""
        buffer = self.buffers.get(partition)
        if buffer is not None:
            buffer.at_end = at_end

    def _holds_at(self, buffer: _Buffer[Item], now: float) -> float | None:
        """The event time an empty partition holds the others back at, or ``None`` (it holds nothing)."""
        if buffer.at_end and now - buffer.heard > self.idle_seconds:
            return None
        return buffer.last_ts

    def release(self) -> list[tuple[Partition, Item]]:
        """Every record that can go now, in event-time order (rejects as soon as they are at their head)."""
        now = self.clock()
        limit = math.inf
        heads: list[tuple[float, int, Partition]] = []
        for order, (partition, buffer) in enumerate(self.buffers.items()):
            if buffer.records:
                heads.append((self._head_ts(buffer), order, partition))
            else:
                held = self._holds_at(buffer, now)
                if held is not None:
                    limit = min(limit, held)
        heapq.heapify(heads)
        out: list[tuple[Partition, Item]] = []
        while heads:
            ts, order, partition = heads[0]
            if ts > limit:
                break
            buffer = self.buffers[partition]
            record_ts, item = buffer.records.popleft()
            out.append((partition, item))
            if record_ts is not None:
                if record_ts < self.watermark:
                    self.behind += 1
                else:
                    self.watermark = record_ts
            if buffer.records:
                heapq.heapreplace(heads, (self._head_ts(buffer), order, partition))
            else:
                heapq.heappop(heads)
                held = self._holds_at(buffer, now)
                if held is not None:
                    limit = min(limit, held)
        self.released += len(out)
        return out

    @staticmethod
    def _head_ts(buffer: _Buffer[Item]) -> float:
        ts = buffer.records[0][0]
        return -math.inf if ts is None else ts

    def first_unreleased(self, partition: Partition) -> Item | None:
        """The oldest item of ``partition`` not released yet (its offset bounds the commit)."""
        buffer = self.buffers.get(partition)
        return buffer.records[0][1] if buffer is not None and buffer.records else None

    def to_pause(self) -> list[Partition]:
        """Partitions to pause now (full), marked paused."""
        full = [p for p, b in self.buffers.items() if not b.paused and len(b.records) >= self.max_buffered]
        for partition in full:
            self.buffers[partition].paused = True
        return full

    def to_resume(self) -> list[Partition]:
        """Paused partitions to resume now (half drained), marked resumed."""
        drained = [p for p, b in self.buffers.items() if b.paused and len(b.records) <= self.max_buffered // 2]
        for partition in drained:
            self.buffers[partition].paused = False
        return drained

    def buffered(self) -> int:
        return sum(len(buffer.records) for buffer in self.buffers.values())

    def holding(self) -> list[tuple[Partition, float]]:
        """The empty partitions holding the others back now, with the event time they hold at."""
        now = self.clock()
        found = []
        for partition, buffer in self.buffers.items():
            if not buffer.records:
                held = self._holds_at(buffer, now)
                if held is not None:
                    found.append((partition, held))
        return found

    def report(self) -> dict[str, Any]:
        """Figures for the worker metrics: watermark, buffered and paused counts, what holds the watermark."""
        waiting = [b for b in self.buffers.values() if b.records]
        holding = self.holding()
        behind_by = 0.0
        if waiting and holding:
            behind_by = max(0.0, min(self._head_ts(b) for b in waiting) - min(ts for _, ts in holding))
        return {
            "align_watermark": self.watermark if self.watermark > -math.inf else 0.0,
            "align_buffered": self.buffered(),
            "align_paused": sum(b.paused for b in self.buffers.values()),
            "align_holding": ",".join(sorted(f"{getattr(p, 'topic', p)}:{getattr(p, 'partition', '')}"
                                             for p, _ in holding)),
            "align_released": self.released,
            "align_behind": self.behind,
            "align_held_seconds": behind_by if math.isfinite(behind_by) else 0.0,
        }
