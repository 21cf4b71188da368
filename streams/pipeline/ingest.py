"""Stage 1: read the input topics in batches, validate, dead-letter, pack.

Faust's per-message path costs ~100 µs, so the input topics are not read by a
Faust agent. The :class:`Ingestor` service (started with the Faust app) owns
an aiokafka consumer in its own group, fetches up to thousands of records at a
time, validates each one against its wire schema, sends rejects to the
dead-letter topic and packs the accepted records into one message per
internal partition per fetch on ``<app_id>-events``, routed by
``customer_id`` (``payment_id`` for labels). Its source offsets are committed
only after every packed message and dead letter of the fetch is acknowledged.

Records are released to the stages in event-time order across every input
partition the worker holds (:class:`~.alignment.EventTimeAligner`): a topic
that runs ahead waits, paused once its buffer is full, until the others catch
up, reach their end or fall idle, so a backfill, a consumer group reset or a
lagging producer gives the stages the order the events happened in.

At-least-once here is enough: each packed entry keeps its source offset, and
the states downstream skip what they already applied. A partition's commit
never passes its oldest record not yet released.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from streams.pipeline.alignment import EventTimeAligner
from streams.pipeline.retry import record_failure, record_success, until_done
from streams.pipeline.packing import PackedBatch, encode_packets, partition_for
from streams.pipeline.pseudonyms import Pseudonyms
from streams.pipeline.validation import EventValidator
from streams.pipeline.transport import long_poll_when_idle
from streams.settings import KairosSettings

log = logging.getLogger(__name__)

#: Shortest time between two log lines about the event-time alignment pausing partitions.
ALIGN_LOG_SECONDS = 60.0

#: Largest packet the ingest sends (its producer's request limit is 4 MiB); a bigger release is split.
MAX_PACKET_BYTES = 1 << 20

#: The field that routes each event type to its internal partition.
ROUTING_FIELD = {"clicks": "customer_id", "orders": "customer_id", "payments": "customer_id", "labels": "payment_id",
                 "inventory": "sku"}


def dead_letter_headers(reason: str, tp: TopicPartition, offset: int, size: int, truncated: bool) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead letter: why, and where the original sits."""
    return [
        ("kairos.reason", reason.encode()),
        ("kairos.source.topic", tp.topic.encode()),
        ("kairos.source.partition", str(tp.partition).encode()),
        ("kairos.source.offset", str(offset).encode()),
        ("kairos.original.bytes", str(size).encode()),
        ("kairos.truncated", b"true" if truncated else b"false"),
    ]


def iso(ts: float) -> str:
    """An event time for a log line (``-`` before the first)."""
    if not math.isfinite(ts):
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.ingestor.commit()
        self.ingestor.forget(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.ingestor.aligner.assign(assigned)


class Ingestor(Service):
    """Validates input batches and forwards them packed to the internal topic."""

    def __init__(self, settings: KairosSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.event_types = settings.topics.inputs()
        self.events_topic = settings.internal_topics["events"]
        pseudonyms = Pseudonyms(settings.pseudonymize_key)
        self.validator = EventValidator(settings.max_event_bytes, max_future_seconds=settings.max_future_seconds,
                                        max_past_seconds=settings.max_past_seconds,
                                        pseudonyms=pseudonyms if pseudonyms.enabled else None)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        #: Releases the validated ``(message, outcome)`` in event-time order across the partitions held.
        self.aligner: EventTimeAligner[tuple[Any, Any]] = EventTimeAligner(
            idle_seconds=settings.ingest_align_idle_seconds, max_buffered=settings.ingest_align_max_buffered)
        self.positions: dict[TopicPartition, int] = {}
        #: Partitions paused because they ran ahead (logged at most every ALIGN_LOG_SECONDS).
        self.pauses = 0
        #: Partitions whose alignment buffer outlived their revocation (dropped; should stay 0).
        self.orphans = 0
        self._pauses_logged = 0
        self._pause_logged_at = float("-inf")
        self.counts: dict[str, int] = defaultdict(int)
        self.lag = 0
        self.last_batch_at = 0.0

    async def on_start(self) -> None:
        options = self.settings.kafka_client_options()
        self.producer = AIOKafkaProducer(
            **options, acks="all", linger_ms=5, max_batch_size=1 << 20,
            max_request_size=4 << 20, client_id=f"{self.settings.app_id}-ingest",
        )
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            **options,
            group_id=f"{self.settings.app_id}-ingest",
            client_id=f"{self.settings.app_id}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 << 20,
            fetch_max_bytes=64 << 20,
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
        )
        self.consumer.subscribe(list(self.event_types), listener=_CommitOnRevoke(self))
        await self.consumer.start()
        long_poll_when_idle(self.consumer, self.settings.kafka_fetch_max_wait_ms,
                            self.settings.kafka_fetch_idle_wait_ms)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            try:
                await self.commit()
            finally:
                await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def commit(self) -> None:
        """Commit, per partition, up to its oldest record not yet released (all of it when none waits).

        Called after every released record of a fetch is acknowledged. A commit that fails (a rebalance
        under way, the broker away) is logged and dropped: the partition's owner reads those events again
        from the last committed offset and the states downstream skip what they applied.
        """
        if self.consumer is None:
            return
        offsets = {}
        for tp in self.consumer.assignment():
            waiting = self.aligner.first_unreleased(tp)
            offset = waiting[0].offset if waiting is not None else self.positions.get(tp)
            if offset is not None:
                offsets[tp] = offset
        if offsets:
            try:
                await self.consumer.commit(offsets)
            except KafkaError as exc:
                record_failure("ingest commit", exc)
            else:
                record_success("ingest commit")

    @Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        while not self.should_stop:
            try:
                fetched = await self.consumer.getmany(
                    timeout_ms=self.settings.ingest_fetch_wait_ms,
                    max_records=self.settings.ingest_batch_records,
                )
            except KafkaError as exc:  # the fetch position did not move: nothing is skipped
                record_failure("ingest fetch", exc)
                await asyncio.sleep(0.5)
                continue
            # The consumer's position is past this fetch now: it is forwarded whatever it takes, never skipped.
            self.take(fetched)
            released = self.aligner.release()
            if released:
                await self.forward(released)
            if fetched or released:
                await self.commit()
            self._flow_control()
            self._measure_lag()

    def take(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        """Validate a fetch and hand it to the aligner, with where each partition's consumer stands."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        self._forget_unassigned(assigned)
        for tp, messages in fetched.items():
            if tp not in assigned:  # revoked since the fetch: its new owner reads it again from the commit
                continue
            event_type = self.event_types[tp.topic]
            check = self.validator.check
            checked = []
            for message in messages:
                outcome = check(event_type, message.value)
                checked.append((None if outcome.record is None else outcome.record["ts"], (message, outcome)))
            self.positions[tp] = messages[-1].offset + 1
            self.counts[f"{event_type}.fetched"] += len(messages)
            self.aligner.add(tp, checked, at_end=self._at_end(tp))
        for tp in assigned:
            if tp not in fetched:
                self.aligner.mark_end(tp, self._at_end(tp))

    def _forget_unassigned(self, assigned: set[TopicPartition]) -> None:
        """Drop what the aligner and the positions keep of partitions no longer assigned (counted, logged).

        The revocation callback drops them; one that outlived it would hold the other partitions back at its
        last event time for good (it is never fetched or marked at its end again). Its records are not lost:
        nothing past them was committed, and the partition's owner reads them again from the commit.
        """
        gone = [tp for tp in self.aligner.buffers.keys() | self.positions.keys() if tp not in assigned]
        self.forget(gone)
        if gone:
            self.orphans += len(gone)
            log.warning("ingest: dropped the alignment buffers of %d partition(s) no longer assigned (%s); their "
                        "owners read them again from the last commit", len(gone),
                        ", ".join(f"{tp.topic}:{tp.partition}" for tp in gone))

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop what the aligner buffers and where the consumer stood for ``partitions`` (revoked: their owner
        reads them again from the last commit)."""
        partitions = list(partitions)
        self.aligner.revoke(partitions)
        for tp in partitions:
            self.positions.pop(tp, None)

    def _at_end(self, tp: TopicPartition) -> bool:
        """Whether the consumer has read ``tp`` up to its end offset (as of the last fetch response)."""
        assert self.consumer is not None
        highwater = self.consumer.highwater(tp)
        position = self.positions.get(tp)
        if position is None:
            position = self._fetch_position(tp)
        return highwater is not None and position is not None and position >= highwater

    def _fetch_position(self, tp: TopicPartition) -> int | None:
        """The consumer's next offset for a partition it returned nothing of yet (None while unknown).

        aiokafka has only an async ``position()`` that waits for a valid position; this reads the same
        state without waiting.
        """
        try:
            state = self.consumer._subscription.subscription.assignment.state_value(tp)  # type: ignore[union-attr]
        except AttributeError:
            return None
        return state.position if state is not None and state.has_valid_position else None

    def _flow_control(self) -> None:
        """Pause the partitions whose buffers are full, resume those drained to half."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        full = [tp for tp in self.aligner.to_pause() if tp in assigned]
        if full:
            self.consumer.pause(*full)
            self.pauses += len(full)
        drained = [tp for tp in self.aligner.to_resume() if tp in assigned]
        if drained:
            self.consumer.resume(*drained)
        now = time.monotonic()
        if self.pauses > self._pauses_logged and now - self._pause_logged_at >= ALIGN_LOG_SECONDS:
            holding = ", ".join(f"{tp.topic}:{tp.partition}" for tp, _ in self.aligner.holding()) or "none now"
            log.info("ingest: %d partition pauses so far to keep the inputs in event-time order (%d records "
                     "buffered, watermark %s; holding back: %s)", self.pauses, self.aligner.buffered(),
                     iso(self.aligner.watermark), holding)
            self._pauses_logged, self._pause_logged_at = self.pauses, now

    async def forward(self, released: list[tuple[Any, Any]]) -> None:
        """Dead-letter and pack released ``(message, validation outcome)``; send them until all is acknowledged."""
        packets, letters = self.pack(released)
        await until_done("ingest forward", lambda: self._send(packets, letters))
        self.last_batch_at = time.time()

    def pack(self, released: list[tuple[Any, Any]]) -> tuple[dict[int, list[PackedBatch]], list[tuple]]:
        """The packed batches per internal partition and the dead letters ``(tp, message, reason)``.

        Each internal partition gets the records routed to it in release (event-time) order: a new
        :class:`PackedBatch` starts whenever the upstream path changes.
        """
        partitions = self.settings.partitions
        letters: list[tuple] = []
        packets: dict[int, list[PackedBatch]] = defaultdict(list)
        sources: dict[tuple[str, int], tuple[str, str, str]] = {}
        for message, outcome in released:
            source = sources.get((message.topic, message.partition))
            if source is None:
                event_type = self.event_types[message.topic]
                source = sources[(message.topic, message.partition)] = (
                    event_type, f"{message.topic}:{message.partition}", ROUTING_FIELD[event_type])
            event_type, path, route = source
            record = outcome.record
            if record is not None:
                target = partition_for(record[route], partitions)
            else:
                target = message.partition % partitions
                letters.append((TopicPartition(message.topic, message.partition), message,
                                outcome.reason or "rejected"))
                self.counts[f"{event_type}.invalid"] += 1
            batches = packets[target]
            if not batches or batches[-1].path is not path:
                batches.append(PackedBatch(event_type, path))
            batches[-1].entries.append((message.offset, record))
        return packets, letters

    async def _send(self, packets: dict[int, list[PackedBatch]], letters: list[tuple]) -> None:
        assert self.producer is not None
        sends = [await self._dead_letter(tp, message, reason) for tp, message, reason in letters]
        for target, packet in packets.items():
            for part in encode_packets(packet, MAX_PACKET_BYTES):
                sends.append(await self.producer.send(self.events_topic, part, partition=target))
        if sends:
            await asyncio.gather(*sends)

    async def _dead_letter(self, tp: TopicPartition, message: Any, reason: str) -> asyncio.Future:
        assert self.producer is not None
        value = message.value if message.value is not None else b""
        limit = self.settings.dead_letter_max_bytes
        headers = dead_letter_headers(reason, tp, message.offset, len(value), len(value) > limit)
        return await self.producer.send(
            self.settings.topics.dead_letters, value[:limit], key=message.key, headers=headers,
        )

    @property
    def consumed(self) -> int:
        """Sum of this worker's consumed positions (moves whenever the ingest makes progress)."""
        return sum(self.positions.values())

    def _measure_lag(self) -> None:
        assert self.consumer is not None
        lag = 0
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            position = self.positions.get(tp)
            if highwater is not None and position is not None:
                lag += max(0, highwater - position)
        self.lag = lag

    def report(self) -> dict[str, Any]:
        """The ingest's figures for the worker metrics: lag, counts, and the event-time alignment."""
        return {"ingest_lag": self.lag, **self.counts, **self.aligner.report(), "align_pauses": self.pauses,
                "align_orphans": self.orphans, "ingest_partitions": self.standing()}

    def standing(self) -> str:
        """Where each assigned partition stands, ``topic:partition=position/end,buffered`` (``?``: unknown yet):
        what holds the alignment back and why reads off it."""
        if self.consumer is None:
            return ""
        standing = []
        for tp in sorted(self.consumer.assignment()):
            position, end = self.positions.get(tp), self.consumer.highwater(tp)
            buffer = self.aligner.buffers.get(tp)
            standing.append(f"{tp.topic}:{tp.partition}={'?' if position is None else position}/"
                            f"{'?' if end is None else end},{len(buffer) if buffer is not None else 0}")
        return " ".join(standing)
