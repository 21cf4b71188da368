"""Are this app's consumer groups moving? Asked of the broker, not of this worker's own consumers.

A worker's own stall detector (:mod:`.health`) sees lag on the partitions its
consumers hold. A consumer that lost its group and never rejoined (the most
reported Faust failure, faust-streaming #175/#640; seen here once after a
machine-wide pause) holds no partition, so it sees no lag and looks idle.
The broker still knows: the group's committed offsets stand still while the
topics' ends move on. Every ``probe_seconds`` the watch asks the broker, with
a group-less client, for each group's committed offsets and its topics' end
offsets, and reports a group as *stalled* when it has lag and none of its
committed offsets moved for ``stall_seconds``. A probe the broker does not
answer within ``PROBE_TIMEOUT_SECONDS`` (a frozen or unreachable broker) is a
failing step (:mod:`.retry`): one log line when it starts, one when it ends,
and ``/ready`` says so.

A group stalled while nothing fails (the broker answers, Redis answers, no
table is being recovered) has no outside cause, and waiting does not fix
it: after ``exit_after_seconds`` (``KAIROS_WORKER_EXIT_AFTER_STALL_SECONDS``,
0 = never) the worker logs one line and exits with :data:`EXIT_STALLED`, so
that its supervisor restarts it. Nothing is lost by that exit: like a
SIGKILL, it acknowledges nothing it did not apply.

What it does not see: one partition held by a member that consumes nothing
while the group's other partitions move (the owner's own detector sees
that one).

A partition one offset behind does not count towards a stall: the last offset
of a topic written by a transactional producer is a commit marker that no
consumer reads or commits past.

>>> lags = GroupLag.of(ends={0: 10, 1: 5, 2: 7}, committed={0: 4, 1: -1, 2: 6}, beginnings={0: 0, 1: 2, 2: 0})
>>> lags.lag, lags.waiting, lags.position  # partition 1 has no commit yet: its lag counts from its beginning
(10, 9, 10)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from mode import Service

from streams.pipeline.health import StallDetector
from streams.pipeline.retry import record_failure, record_success

log = logging.getLogger(__name__)

#: A probe the broker has not answered within this long counts as a failure ("broker probe failing").
PROBE_TIMEOUT_SECONDS = 5.0
#: The worker's exit status after a stall with no outside cause (EX_TEMPFAIL: try again).
EXIT_STALLED = 75
PROBE_STEP = "broker probe"


@dataclass(frozen=True)
class GroupLag:
    """A group's lag over its topics' partitions, and the sum of its committed offsets (moves with progress)."""

    lag: int
    #: The lag of the partitions more than one offset behind (what a stall is judged on).
    waiting: int
    position: int

    @classmethod
    def of(cls, ends: dict[Any, int], committed: dict[Any, int], beginnings: dict[Any, int]) -> GroupLag:
        """From end offsets, committed offsets (-1: none yet) and beginning offsets, per partition."""
        lag = waiting = position = 0
        for tp, end in ends.items():
            offset = committed.get(tp, -1)
            position += max(offset, 0)
            behind = max(0, end - (offset if offset >= 0 else beginnings.get(tp, 0)))
            lag += behind
            waiting += behind if behind > 1 else 0
        return cls(lag, waiting, position)


@dataclass(frozen=True)
class GroupStall:
    """A group with lag whose committed offsets have not moved: for how long, and how far behind."""

    group: str
    lag: int
    seconds: float

    def reason(self) -> str:
        return (f"consumer group {self.group}: lag {self.lag} and no committed offset moved for "
                f"{self.seconds:.0f} s")


class GroupWatch(Service):
    """Probes the broker for each group's committed offsets and its topics' ends; see the module doc."""

    def __init__(self, client_options: dict[str, Any], groups: dict[str, list[str]], stall_seconds: float,
                 probe_seconds: float, exit_after_seconds: float = 0.0,
                 outside_cause: Callable[[], bool] = lambda: False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client_options = client_options
        #: Group id -> the topics it consumes.
        self.groups = groups
        self.probe_seconds = probe_seconds
        self.exit_after_seconds = exit_after_seconds
        #: Whether something outside the group explains a stall now (a failing step, a recovery).
        self.outside_cause = outside_cause
        self.detectors = {group: StallDetector(stall_seconds) for group in groups}
        self.lags: dict[str, int] = dict.fromkeys(groups, 0)
        #: Since when a stall has lasted with no outside cause (None: no such stall now).
        self.unexplained_since: float | None = None
        self.admin: AIOKafkaAdminClient | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self.admin = AIOKafkaAdminClient(**self.client_options, client_id="kairos-group-watch",
                                         request_timeout_ms=int(PROBE_TIMEOUT_SECONDS * 1000))
        self.consumer = AIOKafkaConsumer(**self.client_options, group_id=None, enable_auto_commit=False,
                                         client_id="kairos-group-watch")
        # Started by the first probe: a broker away at start is a failing probe, not a failed start.

    async def on_stop(self) -> None:
        for client in (self.consumer, self.admin):
            if client is not None:
                try:
                    await client.close() if isinstance(client, AIOKafkaAdminClient) else await client.stop()
                except (KafkaError, OSError, RuntimeError):
                    pass

    @Service.task
    async def _watch(self) -> None:
        started = False
        while not self.should_stop:
            try:
                if not started:
                    await asyncio.wait_for(self._start_clients(), PROBE_TIMEOUT_SECONDS * 2)
                    started = True
                await asyncio.wait_for(self.probe(), PROBE_TIMEOUT_SECONDS)
            except (KafkaError, OSError, asyncio.TimeoutError) as exc:
                if isinstance(exc, asyncio.TimeoutError):
                    exc = TimeoutError(f"the broker did not answer within {PROBE_TIMEOUT_SECONDS:.0f} s")
                record_failure(PROBE_STEP, exc)
            else:
                record_success(PROBE_STEP)
                self._exit_if_stuck()
            await self.sleep(self.probe_seconds)

    async def _start_clients(self) -> None:
        assert self.admin is not None and self.consumer is not None
        await self.admin.start()
        await self.consumer.start()

    async def probe(self, now: float | None = None) -> None:
        """Ask the broker once for every group; feed each group's stall detector."""
        assert self.admin is not None and self.consumer is not None
        await self.consumer.topics()  # refreshes the metadata: partitions of topics created since
        for group, topics in self.groups.items():
            partitions = [TopicPartition(topic, p) for topic in topics
                          for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                continue
            ends = await self.consumer.end_offsets(partitions)
            beginnings = await self.consumer.beginning_offsets(partitions)
            offsets = await self.admin.list_consumer_group_offsets(group, partitions=partitions)
            committed = {tp: meta.offset for tp, meta in offsets.items()}
            lags = GroupLag.of(ends, committed, beginnings)
            self.lags[group] = lags.lag
            self.detectors[group].observe(lags.waiting, lags.position, now)

    def stalls(self, now: float | None = None) -> list[GroupStall]:
        """The groups stalled now (lag, committed offsets still for the stall time)."""
        now = time.monotonic() if now is None else now
        return [GroupStall(group, self.lags[group], now - detector.waiting_since)
                for group, detector in self.detectors.items()
                if detector.stalled(now) and detector.waiting_since is not None]

    def report(self) -> dict[str, int]:
        """Figures for the worker metrics: each group's lag as the broker sees it."""
        return {f"group_lag.{group}": lag for group, lag in self.lags.items()}

    def _exit_if_stuck(self, now: float | None = None) -> None:
        """Exit once a group has been stalled with no outside cause for ``exit_after_seconds``.

        The clock restarts whenever an outside cause is present: a stall that outlasted a Redis outage gets
        the whole time again once Redis is back.
        """
        if self.exit_after_seconds <= 0:
            return
        now = time.monotonic() if now is None else now
        stalls = self.stalls(now)
        if not stalls or self.outside_cause():
            self.unexplained_since = None
            return
        if self.unexplained_since is None:
            self.unexplained_since = now
        if now - self.unexplained_since < self.exit_after_seconds:
            return
        log.critical("exiting (status %d) so that the supervisor restarts this worker: %s, and nothing "
                     "explains it (the broker and Redis answer, no recovery under way)",
                     EXIT_STALLED, "; ".join(stall.reason() for stall in stalls))
        logging.shutdown()
        os._exit(EXIT_STALLED)
