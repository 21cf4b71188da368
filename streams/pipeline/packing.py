"""Packed batches: how events travel on Kairos's internal topics.

Faust's cost is per Kafka message (~100 µs), not per event, so internal topics
carry one message per (source partition, target partition) batch. Each entry
keeps the offset it had in its source partition: that offset is what the
replay guard of the receiving state compares against.

>>> batch = PackedBatch("orders", "orders:3", [(7, {"customer_id": "c"}), (8, None)])
>>> PackedBatch.decode(batch.encode()) == batch
True
>>> partition_for("c42", 4)
0
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson


def partition_for(key: str, partitions: int) -> int:
    """The internal partition of a routing key (CRC-32, stable across processes)."""
    return zlib.crc32(key.encode()) % partitions


@dataclass(slots=True)
class PackedBatch:
    """Events of one type from one upstream path, in upstream offset order.

    ``entries`` holds ``(offset, record)`` pairs; ``record`` is ``None`` for an
    event that was rejected upstream (it only counts as invalid downstream).
    """

    event_type: str
    path: str
    entries: list[tuple[int, dict[str, Any] | None]] = field(default_factory=list)

    def encode(self) -> bytes:
        return orjson.dumps({"t": self.event_type, "p": self.path, "e": self.entries})

    @classmethod
    def decode(cls, data: bytes) -> PackedBatch:
        raw = orjson.loads(data)
        return cls(raw["t"], raw["p"], [(offset, record) for offset, record in raw["e"]])
