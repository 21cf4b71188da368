"""Event-time alignment of input partitions (streams/pipeline/alignment.py)."""

from __future__ import annotations

import random

from streams.pipeline.alignment import EventTimeAligner


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_backfill_of_topics_sent_one_after_the_other_comes_out_in_event_time_order() -> None:
    clock = Clock()
    aligner = EventTimeAligner(idle_seconds=1.0, max_buffered=1000, clock=clock)
    aligner.assign(["clicks", "orders"])
    clicks = [(float(t), f"c{t}") for t in range(0, 100, 2)]
    orders = [(float(t), f"o{t}") for t in range(1, 100, 2)]
    released = []
    # Fetches come in uneven slices, one topic well ahead of the other; neither is at its end until the last.
    for start in range(0, 50, 10):
        aligner.add("clicks", clicks[start:start + 10], at_end=start == 40)
        released += aligner.release()
    for start in range(0, 50, 7):
        aligner.add("orders", orders[start:start + 7], at_end=start + 7 >= 50)
        released += aligner.release()
    clock.now = 5.0  # both at their end and silent: the last records go
    released += aligner.release()
    assert released == [item for _, item in sorted(clicks + orders)]
    assert aligner.behind == 0 and aligner.buffered() == 0


def test_a_partition_keeps_its_own_order_and_rejects_go_at_their_turn() -> None:
    clock = Clock()
    aligner = EventTimeAligner(idle_seconds=0.5, clock=clock)
    aligner.assign(["a", "b"])
    aligner.add("a", [(5.0, "a5"), (None, "a-bad"), (3.0, "a3")], at_end=True)  # out of order within "a"
    aligner.add("b", [(4.0, "b4")], at_end=True)
    assert aligner.release() == ["b4"]  # b, at its end, may still send before 5
    clock.now = 1.0
    assert aligner.release() == ["a5", "a-bad", "a3"]
    assert aligner.behind == 1  # a3 came after a5: released in offset order, counted


def test_a_partition_running_ahead_is_paused_until_half_drained_and_memory_stays_bounded() -> None:
    clock = Clock()
    aligner = EventTimeAligner(idle_seconds=1.0, max_buffered=100, clock=clock)
    aligner.assign(["fast", "slow"])
    aligner.add("fast", [(float(t), t) for t in range(1000, 1150)], at_end=False)
    assert aligner.release() == [] and aligner.to_pause() == ["fast"] and aligner.to_pause() == []
    aligner.add("slow", [(float(t), t) for t in range(0, 1100)], at_end=False)
    released = aligner.release()
    assert len(released) == 1100 + 100 and released[-1] == 1099  # slow holds at 1099
    assert aligner.to_resume() == ["fast"]  # 50 left of 100: half drained
    aligner.add("slow", [(2000.0, 2000)], at_end=True)
    assert aligner.release() == list(range(1100, 1150))  # fast, not at its end, holds 2000


def test_revoked_partitions_forget_what_they_buffered() -> None:
    aligner = EventTimeAligner(idle_seconds=1.0, clock=Clock())
    aligner.assign(["a", "b"])
    aligner.add("a", [(1.0, "a1")], at_end=False)
    assert aligner.first_unreleased("a") == "a1"
    aligner.revoke(["b"])  # b held everything back; gone, it holds nothing
    assert aligner.release() == ["a1"]


def test_a_buffer_outliving_its_partitions_revocation_is_dropped_and_stops_holding_the_rest() -> None:
    """The ingest drops, each fetch round, what it keeps of partitions no longer assigned: left in the aligner, a
    drained one would hold the others back at its last event time for good (never fetched or at its end again)."""
    from aiokafka import TopicPartition

    from streams.pipeline.ingest import Ingestor
    from streams.settings import KairosSettings

    a, b, c = (TopicPartition("clicks", p) for p in range(3))
    ingest = Ingestor(KairosSettings())
    aligner = ingest.aligner = EventTimeAligner(idle_seconds=1.0, clock=Clock())
    aligner.assign([a, b, c])
    aligner.add(a, [(1.0, "a1"), (9.0, "a9")], at_end=False)
    aligner.add(b, [(5.0, "b5")], at_end=False)
    aligner.add(c, [(2.0, "c2"), (7.0, "c7")], at_end=False)
    ingest.positions.update({a: 2, b: 1, c: 2})
    assert aligner.release() == ["a1", "c2", "b5"]  # b, drained and not at its end, holds the rest at 5
    assert aligner.release() == []
    ingest._forget_unassigned({a, c})  # b is no longer assigned: never fetched again
    assert b not in aligner.buffers and ingest.positions == {a: 2, c: 2} and ingest.orphans == 1
    ingest._forget_unassigned({a, c})
    assert ingest.orphans == 1
    assert aligner.first_unreleased(a) == "a9" and aligner.first_unreleased(c) == "c7"  # kept, in order
    assert aligner.release() == ["c7"]  # c, drained and not at its end, now holds a at 7


def test_any_interleaving_of_the_same_partitions_releases_the_same_sequence() -> None:
    rng = random.Random(5)
    streams = {p: sorted((rng.uniform(0, 1000), f"{p}{i}") for i in range(200)) for p in "abc"}
    expected = [item for _, item in sorted((ts, item) for records in streams.values() for ts, item in records)]
    for trial in range(5):
        clock = Clock()
        aligner = EventTimeAligner(idle_seconds=1.0, max_buffered=10_000, clock=clock)
        aligner.assign(list(streams))
        cursors = dict.fromkeys(streams, 0)
        out = []
        while any(cursors[p] < len(streams[p]) for p in streams):
            p = rng.choice([p for p in streams if cursors[p] < len(streams[p])])
            n = rng.randint(1, 40)
            chunk = streams[p][cursors[p]:cursors[p] + n]
            cursors[p] += len(chunk)
            aligner.add(p, chunk, at_end=cursors[p] == len(streams[p]))
            out += aligner.release()
        clock.now = 10.0
        out += aligner.release()
        assert out == expected, trial
