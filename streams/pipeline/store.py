"""Keyed state on a Faust table, written in one changelog record batch per flush.

Faust keeps the table: partition assignment, recovery from the changelog on
start and on rebalance, standby replicas. Writing through ``table[key] = v``
costs one Faust changelog message per key (~35 µs here, measured); a
:class:`KeyedStore` instead writes the touched keys of a flush straight into the
table's data and appends them, per partition, as **one** Kafka record batch to
the table's changelog topic. A record batch is appended atomically, so every
key written in one flush (e.g. customers and the ingest counter that counted
their events) survives a crash together or not at all.

Values are encoded with the table's own codec, so Faust's recovery decodes
exactly what was written. Recovery reads the whole changelog (memory store).

Faust re-reads a changelog partition it keeps across a rebalance from where
its last recovery stopped, so records this worker wrote since then are applied
again over newer values in memory. :class:`GuardedMemoryStore` (the tables'
store, ``kairos://``) keeps per key the changelog offset its value came from
and ignores records at or below it, and records for keys with an unflushed
write: recovery can only move a key forward.

Faust decides that recovery is complete when it reaches the partition's end
offset as reported by ListOffsets. Some Kafka-compatible brokers (Tansu, the
embedded broker) report the base offset of the last record batch + 1 there,
so Faust stops before the last records of a multi-record batch. After every
recovery, :meth:`KeyedStore.catch_up` re-reads each active changelog partition
from the start of that last batch to the end reported by a fetch (re-applying
records in log order is idempotent: each key ends with its latest value).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import faust
from faust.stores import memory
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.serializers import codecs

V = TypeVar("V")

#: Largest record batch a flush writes; Kafka's default message.max.bytes is 1 MiB.
MAX_BATCH_BYTES = 900 * 1024


class GuardedMemoryStore(memory.Store):
    """Faust's in-memory store that never applies a changelog record older than what it holds."""

    def __post_init__(self) -> None:
        super().__post_init__()
        #: Changelog offset of the record each key's value was written as.
        self.offsets: dict[Any, int] = {}
        #: Keys written in memory whose changelog record is not acknowledged yet.
        self.pending: set[Any] = set()

    def newer(self, key: Any, offset: int) -> bool:
        """True (and remembered) if a record at ``offset`` may replace ``key``'s value."""
        if key in self.pending or offset <= self.offsets.get(key, -1):
            return False
        self.offsets[key] = offset
        return True

    def _create_batch_iterator(self, mark_as_delete: Callable[[Any], None], to_key: Callable[[Any], Any],
                               to_value: Callable[[Any], Any], batch: Iterable[Any]) -> Iterable[tuple[Any, Any]]:
        for event in batch:
            key = to_key(event.key)
            if not self.newer(key, event.message.offset):
                continue
            if event.message.value is None:
                mark_as_delete(key)
            self._key_partition[key] = event.message.partition
            yield key, to_value(event.value)

    def written(self, key: Any, partition: int) -> None:
        """Note that this worker wrote ``key`` of ``partition`` (so a revocation forgets it too)."""
        self._key_partition[key] = partition
        self.pending.add(key)

    def deleted(self, key: Any) -> None:
        """Forget a key whose tombstone the changelog acknowledged (an evicted key costs no memory).

        Safe for a later re-read of the changelog: it replays the key's records in log order, so its
        tombstone comes after any older value and deletes it again.
        """
        if key not in self.data:
            self._key_partition.pop(key, None)
            self.offsets.pop(key, None)

    async def on_recovery_completed(self, active_tps: set, standby_tps: set) -> None:
        """Forget every key of a partition this worker no longer owns: value *and* offset.

        Faust's memory store drops only the values of keys it recovered, and keeps
        none of its own offsets; keeping the offset of a dropped key would make the
        next recovery of that partition skip the key's records (state lost).
        """
        partitions = {partition for _, partition in active_tps}
        for key, partition in list(self._key_partition.items()):
            if partition not in partitions:
                self.data.pop(key, None)
                self._key_partition.pop(key, None)
                self.offsets.pop(key, None)
                self.pending.discard(key)


class ValueCodec(codecs.Codec):
    """A Faust codec from a pair of functions (value <-> bytes)."""

    def __init__(self, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]) -> None:
        super().__init__()
        self._encode = encode
        self._decode = decode

    def _dumps(self, obj: Any) -> bytes:
        return self._encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self._decode(s)


def register_codec(name: str, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]) -> str:
    """Register a value codec with Faust under ``name`` (idempotent) and return the name."""
    codecs.register(name, ValueCodec(encode, decode))
    return name


class ChangelogWriter:
    """Appends (key, value) pairs to one topic partition in as few record batches as fit."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.batches_written = 0
        self.splits = 0

    async def write(self, topic: str, partition: int, items: Iterable[tuple[bytes, bytes | None]]) -> list[int]:
        """Send ``items``, wait for the broker to acknowledge them; their offsets, in order."""
        futures = []
        sizes = []
        batch = self.producer.create_batch()
        count = 0
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                if count == 0:
                    raise ValueError(f"a single changelog record of {len(value or b'')} bytes does not fit a batch")
                batch.close()
                futures.append(await self.producer.send_batch(batch, topic, partition=partition))
                sizes.append(count)
                self.splits += 1
                batch = self.producer.create_batch()
                count = 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a single changelog record of {len(value or b'')} bytes does not fit a batch")
            count += 1
        if count:
            batch.close()
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
            sizes.append(count)
        offsets = []
        for future, size in zip(futures, sizes):
            base = (await future).offset
            offsets.extend(range(base, base + size))
        self.batches_written += len(futures)
        return offsets


class KeyedStore(Generic[V]):
    """Read/modify/write access to a Faust table, flushed per batch."""

    def __init__(self, table: faust.Table, writer: ChangelogWriter, encode: Callable[[V], bytes],
                 decode: Callable[[bytes], V]) -> None:
        self.table = table
        self.writer = writer
        self.encode = encode
        self.decode = decode
        self.topic = table.changelog_topic.get_topic_name()
        self._dirty: dict[int, dict[str, V | None]] = defaultdict(dict)

    @property
    def data(self) -> GuardedMemoryStore:
        return self.table.data

    def get(self, key: str) -> V | None:
        return self.table.data.get(key)

    def put(self, partition: int, key: str, value: V) -> None:
        """Set ``key`` now; it reaches the changelog at the next :meth:`flush`."""
        self.table.data[key] = value
        self.data.written(key, partition)
        self._dirty[partition][key] = value

    def delete(self, partition: int, key: str) -> None:
        self.table.data.pop(key, None)
        self.data.written(key, partition)
        self._dirty[partition][key] = None

    async def flush(self) -> None:
        """Write every dirty key: one record batch per partition when it fits, partitions in parallel.

        On a failure the keys stay dirty, so the next flush writes them again.
        """
        dirty, self._dirty = self._dirty, defaultdict(dict)
        try:
            await self._flush(dirty)
        except BaseException:
            for partition, values in dirty.items():  # newer writes made meanwhile win
                self._dirty[partition] = values | self._dirty[partition]
            raise

    async def _flush(self, dirty: dict[int, dict[str, V | None]]) -> None:
        written = await asyncio.gather(*(self._write(partition, values) for partition, values in dirty.items()))
        for values, offsets in zip(dirty.values(), written):
            for key, offset in zip(values, offsets):
                self.data.pending.discard(key)
                self.data.offsets[key] = offset
                if values[key] is None:
                    self.data.deleted(key)

    async def _write(self, partition: int, values: dict[str, V | None]) -> list[int]:
        return await self.writer.write(self.topic, partition, [
            (key.encode(), None if value is None else self.encode(value)) for key, value in values.items()
        ])

    async def catch_up(self, client_options: dict[str, Any], start: dict[TopicPartition, int]) -> int:
        """Apply this table's changelog records from ``start`` (per partition) to the real end.

        Returns how many records were applied.
        """
        offsets = {TopicPartition(tp.topic, tp.partition): offset for tp, offset in start.items() if tp.topic == self.topic}
        tps = list(offsets)
        if not tps:
            return 0
        consumer = AIOKafkaConsumer(**client_options, enable_auto_commit=False, group_id=None,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20)
        await consumer.start()
        applied = 0
        try:
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, offsets[tp])
            pending = set(tps)
            while pending:
                fetched = await consumer.getmany(*pending, timeout_ms=200)
                for records in fetched.values():
                    for record in records:
                        key = record.key.decode()
                        if not self.data.newer(key, record.offset):
                            continue
                        self.data._key_partition[key] = record.partition
                        if record.value is None:
                            self.table.data.pop(key, None)
                        else:
                            self.table.data[key] = self.decode(record.value)
                        applied += 1
                for tp in list(pending):
                    highwater = consumer.highwater(tp)
                    if highwater is not None and await consumer.position(tp) >= highwater:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        return applied
