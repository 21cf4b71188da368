"""What one system's run reports, read the same way for every process: /proc of the process that did the work.

Throughput counts from the first to the last event the system handled (start-up,
group join and state recovery excluded); CPU is the process's user + system
time over that interval (all its threads), in cores; peak RSS is the kernel's
high-water mark of the process (``VmHWM``), start-up included. The broker and
Redis, shared by every system, are not counted.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (every thread)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3, utime 14, stime 15
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss_bytes(pid: int) -> int:
    """The peak resident set size of process ``pid`` (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


@dataclass(frozen=True)
class Measurement:
    """One system's run over ``events`` events.

    >>> m = Measurement("ceiling", events=300_000, seconds=2.0, cpu_seconds=1.9, peak_rss_bytes=52 << 20)
    >>> m.events_per_second, m.cores, m.peak_rss_mb
    (150000.0, 0.95, 52.0)
    """

    system: str
    events: int
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def cores(self) -> float:
        return round(self.cpu_seconds / self.seconds, 2)

    @property
    def peak_rss_mb(self) -> float:
        return round(self.peak_rss_bytes / 2**20, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        return cls(**data)


class RunClock:
    """Marks a process's first and last event, with its CPU time at each (read from /proc like any other pid)."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None

    def mark_first(self, now: float) -> None:
        if self.first is None:
            self.first = (now, cpu_seconds(self.pid))

    def mark_last(self, now: float) -> None:
        self.last = (now, cpu_seconds(self.pid))

    def measurement(self, system: str, events: int) -> Measurement:
        if self.first is None or self.last is None:
            raise RuntimeError(f"{system}: no event was handled")
        return Measurement(system, events, max(self.last[0] - self.first[0], 1e-9), self.last[1] - self.first[1],
                           peak_rss_bytes(self.pid))
