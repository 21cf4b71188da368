"""Derived records a stage sends downstream, packed per (topic, partition, upstream path).

A stage emits derived records (a payment's risk snapshot, an order's basket)
*before* it flushes its own state, so a crash in between only repeats them;
each keeps the offset of the event it came from and the downstream state
skips what it has applied on that path (``<source topic:partition>><via
partition>``).

>>> box = Outbox()
>>> box.add("kairos-risk", 2, "labels", "labels:0>2", 17, {"payment_id": "p1"})
>>> [(topic, target, [b.entries for b in batches]) for (topic, target), batches in box.packets.items()]
[('kairos-risk', 2, [[(17, {'payment_id': 'p1'})]])]
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.pipeline.packing import PackedBatch, encode_packet


class Outbox:
    """Collects derived records until :meth:`send`."""

    def __init__(self) -> None:
        self.packets: dict[tuple[str, int], list[PackedBatch]] = defaultdict(list)
        self._open: dict[tuple[str, int, str, str], PackedBatch] = {}
        self.messages: list[tuple[str, bytes, bytes]] = []

    def add(self, topic: str, target: int, event_type: str, path: str, offset: int,
            record: dict[str, Any] | None) -> None:
        """Add one derived record for ``target`` partition of ``topic`` (``None``: the event was rejected)."""
        slot = (topic, target, event_type, path)
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = PackedBatch(event_type, path)
            self.packets[(topic, target)].append(batch)
        batch.entries.append((offset, record))

    def add_message(self, topic: str, key: bytes, value: bytes) -> None:
        """A plain message for a public topic (alerts, segment changes)."""
        self.messages.append((topic, key, value))

    def __bool__(self) -> bool:
        return bool(self.packets or self.messages)

    async def send(self, producer: AIOKafkaProducer) -> None:
        """Send everything collected and wait for the acknowledgements; then start empty."""
        futures = [
            await producer.send(topic, encode_packet(batches), partition=target)
            for (topic, target), batches in self.packets.items()
        ]
        futures += [await producer.send(topic, value, key=key) for topic, key, value in self.messages]
        if futures:
            await asyncio.gather(*futures)
        self.packets.clear()
        self._open.clear()
        self.messages.clear()
