"""Stage 2: fold packed batches into per-customer state, score payments, segment customers.

For the packed batches taken together from ``<app_id>-events``, chunk by chunk:

1. skip entries a state has already applied (redelivery), drop events older
   than their partition's horizon and duplicate event ids (both counted),
   fold the rest into :class:`CustomerState`; a payment is scored against its
   customer's history first (:mod:`.risk`); customers past the horizon or
   beyond the cap are evicted (:mod:`..expiry`);
2. sweep a bounded slice of a partition whose event-time watermark reached a
   sweep time (``KAIROS_CUSTOMER_SWEEP_SECONDS``): evict the idle, re-vectorise
   the quiet at the sweep's time; learn the touched and swept customers'
   feature vectors (:mod:`.segments`);
3. publish: customer, segment and risk views and alerts to Redis (one
   pipeline), derived records downstream (risk snapshots and labels by
   payment id, the risk views to their log (:mod:`..view_log`), orders, product views and inventory counts to the
   sales stage, orders to every basket partition, traffic records and dead letters to the anomaly stage, clicks
   and orders to the sessions stage), alerts and segment changes to their topics;
4. flush every touched key, with the ingest counter that counted the chunk,
   as one changelog record batch per partition (appended atomically).

Publishing comes before the flush: a crash in between repeats outputs (views
are absolute, alerts are deduplicated by id, downstream stages skip offsets
they applied) but never loses them.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.pipeline.counters import COUNTER_KEY_PREFIX, IngestCounter, counter_key
from streams.pipeline.customers import CustomerState
from streams.pipeline.expiry import CLOCK_KEY_PREFIX, DAY, PartitionClock, clock_key
from streams.pipeline.outbox import Outbox
from streams.pipeline.packing import PackedBatch, partition_for
from streams.pipeline.replay_guard import RecentIds
from streams.pipeline.stages.anomaly import traffic_record
from streams.pipeline.stages.baskets import basket_record
from streams.pipeline.stages.risk import RiskScoring, ScoredPayment
from streams.pipeline.stages.sales import sales_view
from streams.pipeline.stages.sessions import session_values
from streams.pipeline.stages.segments import SegmentStage
from streams.pipeline.retry import until_done
from streams.pipeline.store import KeyedStore
from streams.pipeline.view_log import read_risk_views
from streams.pipeline.views import Alert, RedisViews, WriteBatch, mget
from streams.settings import KairosSettings

#: Entries folded between two changelog flushes: small enough that the touched
#: keys of a chunk fit one record batch (so they are appended atomically).
CHUNK_ENTRIES = 500
#: Label event ids remembered per partition to drop duplicate labels.
LABEL_IDS_PER_PARTITION = 1024
LEDGER_KEY_PREFIX = "\x1flabels/"
#: Customers a sweep visits per chunk (bounded work per batch).
SWEEP_SLICE = 2000
#: Least wall-clock seconds between two eviction log lines.
EVICTION_LOG_SECONDS = 60.0

log = logging.getLogger(__name__)


class LabelLedger:
    """The last label event ids of one partition (labels have no customer to hold them)."""

    def __init__(self, recent: RecentIds) -> None:
        self.recent = recent

    def to_state(self) -> dict[str, Any]:
        return {"kind": "labels", "recent": self.recent.to_state()}


TableValue = CustomerState | IngestCounter | LabelLedger | PartitionClock


def encode_value(value: TableValue) -> bytes:
    """Encode a customers-table value (customer, ingest counter or label ledger)."""
    return orjson.dumps(value.to_state())


def value_decoder(dedupe_capacity: int) -> Callable[[bytes], TableValue]:
    """The decoder matching :func:`encode_value` for a given dedupe window."""

    def decode(data: bytes) -> TableValue:
        state = orjson.loads(data)
        kind = state.get("kind")
        if kind == "ingest":
            return IngestCounter.from_state(state)
        if kind == "labels":
            return LabelLedger(RecentIds.from_state(LABEL_IDS_PER_PARTITION, state["recent"]))
        if kind == "clock":
            return PartitionClock.from_state(state)
        return CustomerState.from_state(state, dedupe_capacity)

    return decode


@dataclass
class Chunk:
    """What one chunk touched and must publish."""

    customers: dict[str, CustomerState] = field(default_factory=dict)
    #: Customers whose state changed: id -> partition.
    fresh: dict[str, int] = field(default_factory=dict)
    scored: list[ScoredPayment] = field(default_factory=list)
    risk_views: list[dict[str, str]] = field(default_factory=list)
    outbox: Outbox = field(default_factory=Outbox)
    entries: int = 0
    evicted: list[str] = field(default_factory=list)
    #: The clocks of the partitions the chunk's events came from, each put in the table once, when it completes.
    clocks: dict[int, PartitionClock] = field(default_factory=dict)


@dataclass
class Sweep:
    """A pass over one partition's customers as of event time ``at``, a slice at a time."""

    at: float
    keys: list[str]
    position: int = 0

    def take(self, budget: int) -> list[str]:
        part = self.keys[self.position:self.position + budget]
        self.position += len(part)
        return part

    @property
    def done(self) -> bool:
        return self.position >= len(self.keys)


class CustomerStage:
    """Applies packed batches to the ``customers`` table and publishes what follows from them."""

    def __init__(self, settings: KairosSettings, store: KeyedStore[TableValue], redis: Any, views: RedisViews,
                 producer: AIOKafkaProducer, segments: SegmentStage, risk: RiskScoring) -> None:
        self.settings = settings
        self.store = store
        self.redis = redis
        self.views = views
        self.producer = producer
        self.segments = segments
        self.risk = risk
        self.topics = settings.internal_topics
        #: Counter keys of this worker's partitions (the values are read fresh from the table).
        self.counter_keys: dict[str, int] = {}
        self.now = float("-inf")
        self.idle_seconds = settings.customer_idle_days * DAY
        #: Customers held per partition (exact after a cap scan; evictions by the clock lower it lazily).
        self.held: dict[int, int] = {}
        #: Partitions whose clock this worker has seen (the clock itself is read from the table).
        self.clock_partitions: set[int] = set()
        self.sweeps: dict[int, Sweep] = {}
        self.evicted = {"idle": 0, "cap": 0, "erased": 0}
        self._logged_evictions = 0
        self._eviction_logged_at = float("-inf")
        #: Held while views are built from the table and written (batches, republication).
        self.views_lock = asyncio.Lock()

    async def apply(self, items: list[tuple[int, PackedBatch]]) -> None:
        """Fold packed batches, each with the internal partition it arrived on."""
        async with self.views_lock:
            await self._apply(items)

    async def _apply(self, items: list[tuple[int, PackedBatch]]) -> None:
        chunk = Chunk()
        counters: dict[str, tuple[int, IngestCounter]] = {}
        for partition, batch in items:
            key = counter_key(batch.path, partition)
            counter = self._counter(key, partition, batch.event_type)
            counters[key] = (partition, counter)
            for offset, record in batch.entries:
                counter.count(offset, self._fold(partition, batch, offset, record, chunk))
                if chunk.entries >= CHUNK_ENTRIES:
                    await self._complete(chunk, counters)
                    chunk, counters = Chunk(), {key: (partition, counter)}
        await self._complete(chunk, counters)

    def _fold(self, partition: int, batch: PackedBatch, offset: int, record: dict[str, Any] | None,
              chunk: Chunk) -> str:
        chunk.entries += 1
        via = f"{batch.path}>{partition}"
        if record is None:
            chunk.outbox.add(self.topics["anomaly"], 0, "traffic", via, offset, None)  # a dead letter
            return "invalid"
        if batch.event_type == "labels":
            return self._label(partition, via, offset, record, chunk)
        if batch.event_type == "inventory":  # no customer: straight on to the sales stage (stock-out risk)
            chunk.outbox.add(self.topics["sales"], 0, "inventory", via, offset, record)
            return "processed"
        customer_id = record["customer_id"]
        clock = chunk.clocks.get(partition)
        if clock is None:
            clock = chunk.clocks[partition] = self._clock(partition)
        if clock.expired(record["ts"]):
            return "expired"
        clock.advance(batch.path, record["ts"], self.idle_seconds)
        state = chunk.customers.get(customer_id) or self.store.get(customer_id)
        if state is not None and clock.expired(last_seen(state)):
            self._evict(partition, customer_id, chunk, "idle")  # the sweep had not got to it yet
            state = None
        if state is None:
            if self.held.get(partition, 0) >= self.settings.max_customers_per_partition:
                self._enforce_cap(partition, clock, chunk)
            state = CustomerState.new(self.settings.dedupe_ids_per_customer, self.settings.segment_half_life_days)
            self.held[partition] = self.held.get(partition, 0) + 1
        chunk.customers[customer_id] = state
        if not state.applied.fresh(batch.path, offset):
            return "processed"  # applied before a crash: only its view is written again
        self.store.put(partition, customer_id, state)
        if state.recent.seen_before(record["event_id"]):
            return "duplicate"
        new_device = False
        if batch.event_type == "clicks":
            if record["action"] == "view" and record.get("sku"):
                chunk.outbox.add(self.topics["sales"], 0, "views", via, offset, sales_view(record))
        elif batch.event_type == "payments":
            scored = self.risk.score(state.history, record)
            new_device = scored.features.get("new_device", 0.0) > 0
            chunk.scored.append(scored)
            view = self.views.risk_payment_view(record, scored.assessment)
            chunk.risk_views.append(view)
            chunk.outbox.add(self.topics["risk_views"], partition, "risk_views", via, offset, view)
            chunk.outbox.add(self.topics["risk"], partition_for(record["payment_id"], self.settings.partitions),
                             "pending", via, offset, scored.snapshot())
        elif batch.event_type == "orders":
            chunk.outbox.add(self.topics["sales"], 0, "orders", via, offset, record)
            basket = basket_record(record, self.segments.segment_of(customer_id))
            for target in range(self.settings.partitions):
                chunk.outbox.add(self.topics["baskets"], target, "orders", via, offset, basket)
        if (traffic := traffic_record(batch.event_type, record, new_device)) is not None:
            chunk.outbox.add(self.topics["anomaly"], 0, "traffic", via, offset, traffic)
        if self.settings.propensity_enabled and (
                session := session_values(batch.event_type, record, state.orders, state.last_order_ts, state.clicks)) is not None:
            chunk.outbox.add(self.topics["sessions"], 0, "sessions", via, offset, session)
        state.apply(batch.event_type, record)
        chunk.fresh[customer_id] = partition
        self.now = max(self.now, record["ts"])
        return "processed"

    def _clock(self, partition: int) -> PartitionClock:
        clock = self.store.get(clock_key(partition))
        if clock is None:
            clock = PartitionClock()
            self.clock_partitions.add(partition)
        return clock

    def _evict(self, partition: int, customer_id: str, chunk: Chunk, reason: str) -> None:
        """Remove a customer from the table (a tombstone at the next flush) and from the chunk."""
        self.store.delete(partition, customer_id)
        chunk.customers.pop(customer_id, None)
        chunk.fresh.pop(customer_id, None)
        chunk.evicted.append(customer_id)
        self.held[partition] = max(0, self.held.get(partition, 0) - 1)
        self.evicted[reason] += 1

    def _customers_of(self, partition: int) -> list[tuple[str, CustomerState]]:
        """The customers ``partition`` holds now (one pass over the table's keys)."""
        found = []
        for key, part in list(self.store.data._key_partition.items()):
            if part == partition and isinstance(value := self.store.get(key), CustomerState):
                found.append((key, value))
        return found

    def _enforce_cap(self, partition: int, clock: PartitionClock, chunk: Chunk) -> None:
        """Make room for a new customer: evict the idle, then the least recently seen down to 15/16 of the cap."""
        cap = self.settings.max_customers_per_partition
        live = []
        for customer_id, state in self._customers_of(partition):
            if clock.expired(last_seen(state)):
                self._evict(partition, customer_id, chunk, "idle")
            else:
                live.append((last_seen(state), customer_id))
        if len(live) + 1 > cap:
            oldest = heapq.nsmallest(len(live) - (cap - max(1, cap // 16)), live)
            clock.raise_horizon(oldest[-1][0])
            self.store.put(partition, clock_key(partition), clock)
            for seen, customer_id in live:
                if clock.expired(seen):  # the oldest, and any seen at the same time as the last of them
                    self._evict(partition, customer_id, chunk, "cap")
        self.held[partition] = sum(1 for seen, _ in live if not clock.expired(seen))

    def _sweep(self, chunk: Chunk) -> dict[str, dict[str, float]]:
        """Advance the due sweeps by one bounded slice: evict the idle; the quiet customers' vectors at the
        sweep's event time."""
        vectors: dict[str, dict[str, float]] = {}
        budget = SWEEP_SLICE
        for partition in sorted(self.clock_partitions):
            clock = self.store.get(clock_key(partition))
            if clock is None:  # not (or no longer) this worker's
                self.sweeps.pop(partition, None)
                continue
            sweep = self.sweeps.get(partition)
            if sweep is None:
                at = clock.sweep_due(self.settings.customer_sweep_seconds)
                if at is None:
                    continue
                sweep = self.sweeps[partition] = Sweep(at, [key for key, _ in self._customers_of(partition)])
            for customer_id in sweep.take(budget):
                budget -= 1
                state = chunk.customers.get(customer_id) or self.store.get(customer_id)
                if not isinstance(state, CustomerState):
                    continue
                if clock.expired(last_seen(state)):
                    self._evict(partition, customer_id, chunk, "idle")
                elif customer_id not in chunk.fresh:
                    vectors[customer_id] = state.features.vector(sweep.at)
            if sweep.done:
                clock.swept_at = sweep.at
                self.store.put(partition, clock_key(partition), clock)
                del self.sweeps[partition]
            if budget <= 0:
                break
        return vectors

    def _sweep_time(self, partition: int) -> float:
        """The event time ``partition``'s customers are read at: its sweep under way, else its last one."""
        if (sweep := self.sweeps.get(partition)) is not None:
            return sweep.at
        clock = self.store.get(clock_key(partition))
        return clock.swept_at if clock is not None else float("-inf")

    def sweep_pending(self) -> bool:
        """True while a partition has a sweep under way or due (the stage's timer then advances it)."""
        every = self.settings.customer_sweep_seconds
        return bool(self.sweeps) or any(
            clock.sweep_due(every) is not None for p in self.clock_partitions
            if (clock := self.store.get(clock_key(p))) is not None)

    async def sweep(self) -> None:
        """Advance the sweeps without new events (the input went quiet), one slice."""
        async with self.views_lock:
            if self.sweep_pending():
                await self._complete(Chunk(), {})

    async def erase(self, customer_ids: list[str]) -> None:
        """Erase customers of the partitions this worker owns: their state (a changelog tombstone), their
        place in the segmenter, and every Redis key and alert of theirs (see :mod:`streams.pipeline.erasure`).

        One chunk, completed like a batch's (under :attr:`views_lock`), so a batch can never write a view of
        theirs built from the state erased here.
        """
        async with self.views_lock:
            chunk = Chunk()
            for customer_id in customer_ids:
                partition = partition_for(customer_id, self.settings.partitions)
                if self.store.get(customer_id) is not None:
                    self._evict(partition, customer_id, chunk, "erased")
                else:
                    chunk.evicted.append(customer_id)  # its keys go even when its state is gone already
            await self._complete(chunk, {})
            await until_done("erasure views", lambda: self.views.erase_customers(self.redis, set(customer_ids)))

    def _log_evictions(self) -> None:
        total = sum(self.evicted.values())
        now = time.monotonic()
        if total > self._logged_evictions and now - self._eviction_logged_at >= EVICTION_LOG_SECONDS:
            log.info("customers: %d evicted since the last report (%d idle, %d over the cap in total); horizons %s",
                     total - self._logged_evictions, self.evicted["idle"], self.evicted["cap"],
                     {p: clock.horizon for p in sorted(self.clock_partitions)
                      if (clock := self.store.get(clock_key(p))) is not None})
            self._logged_evictions, self._eviction_logged_at = total, now

    def metrics(self) -> dict[str, int]:
        """Customers held and evicted by this worker (``customers_evicted`` since it started)."""
        return {"customers_held": sum(self.held.values()), "customers_evicted": sum(self.evicted.values()),
                "customers_evicted_idle": self.evicted["idle"], "customers_evicted_cap": self.evicted["cap"],
                "customers_erased": self.evicted["erased"]}

    def _label(self, partition: int, via: str, offset: int, record: dict[str, Any], chunk: Chunk) -> str:
        key = LEDGER_KEY_PREFIX + str(partition)
        ledger = self.store.get(key)
        if ledger is None:
            ledger = LabelLedger(RecentIds(LABEL_IDS_PER_PARTITION))
        self.store.put(partition, key, ledger)
        if ledger.recent.seen_before(record["event_id"]):
            return "duplicate"
        chunk.outbox.add(self.topics["risk"], partition_for(record["payment_id"], self.settings.partitions),
                         "labels", via, offset, record)
        return "processed"

    async def _complete(self, chunk: Chunk, counters: dict[str, tuple[int, IngestCounter]]) -> None:
        """Publish the chunk's outputs, then flush its state with its counters.

        Both steps retry on I/O errors (a broker or Redis timeout) until they
        succeed, so a chunk is never half-published and its state never half
        written; the stage stalls (lag grows) while a dependency is down.
        """
        for partition, clock in chunk.clocks.items():  # the sweep reads a new one from the table
            self.store.put(partition, clock_key(partition), clock)
        refreshed = self._sweep(chunk)
        self.segments.forget(chunk.evicted)
        # A touched customer's vector as of the later of its own latest event and its partition's sweep time
        # (not the batch's time: batching must not matter), as the sweep reads quiet ones.
        update = self.segments.observe(
            {cid: chunk.customers[cid].features.vector(self._sweep_time(partition))
             for cid, partition in chunk.fresh.items()}, self.now, refreshed)
        self._log_evictions()
        stamp = {"updated_at": f"{time.time():.3f}"}
        views = [(cid, state.view() | stamp) for cid, state in chunk.customers.items()]
        alerts = [risk_alert(scored) for scored in chunk.scored if scored.alert]
        for alert in alerts:
            chunk.outbox.add_message(self.settings.topics.alerts, alert.alert_id.encode(), alert.message())
        for change in update.changes:
            chunk.outbox.add_message(self.settings.topics.segment_changes, change.customer_id.encode(),
                                     json.dumps(change.to_event()).encode())

        async def write_views() -> None:
            batch = WriteBatch()
            self.views.forget_customers(batch, chunk.evicted)  # first: an evicted customer may be back since
            self.views.forget_segments(batch, update.removed)
            self.views.customers(batch, views)
            self.views.segments(batch, update.segments)
            if update.segments or update.removed or chunk.evicted:
                self.views.segment_sizes(batch, self.segments.sizes())
            for view in chunk.risk_views:
                self.views.risk_payment(batch, view)
            for alert in alerts:
                self.views.alert(batch, alert)
            await batch.execute(self.redis)

        await asyncio.gather(until_done("customer views", write_views),
                             until_done("derived records", lambda: chunk.outbox.send(self.producer)))
        for key, (partition, counter) in counters.items():
            self.store.put(partition, key, counter)
        await until_done("customers changelog", self.store.flush)

    async def republish(self, partition: int) -> tuple[int, int]:
        """Write every customer view and segment id of ``partition`` from the table, and its risk payment
        views from the view log, when Redis came back empty.

        Holds :attr:`views_lock`, as :meth:`apply` does, so a view built from the
        table here can never overwrite a newer one written by a batch meanwhile.
        Returns how many customers and risk views were written.
        """
        risk_views: dict[str, dict[str, str]] = {}
        if self._holds_customers(partition):  # no customer yet (a first start): no payment was scored either
            risk_views = await read_risk_views(self.settings.kafka_client_options(), self.topics["risk_views"],
                                               partition)
        async with self.views_lock:
            customers = self.owned_customers({partition})
            stamp = {"updated_at": f"{time.time():.3f}"}
            batch = WriteBatch()
            self.views.customers(batch, [(cid, state.view() | stamp) for cid, state in customers])
            segments = {cid: segment for cid, _ in customers
                        if (segment := self.segments.segment_of(cid)) is not None}
            self.views.segments(batch, segments)
            now = time.time()
            held = {cid for cid, _ in customers}  # an erased (or evicted) customer's payment views stay gone
            restored = sum(self.views.risk_payment(batch, view, now) for view in risk_views.values()
                           if view.get("customer_id") in held)
            batch.set(self.views.keys.views_published(partition), "1")
            await batch.execute(self.redis)
            return len(customers), restored

    def _counter(self, key: str, partition: int, event_type: str) -> IngestCounter:
        counter = self.store.get(key)
        if counter is None:
            # Into the table now: a second batch of the same path in this take must count on it too.
            counter = IngestCounter(event_type)
            self.store.put(partition, key, counter)
        self.counter_keys[key] = partition
        return counter

    def reload_counters(self) -> None:
        """Find every ingest counter, clock and customer in the table (after recovery or a rebalance)."""
        self.counter_keys = {}
        self.clock_partitions = set()
        self.held = {}
        self.sweeps = {}  # a sweep under way starts again from its beginning (same event time, same result)
        for key, partition in list(self.store.data._key_partition.items()):
            if key.startswith(COUNTER_KEY_PREFIX):
                if key in self.store.table.data:
                    self.counter_keys[key] = int(key.rsplit(">", 1)[1])
            elif key.startswith(CLOCK_KEY_PREFIX):
                self.clock_partitions.add(int(key[len(CLOCK_KEY_PREFIX):]))
            elif isinstance(self.store.get(key), CustomerState):
                self.held[partition] = self.held.get(partition, 0) + 1

    async def relearn_segments(self, partitions: set[int]) -> int:
        """Refill a fresh segmenter (after a restart or rebalance) with every customer of ``partitions``
        and publish their segments; how many were learned.

        Each vector is read as the stage learns it: at the partition's sweep time, or at the
        customer's last event when that came later.
        """
        async with self.views_lock:
            learned = 0
            for partition in partitions:
                at = self._sweep_time(partition)
                customers = self._customers_of(partition)
                for first in range(0, len(customers), SWEEP_SLICE):
                    vectors = {cid: state.features.vector(at) for cid, state in customers[first:first + SWEEP_SLICE]}
                    served: list[Any] = []

                    async def read_served() -> None:
                        served[:] = await mget(self.redis, [self.views.keys.segment_of(cid) for cid in vectors])  # noqa: B023

                    await until_done("segment views", read_served)
                    published = {cid: int(segment) for cid, segment in zip(vectors, served) if segment is not None}
                    update = self.segments.refill(vectors, published)
                    batch = WriteBatch()
                    self.views.forget_segments(batch, update.removed)
                    self.views.segments(batch, update.segments)
                    self.views.segment_sizes(batch, self.segments.sizes())
                    await until_done("segment views", lambda: batch.execute(self.redis))  # noqa: B023
                    learned += len(vectors)
            return learned

    def counter_totals(self, partitions: set[int]) -> list[IngestCounter]:
        """Counters of the given internal partitions, as the table holds them now."""
        found = (self.store.get(key) for key, partition in self.counter_keys.items() if partition in partitions)
        return [counter for counter in found if counter is not None]

    def _holds_customers(self, partition: int) -> bool:
        """True as soon as one customer of ``partition`` is found (no full scan, unlike :meth:`owned_customers`)."""
        parts = self.settings.partitions
        return any(isinstance(value, CustomerState) and partition_for(key, parts) == partition
                   for key, value in list(self.store.table.data.items()))

    def owned_customers(self, partitions: set[int]) -> list[tuple[str, CustomerState]]:
        """Customers of the given internal partitions held in the table."""
        parts = self.settings.partitions
        return [
            (key, value) for key, value in list(self.store.table.data.items())
            if isinstance(value, CustomerState) and partition_for(key, parts) in partitions
        ]


def last_seen(state: CustomerState) -> float:
    """A customer's latest event time (an empty customer counts as seen never)."""
    return float("-inf") if state.last_seen is None else state.last_seen


def risk_alert(scored: ScoredPayment) -> Alert:
    """The alert a risky payment raises, with its reasons."""
    payment, assessment = scored.record, scored.assessment
    return Alert(
        kind="risk", alert_id=f"risk:{payment['payment_id']}", subject=payment["payment_id"],
        score=assessment.score, reasons=[reason.text for reason in assessment.reasons], ts=payment["ts"],
        extra={"customer_id": payment["customer_id"], "payment_id": payment["payment_id"],
               "amount": payment["amount"], "decision": assessment.decision, "mode": assessment.mode,
               "model_version": assessment.model_version},
    )
