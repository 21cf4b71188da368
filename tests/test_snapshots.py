"""Partition snapshots: restored when asked or at recovery; one this release cannot read starts the partition afresh
instead of crashing its agent."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from models.base import check_state_tag
from streams.pipeline.snapshots import PartitionSnapshots, pack_state


class Counted:
    """A partition state of the current release (version 2)."""

    def __init__(self, count: int = 0) -> None:
        self.count = count

    def state_dict(self) -> dict[str, Any]:
        return {"model": "Counted", "version": 2, "count": self.count}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Counted:
        check_state_tag(state, "Counted", 2)
        return cls(state["count"])


def snapshots_holding(stored: dict[str, Any]) -> PartitionSnapshots:
    table = {"counted/0": pack_state(stored)}
    store = SimpleNamespace(get=table.get, table=SimpleNamespace(data=table))
    return PartitionSnapshots("counted", store, lambda partition: Counted(), Counted.from_state, interval=1.0)


def test_a_snapshot_of_this_release_is_restored() -> None:
    snapshots = snapshots_holding({"model": "Counted", "version": 2, "count": 7})
    assert snapshots.get(0).count == 7
    assert snapshots.snapshots_discarded == 0


def test_a_snapshot_of_an_older_release_is_replaced_by_a_new_state_and_counted() -> None:
    snapshots = snapshots_holding({"model": "Counted", "version": 1, "total": 7})
    assert snapshots.get(0).count == 0
    assert snapshots.snapshots_discarded == 1


def test_owned_partitions_with_a_snapshot_are_restored_before_any_event_and_the_others_wait_for_theirs() -> None:
    """A recovered stage restores what a restart left with nothing new to read (its last windows must still
    close); a partition with no snapshot is made by its first event (a new state's grace starts when made)."""
    snapshots = snapshots_holding({"model": "Counted", "version": 2, "count": 7})
    assert snapshots.restore_stored({0, 1}) == [0]
    assert snapshots.states[0].count == 7 and 1 not in snapshots.states
    snapshots.states[0].count = 8  # in memory: never restored over
    assert snapshots.restore_stored({0, 1}) == [] and snapshots.states[0].count == 8
