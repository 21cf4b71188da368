"""When a stalled group makes the worker exit (the broker's view itself: tests/integration/test_group_watch.py)."""

from __future__ import annotations

import pytest

from streams.pipeline import group_watch
from streams.pipeline.group_watch import EXIT_STALLED, GroupWatch


class Exited(Exception):
    pass


@pytest.fixture
def exits(monkeypatch) -> list[int]:
    statuses: list[int] = []

    def record(status: int) -> None:
        statuses.append(status)
        raise Exited

    monkeypatch.setattr(group_watch.os, "_exit", record)
    return statuses


def stalled_watch(explained: list[bool]) -> GroupWatch:
    """A watch whose one group has had lag 7 and unmoved offsets since t=0 (stall time 30 s, exit after 100 s)."""
    watch = GroupWatch({}, {"g": ["t"]}, stall_seconds=30.0, probe_seconds=5.0, exit_after_seconds=100.0,
                       outside_cause=lambda: explained[-1])
    watch.lags["g"] = 7
    watch.detectors["g"].observe(lag=7, position=3, now=0.0)
    return watch


def test_an_unexplained_stall_exits_after_the_exit_time(exits) -> None:
    watch = stalled_watch([False])
    watch._exit_if_stuck(now=20.0)  # not stalled yet (30 s)
    watch._exit_if_stuck(now=40.0)  # stalled: the exit clock starts
    watch._exit_if_stuck(now=139.0)
    assert exits == []
    with pytest.raises(Exited):
        watch._exit_if_stuck(now=140.0)
    assert exits == [EXIT_STALLED]


def test_a_stall_with_an_outside_cause_waits_and_gets_the_whole_time_again_once_it_ends(exits) -> None:
    explained = [True]
    watch = stalled_watch(explained)
    for now in range(40, 500, 5):  # Redis away for minutes: waiting is right
        watch._exit_if_stuck(now=float(now))
    explained.append(False)
    watch._exit_if_stuck(now=500.0)
    watch._exit_if_stuck(now=599.0)
    assert exits == []
    with pytest.raises(Exited):
        watch._exit_if_stuck(now=600.0)


def test_no_exit_when_disabled_or_when_the_group_moves(exits) -> None:
    watch = stalled_watch([False])
    watch.exit_after_seconds = 0.0
    watch._exit_if_stuck(now=10_000.0)
    watch = stalled_watch([False])
    watch._exit_if_stuck(now=40.0)
    watch.detectors["g"].observe(lag=7, position=4, now=100.0)  # it moved: no stall until 130 s
    watch._exit_if_stuck(now=120.0)
    watch._exit_if_stuck(now=135.0)  # stalled again: a new exit clock
    watch._exit_if_stuck(now=234.0)
    assert exits == []
