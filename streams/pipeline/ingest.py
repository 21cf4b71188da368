"""Stage 1: read the input topics in batches, validate, dead-letter, pack.

Faust's per-message path costs ~100 µs, so the input topics are not read by a
Faust agent. The :class:`Ingestor` service (started with the Faust app) owns
an aiokafka consumer in its own group, fetches up to thousands of records at a
time, validates each one against its wire schema, sends rejects to the
dead-letter topic and packs the accepted records into one message per
internal partition per fetch on ``<app_id>-events``, routed by
``customer_id`` (``payment_id`` for labels). Its source offsets are committed
only after every packed message and dead letter of the fetch is acknowledged.

At-least-once here is enough: each packed entry keeps its source offset, and
the states downstream skip what they already applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from streams.pipeline.retry import record_failure, record_success, until_done
from streams.pipeline.packing import PackedBatch, encode_packet, partition_for
from streams.pipeline.validation import EventValidator
from streams.settings import KairosSettings

log = logging.getLogger(__name__)

#: The field that routes each event type to its internal partition.
ROUTING_FIELD = {"clicks": "customer_id", "orders": "customer_id", "payments": "customer_id", "labels": "payment_id"}


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


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.ingestor.commit()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class Ingestor(Service):
    """Validates input batches and forwards them packed to the internal topic."""

    def __init__(self, settings: KairosSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.event_types = settings.topics.inputs()
        self.events_topic = settings.internal_topics["events"]
        self.validator = EventValidator(settings.max_event_bytes, max_future_seconds=settings.max_future_seconds,
                                        max_past_seconds=settings.max_past_seconds)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._uncommitted: dict[TopicPartition, int] = {}
        self.positions: dict[TopicPartition, int] = {}
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

    async def on_stop(self) -> None:
        if self.consumer is not None:
            try:
                await self.commit()
            finally:
                await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def commit(self) -> None:
        """Commit what every sent packed message and dead letter covers.

        A commit that fails (a rebalance under way, the broker away) is logged
        and dropped: the partition's owner reads those events again from the
        last committed offset and the states downstream skip what they applied.
        """
        if self._uncommitted and self.consumer is not None:
            offsets, self._uncommitted = self._uncommitted, {}
            assigned = self.consumer.assignment()
            offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
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
            if not fetched:
                continue
            # The consumer's position is past this fetch now: it is forwarded whatever it takes, never skipped.
            await self.forward(fetched)
            for tp, messages in fetched.items():
                self._uncommitted[tp] = self.positions[tp] = messages[-1].offset + 1
            await self.commit()
            self._measure_lag()

    async def forward(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        """Validate, dead-letter and pack one fetch; send it until all of it is acknowledged."""
        packets, letters = self.pack(fetched)
        await until_done("ingest forward", lambda: self._send(packets, letters))
        self.last_batch_at = time.time()

    def pack(self, fetched: dict[TopicPartition, list[Any]]) -> tuple[dict[int, list[PackedBatch]], list[tuple]]:
        """The packed batches per internal partition and the dead letters ``(tp, message, reason)`` of a fetch."""
        partitions = self.settings.partitions
        letters: list[tuple] = []
        packets: dict[int, list[PackedBatch]] = defaultdict(list)
        for tp, messages in fetched.items():
            event_type = self.event_types[tp.topic]
            route = ROUTING_FIELD[event_type]
            path = f"{tp.topic}:{tp.partition}"
            batches: dict[int, PackedBatch] = {}
            for message in messages:
                outcome = self.validator.check(event_type, message.value)
                if outcome.record is not None:
                    target = partition_for(outcome.record[route], partitions)
                else:
                    target = tp.partition % partitions
                    letters.append((tp, message, outcome.reason or "rejected"))
                    self.counts[f"{event_type}.invalid"] += 1
                batch = batches.get(target)
                if batch is None:
                    batch = batches[target] = PackedBatch(event_type, path)
                    packets[target].append(batch)
                batch.entries.append((message.offset, outcome.record))
            self.counts[f"{event_type}.fetched"] += len(messages)
        return packets, letters

    async def _send(self, packets: dict[int, list[PackedBatch]], letters: list[tuple]) -> None:
        assert self.producer is not None
        sends = [await self._dead_letter(tp, message, reason) for tp, message, reason in letters]
        for target, packet in packets.items():
            sends.append(await self.producer.send(self.events_topic, encode_packet(packet), partition=target))
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
