"""Stage 2: fold packed batches into per-customer state and its Redis view.

For the packed batches taken together from the internal topic: skip entries
this state has already applied (redelivery), drop duplicate event ids
(counted), fold the rest into :class:`CustomerState`, count outcomes in the
path's :class:`IngestCounter`, flush every touched key in one changelog record
batch per partition per chunk, then write the touched customers' views through
one Redis pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

from streams.pipeline.counters import COUNTER_KEY_PREFIX, IngestCounter, counter_key
from streams.pipeline.customers import CustomerState
from streams.pipeline.packing import PackedBatch
from streams.pipeline.store import KeyedStore
from streams.pipeline.views import RedisViews

TableValue = CustomerState | IngestCounter

#: Entries folded between two changelog flushes: small enough that the touched
#: keys of a chunk fit one record batch (so they are appended atomically).
CHUNK_ENTRIES = 500


def encode_value(value: TableValue) -> bytes:
    """Encode a customers-table value (customer state or ingest counter)."""
    return orjson.dumps(value.to_state())


def value_decoder(dedupe_capacity: int):
    """The decoder matching :func:`encode_value` for a given dedupe window."""

    def decode(data: bytes) -> TableValue:
        state = orjson.loads(data)
        if state.get("kind") == "ingest":
            return IngestCounter.from_state(state)
        return CustomerState.from_state(state, dedupe_capacity)

    return decode


def chunks(entries: list, size: int) -> Iterator[list]:
    for start in range(0, len(entries), size):
        yield entries[start:start + size]


class CustomerStage:
    """Applies packed batches to the ``customers`` table and the customer views."""

    def __init__(self, store: KeyedStore[TableValue], redis: Any, views: RedisViews, dedupe_capacity: int) -> None:
        self.store = store
        self.redis = redis
        self.views = views
        self.dedupe_capacity = dedupe_capacity
        self.counters: dict[str, tuple[int, IngestCounter]] = {}

    async def apply(self, items: list[tuple[int, PackedBatch]]) -> None:
        """Fold packed batches, each with the internal partition it arrived on."""
        viewed: dict[str, CustomerState] = {}
        counters: dict[str, tuple[int, IngestCounter]] = {}
        folded = 0
        for partition, batch in items:
            key = counter_key(batch.path, partition)
            counter = self._counter(key, partition, batch.event_type)
            counters[key] = (partition, counter)
            for offset, record in batch.entries:
                counter.count(offset, self._fold(partition, batch, offset, record, viewed))
                folded += 1
                if folded % CHUNK_ENTRIES == 0:
                    await self._flush(counters)
                    counters = {key: (partition, counter)}
        await self._flush(counters)
        if viewed:
            stamp = {"updated_at": f"{time.time():.3f}"}
            pipe = self.redis.pipeline(transaction=False)
            self.views.customers(pipe, ((cid, state.view() | stamp) for cid, state in viewed.items()))
            await pipe.execute()

    def _counter(self, key: str, partition: int, event_type: str) -> IngestCounter:
        counter = self.store.get(key)
        if counter is None:
            counter = IngestCounter(event_type)
        self.counters[key] = (partition, counter)
        return counter

    async def _flush(self, counters: dict[str, tuple[int, IngestCounter]]) -> None:
        """Write the chunk's customers with the counters that counted them (same record batch)."""
        for key, (partition, counter) in counters.items():
            self.store.put(partition, key, counter)
        await self.store.flush()

    def _fold(self, partition: int, batch: PackedBatch, offset: int, record: dict[str, Any] | None,
              viewed: dict[str, CustomerState]) -> str:
        if record is None:
            return "invalid"
        if batch.event_type == "labels":
            return "processed"
        customer_id = record["customer_id"]
        state = viewed.get(customer_id)
        if state is None:
            state = self.store.get(customer_id)
            if state is None:
                state = CustomerState.new(self.dedupe_capacity)
            viewed[customer_id] = state
        if not state.applied.fresh(batch.path, offset):
            return "processed"
        if state.recent.seen_before(record["event_id"]):
            outcome = "duplicate"
        else:
            state.apply(batch.event_type, record)
            outcome = "processed"
        self.store.put(partition, customer_id, state)
        return outcome

    def reload_counters(self) -> None:
        """Find every ingest counter in the table (after recovery or a rebalance)."""
        self.counters = {
            key: (int(key.rsplit(">", 1)[1]), value)
            for key, value in self.store.table.data.items()
            if key.startswith(COUNTER_KEY_PREFIX)
        }

    def counter_totals(self, partitions: set[int]) -> list[IngestCounter]:
        """Counters of the internal partitions this worker currently owns."""
        return [counter for partition, counter in self.counters.values() if partition in partitions]
