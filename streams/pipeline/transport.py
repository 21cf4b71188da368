"""A Faust transport (``kairos://``) whose consumer long-polls for a bounded time.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``. Apache
Kafka answers a waiting fetch as soon as data arrives, so that is harmless
there; some Kafka-compatible brokers (Tansu, our embedded broker, measured:
~380 ms average extra delay per hop) hold every fetch that found nothing for
the full wait. This transport is Faust's aiokafka transport with the wait set
from ``KAIROS_KAFKA_FETCH_MAX_WAIT_MS`` while data flows, and from
``KAIROS_KAFKA_FETCH_IDLE_WAIT_MS`` once the consumer has fetched nothing for
a second (:func:`long_poll_when_idle`, also used by the ingest's and the model
sync's consumers): polling an idle broker every 5 ms cost an idle worker 39 %
of a core. It is registered as an entry point in
the ``faust.transports`` namespace (see ``pyproject.toml``).

The consumer also stamps every message it fetches with a local assignment
epoch (bumped at each partition assignment), which the write fence
(:mod:`streams.pipeline.fence`) uses to recognise events fetched before a
rebalance. Faust's ``generation_id`` is ambiguous there: the app's value is 0
before the first join, and some brokers (Tansu) number the first generation 0.

For the stages' topics the consumer also refuses a fetched record that skips
offsets: it seeks the partition back to the first offset missing
(:meth:`PromptFetchConsumer.getmany`), where Faust would record a gap and
commit past messages no stage saw.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ConsumerMessage

log = logging.getLogger(__name__)

#: Times a gated partition is sought back to an offset its fetch skipped before the gap is taken as it is.
MAX_REFETCHES = 5

#: Environment variables read by the consumer thread (set from the settings by the app).
FETCH_WAIT_ENV = "KAIROS_KAFKA_FETCH_MAX_WAIT_MS"
FETCH_IDLE_WAIT_ENV = "KAIROS_KAFKA_FETCH_IDLE_WAIT_MS"
#: A consumer whose fetches returned nothing for this long (wall clock) is idle: see :func:`long_poll_when_idle`.
FETCH_IDLE_AFTER_SECONDS = 1.0


def long_poll_when_idle(consumer: Any, busy_wait_ms: int, idle_wait_ms: int,
                        idle_after: float = FETCH_IDLE_AFTER_SECONDS) -> None:
    """Make a started aiokafka ``consumer`` fetch with ``busy_wait_ms`` while fetches return data, and with
    ``idle_wait_ms`` (at least ``busy_wait_ms``) once none has for ``idle_after`` seconds.

    Brokers that hold a fetch that found nothing for its whole wait (Tansu) need a short wait for low latency
    while data flows, but answering every few milliseconds costs the client a fetch request and response of
    every partition it reads (an idle worker with three consumers at 5 ms: 39 % of a core here). Once idle,
    the first record after the quiet spell waits up to ``idle_wait_ms`` on such a broker; Apache Kafka answers
    a waiting fetch as soon as data arrives, so there it costs nothing. Wall clock decides idleness only.

    aiokafka's fetcher reads its wait for every request it builds; this wraps the fetcher's request routine
    (which returns whether the response held new records) to set it. An aiokafka without those internals
    keeps the busy wait (logged): the consumer works as before, it only polls as often when idle.
    """
    idle_wait_ms = max(busy_wait_ms, idle_wait_ms)
    fetcher = getattr(consumer, "_fetcher", None)
    if not (hasattr(fetcher, "_proc_fetch_request") and hasattr(fetcher, "_fetch_max_wait_ms")):
        log.warning("fetch: this aiokafka's fetcher cannot be paced; an idle consumer keeps polling every %d ms",
                    busy_wait_ms)
        return
    fetch = fetcher._proc_fetch_request
    last_data = time.monotonic()

    async def fetch_then_pace(assignment: Any, node_id: Any, request: Any) -> Any:
        nonlocal last_data
        has_data = await fetch(assignment, node_id, request)
        now = time.monotonic()
        if has_data:
            last_data = now
            fetcher._fetch_max_wait_ms = busy_wait_ms
        elif now - last_data >= idle_after:
            fetcher._fetch_max_wait_ms = idle_wait_ms
        return has_data

    fetcher._fetch_max_wait_ms = busy_wait_ms
    fetcher._proc_fetch_request = fetch_then_pace


class PromptFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a bounded fetch long-poll."""

    @staticmethod
    def _waits_ms() -> tuple[int, int]:
        """The busy and idle fetch waits the app set from its settings."""
        return int(os.environ.get(FETCH_WAIT_ENV, "5")), int(os.environ.get(FETCH_IDLE_WAIT_ENV, "50"))

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts and builds its fetcher.
        consumer._fetch_max_wait_ms = self._waits_ms()[0]
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        long_poll_when_idle(self._consumer, *self._waits_ms())


class EpochMessage(ConsumerMessage):
    """A consumer message with the local assignment epoch it was fetched in, and whether a stage applied it."""

    __slots__ = ("epoch", "applied")


class PromptFetchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer using :class:`PromptFetchConsumerThread`, stamping epochs."""

    #: Bumped at every partition assignment, before the new partitions are fetched.
    epoch = 0
    #: Fetched offsets that skipped ahead in a gated partition and were fetched again (see :meth:`getmany`).
    gaps_refetched = 0
    #: Offsets of gated partitions never fetched after ``MAX_REFETCHES`` tries (lost to the stages; stays 0).
    offsets_missing = 0

    def _reset_state(self) -> None:
        """Faust's per-start state (called at construction and on a restart), and the fetch order checks'."""
        super()._reset_state()
        #: The next offset each gated partition's fetch must return (known after a seek or a first record).
        self._fetch_next: dict[Any, int] = {}
        #: Tries so far per ``(partition, offset)`` sought back to (see :meth:`getmany`).
        self._refetches: dict[tuple[Any, int], int] = {}

    async def getmany(self, timeout: float) -> Any:
        """Faust's fetch loop, refusing a gated partition's record that skips offsets: it seeks back instead.

        Faust iterates a fetch's records while other work awaits; when the recovery's seek to the committed
        offsets lands in the middle, the rest of a fetch made *before* the seek still arrives after it, past the
        committed offset. Faust then delivers it, records the offsets in between as a "gap", drops the
        records the seek fetches again as already read, and commits past the gap: those messages are lost to
        the stages with no error (seen in a test's restart: offsets 20..23 of one events partition never
        applied, 689 events uncounted; faust-streaming issues #216, #221). Here the partition is sought back
        to the first offset missing and what the fetch returned past it is dropped: the next fetch reads them
        again in order (the stages skip what they already applied). After ``MAX_REFETCHES`` tries at one offset
        the records are taken as they come, and the offsets skipped are counted (``offsets_missing``) and
        logged as lost.
        """
        gated = getattr(self.app, "gated_topics", ())
        expected = self._fetch_next
        refused: dict[Any, tuple[int, int]] = {}
        async for tp, message in super().getmany(timeout):
            if tp.topic in gated:
                if tp in refused:
                    continue
                wanted = expected.get(tp)
                if wanted is not None and message.offset > wanted:
                    tries = self._refetches.get((tp, wanted), 0) + 1
                    self._refetches[(tp, wanted)] = tries
                    if tries <= MAX_REFETCHES:
                        self.gaps_refetched += 1
                        refused[tp] = (message.offset, wanted)
                        try:
                            await self._thread.seek_wait({tp: wanted})
                        except Exception as exc:  # revoked meanwhile (its owner reads from the commit), or the
                            # broker away: the next fetch comes past the offset again and counts another try
                            log.warning("fetch: seeking %s:%d back to %d failed: %r", tp.topic, tp.partition,
                                        wanted, exc)
                        expected[tp] = wanted
                        continue
                    self.offsets_missing += message.offset - wanted
                    log.error("fetch: %s:%d offsets %d..%d never fetched after %d tries: lost to the stages",
                              tp.topic, tp.partition, wanted, message.offset - 1, MAX_REFETCHES)
                expected[tp] = message.offset + 1
            yield tp, message
        if refused:
            log.info("fetch: %d partition(s) returned records past the next offset (a fetch from before a seek); "
                     "sought back: %s", len(refused), ", ".join(
                         f"{tp.topic}:{tp.partition} {got}->{wanted}" for tp, (got, wanted) in sorted(refused.items())))

    async def perform_seek(self) -> None:
        """Seek to the committed offsets (Faust), which the next fetch of each gated partition must start at."""
        await super().perform_seek()
        gated = getattr(self.app, "gated_topics", ())
        self._fetch_next.clear()
        self._fetch_next.update({tp: offset for tp, offset in self._read_offset.items()
                                 if offset is not None and tp.topic in gated})

    def ack(self, message: Any) -> bool:
        """Record ``message`` as done (committable) only if a stage applied it.

        Faust acknowledges messages it never handed to a stage: a stream that
        pulls a message while flow control is suspended (a stop, a rebalance) or
        whose generation is old skips it *and acknowledges it* ("otherwise the lag
        would increase", ``Stream._py_aiter``), and ``take_events`` acknowledges its
        whole batch in a ``finally`` even when the batch failed. Committed, such a
        message is never delivered again: the events it carried were lost (issue 21:
        a graceful stop lost the one message in flight). For the gated topics an
        acknowledgement without :func:`mark_applied` is dropped, so the message
        stays uncommitted and its partition's next owner applies it. The app
        names its gated topics in ``app.gated_topics``.
        """
        if message.topic in getattr(self.app, "gated_topics", ()) and not getattr(message, "applied", False):
            self._unacked_messages.discard(message)
            return False
        return super().ack(message)

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        self.epoch += 1
        self._fetch_next.clear()  # known again after the recovery's seek to the committed offsets
        self._refetches.clear()
        await super().on_partitions_assigned(assigned, generation_id)

    def _to_message(self, tp: Any, record: Any) -> EpochMessage:
        timestamp = record.timestamp
        message = EpochMessage(
            record.topic, record.partition, record.offset,
            timestamp / 1000.0 if timestamp is not None else None,
            record.timestamp_type, record.headers, record.key, record.value, record.checksum,
            record.serialized_key_size, record.serialized_value_size, tp,
            generation_id=self.app.consumer_generation_id,
        )
        message.epoch = self.epoch
        message.applied = False
        return message

    def _new_offset(self, tp: Any) -> int | None:
        """Faust's next offset to commit, but never past an unacknowledged message at the committed offset.

        Faust's own check lets one missing message at the head through (``min(acked)
        - committed > 1``, where ``committed`` is the next offset to read): with acked
        messages from ``committed + 1`` on, it would commit past the message at
        ``committed`` although no stage applied it.
        """
        if tp.topic in getattr(self.app, "gated_topics", ()):
            acked, committed = self._acked[tp], self._committed_offset[tp]
            if acked and committed is not None and min(acked) > committed and not self._gap[tp]:
                return None
        return super()._new_offset(tp)

    async def _commit(self, offsets: Any) -> bool:
        if self.app.should_stop:  # the last commit of a stopping worker: what it hands over
            log.info("commit on stop: %s", {f"{tp.topic}:{tp.partition}": offset for tp, offset in offsets.items()})
        return await super()._commit(offsets)

    def applied_progress(self) -> tuple[int, int]:
        """``(lag, position)`` of the gated topics this worker owns: messages past the committed offsets (as of
        the last fetch's high watermarks), and the sum of the committed offsets. A stage blocked on a dependency
        (a frozen Redis) or a fetcher that stopped leaves the lag up and the position still: a stall."""
        gated = getattr(self.app, "gated_topics", ())
        lag = position = 0
        try:
            assigned = self.assignment()
        except ConsumerNotStarted:  # starting or stopped: nothing assigned
            return 0, 0
        for tp in assigned:
            if tp.topic not in gated:
                continue
            committed = self._committed_offset.get(tp) or 0
            highwater = self.highwater(tp)
            if highwater is not None:
                lag += max(0, highwater - committed)
            position += committed
        return lag, position

    def report(self) -> dict[str, Any]:
        """The stages' input for the worker metrics: where each partition stands, and the fetch order checks."""
        return {"stage_partitions": self.applied_standing(), "fetch_gaps_refetched": self.gaps_refetched,
                "fetch_offsets_missing": self.offsets_missing}

    def applied_standing(self) -> str:
        """Where each owned gated partition stands, ``topic:partition=committed/end`` (``?``: unknown yet): a
        stage stuck on a partition shows here (the worker metrics carry it as ``stage_partitions``)."""
        gated = getattr(self.app, "gated_topics", ())
        try:
            assigned = self.assignment()
        except ConsumerNotStarted:
            return ""
        standing = []
        for tp in sorted(tp for tp in assigned if tp.topic in gated):
            committed, end = self._committed_offset.get(tp), self.highwater(tp)
            standing.append(f"{tp.topic}:{tp.partition}={'?' if committed is None else committed}/"
                            f"{'?' if end is None else end}")
        return " ".join(standing)

    def _new_consumer_thread(self) -> PromptFetchConsumerThread:
        return PromptFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)


def mark_applied(events: Any) -> None:
    """Mark events whose records a stage has applied (and persisted): only these may be committed."""
    for event in events:
        event.message.applied = True


class Transport(faust_aiokafka.Transport):
    """``kairos://`` broker URLs: Faust's aiokafka transport with prompt fetches."""

    Consumer = PromptFetchConsumer
