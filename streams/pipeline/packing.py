"""Packed batches: how events travel on Kairos's internal topics.

Faust's cost is per Kafka message (~100 µs), not per event, so an internal
topic carries *packets*: one message per target partition per upstream fetch,
holding one :class:`PackedBatch` per upstream path. Each entry keeps the offset
it had in its source partition: that offset is what the replay guard of the
receiving state compares against.

>>> batch = PackedBatch("orders", "orders:3", [(7, {"customer_id": "c"}), (8, None)])
>>> [(b.event_type, b.path, [tuple(e) for e in b.entries]) for b in decode_packet(encode_packet([batch]))]
[('orders', 'orders:3', [(7, {'customer_id': 'c'}), (8, None)])]
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



def encode_packet(batches: list[PackedBatch]) -> bytes:
    """One internal message holding several packed batches."""
    return orjson.dumps([{"t": b.event_type, "p": b.path, "e": b.entries} for b in batches])


def encode_packets(batches: list[PackedBatch], max_bytes: int) -> list[bytes]:
    """``batches`` as one packet, or as several in the same order when one would exceed ``max_bytes``.

    A fetch can release far more records at once than one message may carry
    (the event-time alignment holds a topic back, then lets its backlog go):
    a 4.5 MB packet of a shop with many orders made the ingest retry its
    forward forever. The split halves the batches, then a batch's entries,
    until each part fits (a single entry too big is sent alone, as it is).

    >>> batches = [PackedBatch("clicks", f"clicks:{p}", [(o, {"sku": "x" * 50}) for o in range(40)]) for p in range(3)]
    >>> parts = encode_packets(batches, max_bytes=1000)
    >>> all(len(part) <= 1000 for part in parts), len(parts) > 3
    (True, True)
    >>> [(b.path, offset) for part in parts for b in decode_packet(part) for offset, _ in b.entries] == [
    ...     (b.path, offset) for b in batches for offset, _ in b.entries]
    True
    >>> encode_packets(batches, max_bytes=1 << 20) == [encode_packet(batches)]
    True
    """
    packet = encode_packet(batches)
    if len(packet) <= max_bytes or (len(batches) == 1 and len(batches[0].entries) <= 1):
        return [packet]
    if len(batches) > 1:
        half = len(batches) // 2
        return encode_packets(batches[:half], max_bytes) + encode_packets(batches[half:], max_bytes)
    batch, half = batches[0], len(batches[0].entries) // 2
    return (encode_packets([PackedBatch(batch.event_type, batch.path, batch.entries[:half])], max_bytes)
            + encode_packets([PackedBatch(batch.event_type, batch.path, batch.entries[half:])], max_bytes))


def decode_packet(data: bytes) -> list[PackedBatch]:
    """The packed batches of one internal message, in the order they were packed.

    Entries come back as two-item lists (``[offset, record]``), which unpack
    like the tuples they were packed from.
    """
    return [PackedBatch(raw["t"], raw["p"], raw["e"]) for raw in orjson.loads(data)]
