"""Is this worker alive, and is it doing its job? (``/health``, ``/ready``, the worker metrics hash).

*Alive* means the process answers. *Ready* means it can do its work now; it is
not ready, with the reasons, while:

* a step is failing (Redis or the broker unreachable, see :mod:`.retry`);
* partitions are being rebalanced or its tables recovered;
* its input has lag and made no progress for ``stall_seconds`` (a stalled
  consumer, the most reported Faust failure): the ingest's input topics by
  read position, the stages' internal topics by committed (applied) position,
  so a stage blocked on a dependency that hangs (a frozen Redis) is a stall too;
* a consumer group of the app has lag and its committed offsets stand still, as the
  broker sees it (:mod:`.group_watch`): a consumer that left its group and never
  rejoined holds no partition, so its own lag reads 0.

>>> detector = StallDetector(stall_seconds=30)
>>> detector.observe(lag=0, position=100, now=0.0)
>>> detector.stalled(now=100.0)  # nothing to do is not a stall
False
>>> detector.observe(lag=50, position=100, now=100.0)
>>> detector.observe(lag=80, position=100, now=125.0)
>>> detector.stalled(now=125.0), detector.stalled(now=131.0)
(False, True)
>>> detector.observe(lag=10, position=170, now=131.5)  # it moved again
>>> detector.stalled(now=132.0)
False
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from streams.pipeline.retry import FAILING

if TYPE_CHECKING:
    from streams.pipeline.group_watch import GroupStall


@dataclass
class StallDetector:
    """Lag that does not move: consumed positions unchanged while there is input waiting."""

    stall_seconds: float
    #: Since when the input has waited without the position moving (None: not waiting or moving).
    waiting_since: float | None = None
    position: int = -1

    def observe(self, lag: int, position: int, now: float | None = None) -> None:
        """Note the current lag and the sum of consumed positions."""
        now = time.monotonic() if now is None else now
        if lag <= 0 or position != self.position:
            self.waiting_since = now if lag > 0 else None
        elif self.waiting_since is None:
            self.waiting_since = now
        self.position = position

    def stalled(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.waiting_since is not None and now - self.waiting_since >= self.stall_seconds


@dataclass
class Readiness:
    """Ready or not, and why not (one short reason each)."""

    reasons: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "reasons": self.reasons}


def readiness(rebalancing: bool, recovering: bool, detector: StallDetector, lag: int,
              group_stalls: Sequence[GroupStall] = ()) -> Readiness:
    """This worker's readiness from its state now (and the groups the broker says are stalled)."""
    result = Readiness()
    for name, failure in sorted(FAILING.items()):
        result.reasons.append(f"{name} failing for {time.time() - failure.since:.0f} s: {failure.reason}")
    if rebalancing:
        result.reasons.append("partitions are being rebalanced")
    if recovering:
        result.reasons.append("tables are being recovered")
    if detector.stalled():
        result.reasons.append(f"input stalled: lag {lag} and no progress for {detector.stall_seconds:.0f} s")
    result.reasons.extend(stall.reason() for stall in group_stalls)
    return result
