"""A partition snapshot this release cannot read starts the partition afresh instead of crashing its agent."""

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
