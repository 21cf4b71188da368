"""Sending simulated or replayed events to Kafka at a paced rate (asyncio, aiokafka).

Used by ``kairos simulate``, ``kairos replay``, ``kairos demo`` and ``kairos bench``.
Events are ``(event_type, key, value)`` where ``value`` is a wire dict or raw
bytes; they go to the topic the settings name for that event type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.settings import KairosSettings

#: Events whose acknowledgements are awaited together (the sender's backpressure).
CHUNK = 200
#: A paced sender checks its schedule this often (of its rate's time): 200 events every 0.4 s is not
#: "500 events/s" to a stage that waits for its slowest partition, and it is not how a shop's traffic comes.
PACING_TICK_SECONDS = 0.005


@dataclass
class SendStats:
    """Counts of what was sent, per event type."""

    sent: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.total / elapsed if elapsed > 0 else 0.0


def encode(value: dict[str, Any] | bytes) -> bytes:
    return value if isinstance(value, bytes) else orjson.dumps(value)


async def send_paced(settings: KairosSettings, events: Iterable[tuple[str, str, Any]], rate: float = 0.0,
                     limit: int | None = None, stats: SendStats | None = None,
                     on_progress: Callable[[SendStats], None] | None = None,
                     stop: asyncio.Event | None = None) -> SendStats:
    """Send ``events`` (at most ``limit``) at ``rate`` events/s (0: as fast as possible)."""
    stats = stats or SendStats()
    topics = {event_type: name for name, event_type in settings.topics.inputs().items()}
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=5,
                                max_batch_size=512 * 1024, max_request_size=4 << 20,
                                client_id=f"{settings.app_id}-sender")
    await producer.start()
    tick = max(1, min(CHUNK, int(rate * PACING_TICK_SECONDS))) if rate > 0 else CHUNK
    try:
        pending: list[asyncio.Future] = []
        for event_type, key, value in events:
            if limit is not None and stats.total >= limit:
                break
            if stop is not None and stop.is_set():
                break
            pending.append(await producer.send(topics[event_type], encode(value), key=key.encode()))
            stats.sent[event_type] = stats.sent.get(event_type, 0) + 1
            if len(pending) >= CHUNK:
                await asyncio.gather(*pending)
                pending.clear()
                if on_progress is not None:
                    on_progress(stats)
            if rate > 0 and len(pending) % tick == 0:
                ahead = stats.total / rate - (time.monotonic() - stats.started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
        if on_progress is not None:
            on_progress(stats)
    finally:
        await producer.stop()
    return stats


async def send_fast(settings: KairosSettings, events: Iterable[tuple[str, str, Any]]) -> int:
    """Send ``events`` as fast as the broker takes them, in explicit record batches per partition.

    For benchmarks: each (topic, partition) gets large record batches built
    directly, partitioned like Kafka's default partitioner would do by key.
    """
    from kafka.partitioner.default import murmur2

    topics = {event_type: name for name, event_type in settings.topics.inputs().items()}
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all",
                                max_batch_size=1 << 20, max_request_size=4 << 20,
                                client_id=f"{settings.app_id}-bench-sender")
    await producer.start()
    try:
        partitions: dict[str, int] = {}
        for topic in topics.values():
            partitions[topic] = len(await producer.partitions_for(topic))
        batches: dict[tuple[str, int], Any] = {}
        futures = []
        sent = 0
        for event_type, key, value in events:
            topic = topics[event_type]
            key_bytes = key.encode()
            partition = (murmur2(key_bytes) & 0x7FFFFFFF) % partitions[topic]
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[(topic, partition)] = producer.create_batch()
            if batch.append(key=key_bytes, value=encode(value), timestamp=None) is None:
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[(topic, partition)] = producer.create_batch()
                batch.append(key=key_bytes, value=encode(value), timestamp=None)
            sent += 1
        for (topic, partition), batch in batches.items():
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
        return sent
    finally:
        await producer.stop()
