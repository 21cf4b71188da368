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
>>> aligner.release()  # orders, at its end, was heard just now: it holds at 15
['c10', 'o15']
>>> aligner.clock = lambda: 5.0  # ... until it has been silent for idle_seconds
>>> aligner.release()
['c20', 'c30']
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Callable, Hashable, Iterable
from operator import itemgetter
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Partition = Hashable
#: A buffered record: (running max of the partition's event times, partition rank, position, event time, item).
Record = tuple[float, Any, int, "float | None", Any]
_EFFECTIVE = itemgetter(0)


class _Buffer(Generic[Item]):
    __slots__ = ("records", "head", "last_ts", "heard", "at_end", "paused", "rank", "added")

    def __init__(self, now: float, rank: Any) -> None:
        #: Records from ``head`` on are waiting (released ones are dropped in bulk).
        self.records: list[Record] = []
        self.head = 0
        #: Event time of the latest record received (-inf: none yet); every record's effective time is the running
        #: max of its partition's event times, so a partition's records are in effective-time order.
        self.last_ts = -math.inf
        #: Wall clock of the last fetch that returned records (or of the assignment).
        self.heard = now
        #: The consumer has read everything up to the partition's end (as of the last fetch).
        self.at_end = False
        self.paused = False
        #: Breaks ties between partitions at the same event time, the same way in every run.
        self.rank = rank
        self.added = 0

    def __len__(self) -> int:
        return len(self.records) - self.head

    def take(self, count: int) -> list[Record]:
        taken = self.records[self.head:self.head + count]
        self.head += count
        if self.head > 4096 and self.head * 2 > len(self.records):
            del self.records[:self.head]
            self.head = 0
        return taken


class EventTimeAligner(Generic[Item]):
    """Per-partition FIFOs released in event-time order (see the module docstring)."""

    def __init__(self, idle_seconds: float = 1.0, max_buffered: int = 20_000,
                 clock: Callable[[], float] = time.monotonic, rank: Callable[[Partition], Any] = str) -> None:
        self.idle_seconds = idle_seconds
        self.max_buffered = max_buffered
        self.clock = clock
        self.rank = rank
        self.buffers: dict[Partition, _Buffer[Item]] = {}
        #: Event time of the latest record released (the stages' input watermark).
        self.watermark = -math.inf
        self.released = 0
        #: Records released although older than the watermark (a partition's own records out of order).
        self.behind = 0

    def _buffer(self, partition: Partition) -> _Buffer[Item]:
        buffer = self.buffers.get(partition)
        if buffer is None:
            buffer = self.buffers[partition] = _Buffer(self.clock(), self.rank(partition))
        return buffer

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Start holding ``partitions`` (a new assignment); those already held keep their buffers."""
        for partition in partitions:
            self._buffer(partition)

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """Forget ``partitions`` and what they buffered (their new owner reads it again from the commit)."""
        for partition in partitions:
            self.buffers.pop(partition, None)

    def add(self, partition: Partition, records: Iterable[tuple[float | None, Item]], at_end: bool) -> None:
        """Buffer a fetch's ``(event time or None, item)`` of ``partition``; ``at_end``: nothing more to read now."""
        buffer = self._buffer(partition)
        last, rank, position = buffer.last_ts, buffer.rank, buffer.added
        append = buffer.records.append
        for ts, item in records:
            if ts is not None and ts > last:
                last = ts
            append((last, rank, position, ts, item))
            position += 1
        if position != buffer.added:
            buffer.heard = self.clock()
        buffer.added, buffer.last_ts, buffer.at_end = position, last, at_end

    def mark_end(self, partition: Partition, at_end: bool) -> None:
        """Whether ``partition``'s consumer is at its end offset (for partitions a fetch returned nothing of)."""
        buffer = self.buffers.get(partition)
        if buffer is not None:
            buffer.at_end = at_end

    def _holds(self, buffer: _Buffer[Item], now: float) -> bool:
        """Whether an emptied ``buffer`` holds the others back (at its ``last_ts``): unread records, or heard lately."""
        return not buffer.at_end or now - buffer.heard <= self.idle_seconds

    def release(self) -> list[Item]:
        """Every record that can go now, in event-time order (rejects as soon as they are at their head).

        A partition's records go in offset order; between partitions, by event time (a record out of order in
        its own partition counts at the latest event time before it there, and goes right after that one).
        """
        now = self.clock()
        buffers = list(self.buffers.values())
        limit = min((b.last_ts for b in buffers if not len(b) and self._holds(b, now)), default=math.inf)
        counts: dict[int, int] = {}
        while True:  # a partition released to its end holds the others back at its last event time
            tighter = limit
            for i, buffer in enumerate(buffers):
                waiting = len(buffer)
                if waiting:
                    records = buffer.records
                    count = bisect_right(records, limit, lo=buffer.head, key=_EFFECTIVE) - buffer.head
                    counts[i] = count
                    if count == waiting and self._holds(buffer, now):
                        tighter = min(tighter, buffer.last_ts)
            if tighter >= limit:
                break
            limit = tighter
        out: list[Record] = []
        for i, count in counts.items():
            if count:
                out += buffers[i].take(count)
        if not out:
            return []
        out.sort()
        watermark, behind = self.watermark, 0
        for _, _, _, ts, _ in out:
            if ts is not None:
                if ts < watermark:
                    behind += 1
                else:
                    watermark = ts
        self.watermark, self.behind = watermark, self.behind + behind
        self.released += len(out)
        return [record[4] for record in out]

    def first_unreleased(self, partition: Partition) -> Item | None:
        """The oldest item of ``partition`` not released yet (its offset bounds the commit)."""
        buffer = self.buffers.get(partition)
        return buffer.records[buffer.head][4] if buffer is not None and len(buffer) else None

    def to_pause(self) -> list[Partition]:
        """Partitions to pause now (full), marked paused."""
        full = [p for p, b in self.buffers.items() if not b.paused and len(b) >= self.max_buffered]
        for partition in full:
            self.buffers[partition].paused = True
        return full

    def to_resume(self) -> list[Partition]:
        """Paused partitions to resume now (half drained), marked resumed."""
        drained = [p for p, b in self.buffers.items() if b.paused and len(b) <= self.max_buffered // 2]
        for partition in drained:
            self.buffers[partition].paused = False
        return drained

    def buffered(self) -> int:
        return sum(len(buffer) for buffer in self.buffers.values())

    def holding(self) -> list[tuple[Partition, float]]:
        """The empty partitions holding the others back now, with the event time they hold at."""
        now = self.clock()
        return [(p, b.last_ts) for p, b in self.buffers.items() if not len(b) and self._holds(b, now)]

    def report(self) -> dict[str, Any]:
        """Figures for the worker metrics: watermark, buffered and paused counts, what holds the watermark."""
        return {
            "align_watermark": self.watermark if self.watermark > -math.inf else 0.0,
            "align_buffered": self.buffered(),
            "align_paused": sum(b.paused for b in self.buffers.values()),
            "align_holding": ",".join(sorted(f"{getattr(p, 'topic', p)}:{getattr(p, 'partition', '')}"
                                             for p, _ in self.holding())),
            "align_released": self.released,
            "align_behind": self.behind,
        }
