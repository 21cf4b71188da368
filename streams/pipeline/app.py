"""The Faust app: topics, tables, services, agents and timers, wired once. Start reading here.

The flow (``<app>`` is ``KAIROS_APP_ID``):

1. :class:`~streams.pipeline.ingest.Ingestor` (a service, not an agent) reads
   ``clicks``/``orders``/``payments``/``labels`` (and the optional
   ``inventory``, routed by SKU) in batches, validates,
   dead-letters, and forwards packed batches to ``<app>-events`` partitioned
   by customer (labels by payment).
2. The ``customers`` agent (:class:`~.stages.customers.CustomerStage`) folds
   them into the ``customers`` table, scores payments, learns segments and
   publishes views; it sends risk snapshots and labels to ``<app>-risk`` and
   orders (and inventory counts) to ``<app>-sales``.
3. The ``risk`` agent (:class:`~.stages.risk.RiskLearner` per partition)
   joins snapshots with late labels and learns; the ``sales`` agent
   (:class:`~.stages.sales.SalesState`) closes windows, forecasts and alerts,
   and with inventory counts serves stock-out risk and ``restock`` alerts;
   the ``baskets`` agent (:class:`~.stages.baskets.BasketState`) counts
   itemsets partitioned by SKU; the ``anomaly`` agent
   (:class:`~.stages.anomaly.AnomalyState`) counts traffic per minute of
   event time and alerts on anomalous minutes; the ``sessions`` agent
   (:class:`~.stages.sessions.SessionState`) scores live sessions' conversion
   propensity and learns who converts. All five checkpoint with held
   acknowledgements (:mod:`.snapshots`).
4. Timers: segment sync rounds and risk model sync across workers
   (:mod:`.model_sync`), analyst-rule reloads, basket rule publication,
   metrics, views restored after Redis came back empty; each retried at its
   next tick when it fails (:mod:`.retry`), never stopping the worker.

Nothing is committed that a stage did not apply: stages mark what they
applied and the consumer drops any other acknowledgement
(:mod:`.transport`); a rebalance waits for the writes in flight
(:mod:`.fence`). ``/health/`` and ``/ready/`` say how the worker is
(:mod:`.health`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaProducer

from streams.pipeline import erasure
from streams.pipeline.counters import totals
from streams.pipeline.fence import WriteFence
from streams.pipeline.group_watch import GroupWatch
from streams.pipeline.health import Readiness, StallDetector, readiness
from streams.pipeline.ingest import Ingestor
from streams.pipeline.model_sync import ModelSync
from streams.pipeline.packing import decode_packet, partition_for
from streams.pipeline.path_clock import fold_packet
from streams.pipeline.retry import FAILING, FAILURES_TOTAL, guarded, until_done
from streams.pipeline.snapshots import PartitionSnapshots
from streams.pipeline.stages.anomaly import AnomalyState, publish_anomalies
from streams.pipeline.stages.baskets import (
    SYNC_KEY_PREFIX as BASKETS_SYNC, BasketState, basket_totals, foreign_supports, publish_rules,
)
from streams.pipeline.stages.customers import CustomerStage, encode_value, value_decoder
from streams.pipeline.stages.risk import RiskLearner, RiskScoring, drift_alerts, sync_learners
from streams.pipeline.stages.sales import SalesState, publish_sales
from streams.pipeline.stages.segments import SegmentStage
from streams.pipeline.stages.sessions import SessionState, publish_sessions
from streams.pipeline.store import MAX_BATCH_BYTES, ChangelogWriter, KeyedStore, register_codec
from streams.pipeline.transport import FETCH_IDLE_WAIT_ENV, FETCH_WAIT_ENV, PromptFetchConsumer, mark_applied
from streams.pipeline.views import RedisViews, WriteBatch, connect_redis, mget
from streams.settings import KairosSettings

log = logging.getLogger(__name__)

#: Internal messages folded together (at most), and how long to wait for more.
TAKE_MESSAGES = 64
TAKE_WITHIN_SECONDS = 0.002
#: On a stop, how long the batches being written may take to finish before their clients close.
SHUTDOWN_WRITES_SECONDS = 15.0
#: The sessions stage's checkpoints at most this often (its state holds the records waiting for the watermark:
#: larger than the other stages', and its messages are replayed cheaply after a crash).
SESSIONS_SNAPSHOT_SECONDS = 10.0
#: The share of the worker's time basket rounds may take: after a round of ``d`` seconds the next one waits at
#: least ``d / BASKET_ROUND_SHARE`` (a wholesale shop's ~90k rules take ~2 s to mine and check: a round every
#: ~20 s instead of every ``KAIROS_BASKET_PUBLISH_SECONDS``; a round of under 0.2 s keeps the setting's pace).
BASKET_ROUND_SHARE = 0.1
#: The share of the event loop a stage catching up on work due (``pending``: the anomaly minutes or the sessions
#: that fell due at an event-time jump, a backfill's end) may take: after a slice of ``d`` seconds it waits
#: ``d · (1 / CATCH_UP_SHARE − 1)`` before the next, so the live clicks and payments are served in between.
CATCH_UP_SHARE = 0.5
#: Largest snapshot record (a partition state, compressed).
MAX_SNAPSHOT_BYTES = 64 << 20


async def catch_up_pause(took: float) -> None:
    """After a slice of catch-up work that took ``took`` seconds: leave the loop to others (``CATCH_UP_SHARE``)."""
    await asyncio.sleep(took * (1.0 / CATCH_UP_SHARE - 1.0))


def stage_topics(settings: KairosSettings) -> list[str]:
    """The internal topics the stages consume (the app's consumer group)."""
    return [settings.internal_topics[name] for name in ("events", "risk", "sales", "baskets", "anomaly", "sessions")]


def identity(value: bytes) -> bytes:
    return value


@dataclass
class Runtime:
    """What the agents share inside one worker process, created at start-up."""

    producer: AIOKafkaProducer
    snapshot_producer: AIOKafkaProducer
    redis: Any
    customers: CustomerStage
    segments: SegmentStage
    risk: RiskScoring
    learners: PartitionSnapshots[RiskLearner]
    sales: PartitionSnapshots[SalesState]
    baskets: PartitionSnapshots[BasketState]
    anomaly: PartitionSnapshots[AnomalyState]
    sessions: PartitionSnapshots[SessionState]

    def snapshot_stages(self) -> tuple[PartitionSnapshots, ...]:
        """Every checkpointed stage."""
        return (self.learners, self.sales, self.baskets, self.anomaly, self.sessions)


class KairosApp:
    """Builds and holds the Faust app for one set of settings."""

    def __init__(self, settings: KairosSettings) -> None:
        self.settings = settings
        os.environ[FETCH_WAIT_ENV] = str(settings.kafka_fetch_max_wait_ms)
        os.environ[FETCH_IDLE_WAIT_ENV] = str(settings.kafka_fetch_idle_wait_ms)
        self.views = RedisViews(settings)
        self.runtime: Runtime | None = None
        #: Stages write inside this fence; a revocation closes it (see fence.py).
        self.fence = WriteFence()
        self._runtime_lock: asyncio.Lock | None = None
        #: Set by a recovery: the next segment sync first rebuilds the segmenter from the synced model.
        self._resume_segments = True
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        #: The label counts last logged by _note_time_effects, and when.
        self._time_effects: tuple[dict[str, int], float] = ({}, float("-inf"))
        self._late_sales: tuple[tuple[int, int], float] = ((0, 0), float("-inf"))
        self._risk_sync_lock = asyncio.Lock()
        #: The latest erasure (``erasures:recent`` score) whose customers' open sessions this worker dropped.
        self._sessions_erased_through = 0.0
        #: No basket round before this (monotonic clock): see BASKET_ROUND_SHARE.
        self._baskets_next_at = float("-inf")
        #: The last round's rules count fewer baskets than its partitions had counted when it ended.
        self._baskets_stale = False
        #: Baskets this worker's partitions had counted at the last basket timer tick.
        self._baskets_counted = 0
        datadir = Path(".kairos") / "faust" / f"{settings.app_id}-data"  # memory tables: Faust only makes the folder
        datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates the last level only
        self.app = faust.App(
            settings.app_id,
            broker=f"kairos://{settings.kafka_bootstrap}",
            broker_credentials=self._faust_credentials(),
            store="kairos://",  # GuardedMemoryStore (streams/pipeline/store.py)
            datadir=str(datadir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.kafka_replication_factor,
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            producer_linger_ms=10,
            consumer_auto_offset_reset="earliest",
            web_enabled=settings.worker_web_enabled,
            web_port=settings.worker_web_port,
            web_host="127.0.0.1",
            autodiscover=False,
            table_standby_replicas=0,
            # Faust compares offsets it has read with the end offset the broker
            # reports; brokers that report the last batch's base offset (Tansu)
            # trip this check although nothing is wrong (see store.py).
            recovery_consistency_check=False,
            # Checkpointed stages hold acks until their snapshot; on shutdown the
            # unacknowledged tail is simply replayed by the next owner.
            stream_wait_empty=False,
        )
        internal = settings.internal_topics
        #: Messages of these topics are committed only once a stage applied them (see transport.py).
        self.app.gated_topics = frozenset(internal[name] for name in ("events", "risk", "sales", "baskets",
                                                                                  "anomaly", "sessions"))
        self.events_topic = self._topic(internal["events"], settings.partitions)
        self.risk_topic = self._topic(internal["risk"], settings.partitions)
        self.sales_topic = self._topic(internal["sales"], 1)
        self.baskets_topic = self._topic(internal["baskets"], settings.partitions)
        self.anomaly_topic = self._topic(internal["anomaly"], 1)
        self.sessions_topic = self._topic(internal["sessions"], 1)
        self._customer_decoder = value_decoder(settings.dedupe_ids_per_customer)
        self.customers_table = self._table("customers", settings.partitions, encode_value,
                                           self._customer_decoder, MAX_BATCH_BYTES)
        self.risk_table = self._table("risk-snapshots", settings.partitions, identity, identity, MAX_SNAPSHOT_BYTES)
        self.sales_table = self._table("sales-snapshots", 1, identity, identity, MAX_SNAPSHOT_BYTES)
        self.baskets_table = self._table("basket-snapshots", settings.partitions, identity, identity,
                                         MAX_SNAPSHOT_BYTES)
        self.anomaly_table = self._table("anomaly-snapshots", 1, identity, identity, MAX_SNAPSHOT_BYTES)
        self.sessions_table = self._table("session-snapshots", 1, identity, identity, MAX_SNAPSHOT_BYTES)
        self.ingestor = Ingestor(settings)
        self.model_sync = ModelSync(settings)
        self.app.service(self.ingestor)
        self.app.service(self.model_sync)
        self.group_watch = GroupWatch(
            settings.kafka_client_options(),
            {f"{settings.app_id}-ingest": list(settings.topics.inputs()),
             settings.app_id: stage_topics(settings)},
            stall_seconds=settings.worker_stall_seconds, probe_seconds=settings.worker_probe_seconds,
            exit_after_seconds=settings.worker_exit_after_stall_seconds, outside_cause=self._stall_explained)
        self.app.service(self.group_watch)
        self.app.agent(self.events_topic, name="customers")(self._customers_agent)
        self.app.agent(self.risk_topic, name="risk")(self._risk_agent)
        self.app.agent(self.sales_topic, name="sales")(self._sales_agent)
        self.app.agent(self.baskets_topic, name="baskets")(self._baskets_agent)
        self.app.agent(self.anomaly_topic, name="anomaly")(self._anomaly_agent)
        self.app.agent(self.sessions_topic, name="sessions")(self._sessions_agent)
        # A failing timer (Redis or the broker away) is retried at its next tick; it never stops the worker.
        for interval, what, step in (
            (settings.metrics_flush_seconds, "metrics flush", self._flush_metrics),
            (settings.metrics_flush_seconds, "views restore", self._restore_views),
            (settings.metrics_flush_seconds, "erasures", self._apply_erasures),
            (settings.metrics_flush_seconds, "sales tick", self._tick_sales),
            (settings.metrics_flush_seconds, "anomaly tick", self._tick_anomaly),
            (settings.metrics_flush_seconds, "sessions tick", self._tick_sessions),
            (settings.segment_sync_seconds, "segment sync", self._sync_segments),
            (settings.metrics_flush_seconds, "customer sweep", self._sweep_customers),
            (settings.risk_sync_seconds, "risk sync", self._sync_risk),
            (min(1.0, settings.snapshot_seconds), "checkpoint", self._checkpoint),
            (settings.basket_publish_seconds, "basket publication", self._publish_baskets),
        ):
            self.app.timer(interval)(guarded(what, step))
        self.stall = StallDetector(settings.worker_stall_seconds)
        #: Last events-topic offset applied, per (partition, assignment epoch): logged on a stop.
        self.applied_through: dict[tuple[int, int | None], int] = {}
        #: Events-topic offsets the consumer never delivered within an assignment (should stay 0).
        self.offsets_skipped = 0
        #: Revocations so far: a table recovered while a new rebalance began restores no partition state.
        self._revocations = 0
        self.app.page("/health/")(self._health_page)
        self.app.page("/ready/")(self._ready_page)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_before_shutdown.connect(self._stop_runtime)
        for table in (self.customers_table, self.risk_table, self.sales_table, self.baskets_table,
                      self.anomaly_table, self.sessions_table):
            table.on_recover(self._recovered(table))

    # -- health --------------------------------------------------------

    def progress(self) -> tuple[int, int]:
        """``(lag, position)`` over every input this worker consumes: the ingest's input topics (read positions)
        and the stages' internal topics (committed, i.e. applied, positions)."""
        lag, position = self.ingestor.lag, self.ingestor.consumed
        consumer = self.app.consumer
        if isinstance(consumer, PromptFetchConsumer):
            stage_lag, stage_position = consumer.applied_progress()
            lag, position = lag + stage_lag, position + stage_position
        return lag, position

    def readiness(self) -> Readiness:
        """Ready to do its work now, or the reasons why not (see :mod:`.health`); observes the progress first,
        so that a ``/ready`` request sees a stall even when the metrics timer is blocked (a frozen Redis)."""
        lag, position = self.progress()
        self.stall.observe(lag, position)
        return readiness(self.app.rebalancing, self.app.in_recovery, self.stall, lag, self.group_watch.stalls())

    def _stall_explained(self) -> bool:
        """Whether something outside the consumer groups explains a stall now: a failing step (Redis or the
        broker away) or a table being recovered."""
        return bool(FAILING) or self.app.in_recovery

    # Faust stores a page handler as the view's ``get``: a bound method is called with the request only.
    async def _health_page(self, request: Any) -> Any:
        return self.app.web.json({"alive": True, "worker": self.worker_id})

    async def _ready_page(self, request: Any) -> Any:
        ready = self.readiness()
        return self.app.web.json(ready.to_dict(), status=200 if ready.ready else 503)

    # -- construction --------------------------------------------------

    def _topic(self, name: str, partitions: int) -> faust.TopicT:
        return self.app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                              value_serializer="raw", partitions=partitions, internal=True)

    def _table(self, name: str, partitions: int, encode: Callable, decode: Callable, max_bytes: int) -> faust.Table:
        """A table keyed by str whose changelog values use ``encode``/``decode``."""
        codec = register_codec(f"kairos.{self.settings.app_id}.{name}", encode, decode)
        changelog = self.app.topic(
            f"{self.settings.app_id}-{name}-changelog",
            key_type=str, key_serializer="raw", value_serializer=codec,
            partitions=partitions, compacting=True, deleting=False,
            acks=False, internal=True, maxsize=131_072, allow_empty=True,
            config={"max.message.bytes": str(max_bytes + 64 * 1024)},
        )
        return self.app.Table(name, partitions=partitions, key_type=str, changelog_topic=changelog)

    def _faust_credentials(self) -> Any:
        s = self.settings
        if s.kafka_security_protocol == "PLAINTEXT":
            return None
        ssl_context = s.kafka_client_options().get("ssl_context")
        if s.kafka_security_protocol.startswith("SASL"):
            password = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else ""
            return faust.SASLCredentials(
                username=s.kafka_sasl_username or "", password=password,
                mechanism=s.kafka_sasl_mechanism, ssl_context=ssl_context,
            )
        return faust.SSLCredentials(ssl_context)

    async def start_runtime(self) -> Runtime:
        """Create what the agents share (once): producers, Redis client, stages."""
        if self._runtime_lock is None:
            self._runtime_lock = asyncio.Lock()
        async with self._runtime_lock:
            if self.runtime is None:
                self.runtime = await self._new_runtime()
        return self.runtime

    async def _stop_runtime(self, app: faust.App, **kwargs: Any) -> None:
        """On a stop, after Faust stopped fetching and before it stops the agents: let the writes in
        flight finish (bounded), then close the clients they write with."""
        if not await self.fence.shut(SHUTDOWN_WRITES_SECONDS):
            log.warning("stop: a batch still writing after %.0f s is left unacknowledged (its next owner "
                        "applies it)", SHUTDOWN_WRITES_SECONDS)
        log.info("stop: customers applied through %s", {f"p{p}/a{e}": o for (p, e), o in self.applied_through.items()})
        runtime, self.runtime = self.runtime, None  # the timers find nothing to do from now on
        if runtime is not None:
            await runtime.producer.stop()
            await runtime.snapshot_producer.stop()
            await runtime.redis.aclose()

    async def _new_runtime(self) -> Runtime:
        options = self.settings.kafka_client_options()
        producer = AIOKafkaProducer(**options, acks="all", linger_ms=2, max_batch_size=MAX_BATCH_BYTES,
                                    max_request_size=4 << 20, client_id=f"{self.settings.app_id}-state")
        snapshot_producer = AIOKafkaProducer(**options, acks="all", max_batch_size=MAX_SNAPSHOT_BYTES,
                                             max_request_size=MAX_SNAPSHOT_BYTES + (1 << 20),
                                             client_id=f"{self.settings.app_id}-snapshots")
        await producer.start()
        await snapshot_producer.start()
        redis = connect_redis(self.settings)
        writer, snapshot_writer = ChangelogWriter(producer), ChangelogWriter(snapshot_producer)
        segments = SegmentStage(self.settings, self.model_sync)
        risk = RiskScoring(self.settings)
        customers = CustomerStage(
            self.settings, KeyedStore(self.customers_table, writer, encode_value, self._customer_decoder),
            redis, self.views, producer, segments, risk,
        )
        learners = PartitionSnapshots(
            "risk", KeyedStore(self.risk_table, snapshot_writer, identity, identity),
            lambda partition: RiskLearner.new(self.settings), RiskLearner.restore,
            self._checkpoint_interval(self.settings.snapshot_seconds), entries=True)
        sales = PartitionSnapshots(
            "sales", KeyedStore(self.sales_table, snapshot_writer, identity, identity),
            lambda partition: SalesState.new(self.settings),
            lambda state: SalesState.from_state(state, self.settings.sales_idle_path_seconds,
                                                self.settings.surge_nowcast, self.settings),
            self._checkpoint_interval(self.settings.snapshot_seconds))
        baskets = PartitionSnapshots(
            "baskets", KeyedStore(self.baskets_table, snapshot_writer, identity, identity),
            lambda partition: BasketState.new(self.settings, partition), BasketState.from_state,
            self._checkpoint_interval(self.settings.snapshot_seconds))
        anomaly = PartitionSnapshots(
            "anomaly", KeyedStore(self.anomaly_table, snapshot_writer, identity, identity),
            lambda partition: AnomalyState.new(self.settings),
            lambda state: AnomalyState.from_state(state, self.settings.anomaly_idle_path_seconds),
            self._checkpoint_interval(self.settings.snapshot_seconds))
        sessions = PartitionSnapshots(
            "sessions", KeyedStore(self.sessions_table, snapshot_writer, identity, identity),
            lambda partition: SessionState.new(self.settings),
            lambda state: SessionState.from_state(state, self.settings),
            self._checkpoint_interval(max(self.settings.snapshot_seconds, SESSIONS_SNAPSHOT_SECONDS)))
        return Runtime(producer, snapshot_producer, redis, customers, segments, risk, learners, sales, baskets,
                       anomaly, sessions)

    def _checkpoint_interval(self, seconds: float) -> float:
        """A checkpointed stage's interval, at most half the stall time: its input is committed only by its
        checkpoints, and the broker-side watch (:mod:`.group_watch`) reads a group whose committed offsets stand
        still with lag for ``worker_stall_seconds`` as stalled (seen: an idle worker not ready with a stall time
        of 5 s, the sessions stage committing its last records 10 s after it applied them)."""
        return min(seconds, self.settings.worker_stall_seconds / 2)

    # -- agents --------------------------------------------------------

    async def _customers_agent(self, stream: faust.Stream) -> None:
        runtime = await self.start_runtime()
        async for events in stream.take_events(TAKE_MESSAGES, within=TAKE_WITHIN_SECONDS):
            async with self.fence.writing():
                current = [event for event in events if self.fence.current(event)]
                items = [(event.message.partition, batch) for event in current
                         for batch in decode_packet(event.value)]
                # Retried until applied (applying again is idempotent): the stage stalls, it never skips.
                await until_done("customers batch", lambda: runtime.customers.apply(items))  # noqa: B023
                # Only now may take_events' acknowledgement count (transport.PromptFetchConsumer.ack): a batch
                # interrupted by a stop, or events Faust skipped, stay uncommitted.
                mark_applied(current)
                self._note_applied(current)

    def _note_applied(self, events: list[faust.EventT]) -> None:
        """Remember the last events-topic offset applied per partition; log where each assignment starts.

        Within one assignment a partition's offsets must follow each other: a jump means the
        consumer skipped messages this stage never saw (their entries would then be refused as
        older than what was applied). It is logged and counted (``offsets_skipped``), never silent.
        """
        for event in events:
            message = event.message
            key = (message.partition, getattr(message, "epoch", None))
            last = self.applied_through.get(key)
            if last is None:
                log.info("customers: partition %d, assignment %s, first offset applied %d", *key, message.offset)
            elif message.offset > last + 1:
                self.offsets_skipped += message.offset - last - 1
                log.warning("customers: partition %d skipped offsets %d..%d (never delivered to the stage)",
                            message.partition, last + 1, message.offset - 1)
            self.applied_through[key] = max(message.offset, last if last is not None else -1)

    async def _risk_agent(self, stream: faust.Stream) -> None:
        runtime = await self.start_runtime()
        async for event in stream.noack().events():
            async with self.fence.writing():
                if not self.fence.current(event):
                    continue
                partition = event.message.partition
                learner = runtime.learners.get(partition)
                async with runtime.learners.lock(partition):
                    for batch in decode_packet(event.value):
                        learner.apply(batch)
                runtime.learners.hold(partition, event)
                if runtime.learners.due():
                    await runtime.learners.checkpoint()
            if learner.learned_since_sync >= self.settings.risk_sync_labels:
                await self._share_risk_learning(runtime)

    async def _sales_agent(self, stream: faust.Stream) -> None:
        await self._fold_agent(stream, "sales", lambda runtime: runtime.sales, self._publish_sales)

    async def _anomaly_agent(self, stream: faust.Stream) -> None:
        await self._fold_agent(stream, "anomaly", lambda runtime: runtime.anomaly, self._publish_anomalies)

    async def _sessions_agent(self, stream: faust.Stream) -> None:
        await self._fold_agent(stream, "sessions", lambda runtime: runtime.sessions, self._publish_sessions)

    async def _fold_agent(self, stream: faust.Stream, name: str, snapshots_of: Callable[[Runtime], Any],
                          publish: Callable[[list], Any]) -> None:
        """A checkpointed stage folding packed batches into its partition state (sales, anomaly, sessions): each
        message's update is published, then the message is held until a snapshot holds what it changed."""
        runtime = await self.start_runtime()
        snapshots = snapshots_of(runtime)
        async for event in stream.noack().events():
            async with self.fence.writing():
                if not self.fence.current(event):
                    continue
                partition = event.message.partition
                state = snapshots.get(partition)
                state.paths.backlog = self._behind(event)
                started = time.perf_counter()
                async with snapshots.lock(partition):
                    updates = [fold_packet(state, decode_packet(event.value))]
                took = time.perf_counter() - started
                await until_done(f"{name} views", lambda: publish(updates))  # noqa: B023
                snapshots.hold(partition, event)
                if snapshots.due():
                    await snapshots.checkpoint()
            if any(update.pending for update in updates):
                await catch_up_pause(took)  # more is due: the next packet or the timer goes on, other events first

    def _behind(self, event: faust.EventT) -> bool:
        """Whether the stage's input partition holds more records than ``event`` (a backlog: see path_clock)."""
        try:
            highwater = self.app.consumer.highwater(event.message.tp)
        except Exception:  # no fetch position yet
            return False
        return highwater is not None and event.message.offset + 1 < highwater

    async def _tick_sales(self) -> None:
        """Close the windows that paths fallen silent no longer hold open (at the end of a stream, the last ones)."""
        await self._tick(lambda runtime: runtime.sales, "sales", self._publish_sales)

    async def _tick_anomaly(self) -> None:
        """Close the minutes that paths fallen silent no longer hold open (at the end of a stream, the last ones)."""
        await self._tick(lambda runtime: runtime.anomaly, "anomaly", self._publish_anomalies)

    async def _tick_sessions(self) -> None:
        """Apply the records and end the sessions that paths fallen silent no longer hold back; drop the open
        sessions of customers erased lately."""
        runtime = self.runtime
        if runtime is not None and runtime.sessions.states:
            erased = await runtime.redis.zrangebyscore(self.views.keys.erasures_recent(),
                                                       f"({self._sessions_erased_through}", "+inf", withscores=True)
            if erased:
                ids = {cid.decode() if isinstance(cid, bytes) else cid for cid, _ in erased}
                for partition, state in list(runtime.sessions.states.items()):
                    async with runtime.sessions.lock(partition):
                        state.tracker.forget_customers(ids)
                await self.views.erase_sessions(runtime.redis, ids)
                self._sessions_erased_through = max(score for _, score in erased)
        await self._tick(lambda runtime: runtime.sessions, "sessions", self._publish_sessions)

    async def _tick(self, snapshots_of: Callable[[Runtime], Any], name: str, publish: Callable[[list], Any]) -> None:
        if self.runtime is None:
            return
        snapshots = snapshots_of(self.runtime)
        async with self.fence.writing():
            for partition, state in list(snapshots.states.items()):
                while True:  # a stage that bounds its work per call says when more is due (``pending``)
                    started = time.perf_counter()
                    async with snapshots.lock(partition):
                        update = state.tick()
                    took = time.perf_counter() - started
                    if update.publishable:
                        await until_done(f"{name} views", lambda: publish([update]))  # noqa: B023
                    if not update.pending or partition not in snapshots.states:
                        break
                    await catch_up_pause(took)  # the other agents' events go first

    async def _publish_sales(self, updates: list) -> None:
        """Forecast views and alerts to Redis, then the alerts to the alerts topic (repeatable)."""
        assert self.runtime is not None
        pipe = self.runtime.redis.pipeline(transaction=False)
        alerts = [alert for update in updates for alert in publish_sales(pipe, self.views, update)]
        if len(pipe):
            await pipe.execute()
        for alert in alerts:
            await self.runtime.producer.send_and_wait(self.settings.topics.alerts, alert.message(),
                                                      key=alert.alert_id.encode())

    async def _publish_anomalies(self, updates: list) -> None:
        """The scopes' latest minutes and the anomaly alerts to Redis (one pipeline, each scope's key once), then
        the alerts to the alerts topic (repeatable: absolute views, alert ids per scope and minute)."""
        assert self.runtime is not None
        pipe = self.runtime.redis.pipeline(transaction=False)
        alerts = publish_anomalies(pipe, self.views, updates)
        if len(pipe):
            await pipe.execute()
        for alert in alerts:
            await self.runtime.producer.send_and_wait(self.settings.topics.alerts, alert.message(),
                                                      key=alert.alert_id.encode())

    async def _publish_sessions(self, updates: list) -> None:
        """Session, customer and model views and ``abandon`` alerts to Redis (one pipeline, each key once), then
        the alerts to the alerts topic (repeatable: absolute views, alert ids per session)."""
        assert self.runtime is not None
        tracker = next(iter(self.runtime.sessions.states.values())).tracker
        pipe = self.runtime.redis.pipeline(transaction=False)
        alerts = publish_sessions(pipe, self.views, updates, tracker, self.settings.session_ttl_seconds)
        if len(pipe):
            await pipe.execute()
        for alert in alerts:
            await self.runtime.producer.send_and_wait(self.settings.topics.alerts, alert.message(),
                                                      key=alert.alert_id.encode())

    async def _baskets_agent(self, stream: faust.Stream) -> None:
        runtime = await self.start_runtime()
        async for event in stream.noack().events():
            async with self.fence.writing():
                if not self.fence.current(event):
                    continue
                state = runtime.baskets.get(event.message.partition)
                async with runtime.baskets.lock(event.message.partition):
                    for batch in decode_packet(event.value):
                        state.apply(batch)
                runtime.baskets.hold(event.message.partition, event)
                if runtime.baskets.due():
                    await runtime.baskets.checkpoint()

    # -- rebalancing and recovery --------------------------------------

    def _recovered(self, table: faust.Table) -> Callable:
        async def on_recover() -> None:
            try:
                await self._catch_up(table)
            except Exception:  # Faust swallows callback errors; make them loud
                log.exception("%s: changelog catch-up failed", table.name)
                raise
        return on_recover

    def _partition_stages(self, runtime: Runtime) -> dict[faust.Table, tuple[PartitionSnapshots, faust.TopicT]]:
        """Each checkpointed stage by its table: its partition states and its input topic."""
        return {self.risk_table: (runtime.learners, self.risk_topic),
                self.sales_table: (runtime.sales, self.sales_topic),
                self.baskets_table: (runtime.baskets, self.baskets_topic),
                self.anomaly_table: (runtime.anomaly, self.anomaly_topic),
                self.sessions_table: (runtime.sessions, self.sessions_topic)}

    async def _catch_up(self, table: faust.Table) -> None:
        """Re-apply the tail Faust's recovery may have cut short (see store.py), then reload indexes and restore
        the partition states of a checkpointed stage."""
        revocations = self._revocations  # a rebalance that starts meanwhile will restore them again
        runtime = await self.start_runtime()
        stage = self._partition_stages(runtime).get(table)
        store = runtime.customers.store if stage is None else stage[0].store
        recovery = self.app.tables.recovery
        start = {tp: max(0, (recovery.active_highwaters.get(tp) or 0) - 1)
                 for tp in recovery.actives_for_table[table]}
        applied = await store.catch_up(self.settings.kafka_client_options(), start)
        if applied:
            log.info("%s: re-applied %d changelog records from the last batch on", table.name, applied)
        # The risk learners act on their events only (between them, scoring uses what model sync holds).
        if stage is not None and table is not self.risk_table and self._revocations == revocations:
            self._restore_owned(table, *stage)
        if table is self.customers_table:
            runtime.customers.reload_counters()
            self._resume_segments = True
            counted = totals(runtime.customers.counter_totals(self.owned_partitions()))
            log.info("customers: %d keys after recovery; %d outcomes counted on owned partitions",
                     len(table.data), sum(counted.values()))

    def _restore_owned(self, table: faust.Table, snapshots: PartitionSnapshots, topic: faust.TopicT) -> None:
        """Restore the state of every partition of ``topic`` this worker owns that has a snapshot (a stage whose
        timer or round works without events: sales, anomaly, sessions, baskets), now that ``table`` is recovered
        and caught up (not before: a state restored from a snapshot older than the
        changelog's tail would stay in memory and lose what the tail holds).

        Otherwise a partition's state is restored when its first event comes. After a restart (a kill, a
        rebalance) that left nothing new to read (the last checkpoint held every record), none comes: the
        windows, minutes and sessions its paths held open would never close when those fall idle, and their
        alerts never be sent (seen: 20 kills, the last after the stream's end, lost all 7 such alerts); a basket
        partition's rules would not be written again (their TTLs run out) nor its supports shared.
        """
        restored = snapshots.restore_stored(self.owned_partitions(topic))
        if restored:
            log.info("%s: partitions %s restored from their snapshots at recovery", table.name, restored)

    async def _on_revoked(self, app: faust.App, revoked: set, **kwargs: Any) -> None:
        """Inside the rebalance: wait for in-flight writes, fence off older events, drop revoked states."""
        runtime = self.runtime
        self._revocations += 1

        def forget() -> None:
            if runtime is None:
                return
            for snapshots, topic in self._partition_stages(runtime).values():
                name = topic.get_topic_name()
                snapshots.forget({tp.partition for tp in revoked if tp.topic == name})

        await self.fence.revoke(getattr(self.app.consumer, "epoch", 0) + 1, forget)
        if self.fence.skipped:
            log.info("rebalance: %d events of older generations skipped so far", self.fence.skipped)

    def owned_partitions(self, topic: faust.TopicT | None = None) -> set[int]:
        """Partitions of ``topic`` (default: the events topic) this worker owns now."""
        name = (topic or self.events_topic).get_topic_name()
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # the consumer is not started yet
            return set()
        return {tp.partition for tp in assigned if tp.topic == name}

    # -- timers --------------------------------------------------------

    async def _checkpoint(self) -> None:
        if self.runtime is not None:
            async with self.fence.writing():
                for snapshots in self.runtime.snapshot_stages():
                    if snapshots.due():
                        await snapshots.checkpoint()

    async def _sweep_customers(self) -> None:
        """Advance a due event-time sweep of the customers when no batch does (the input is quiet)."""
        if self.runtime is not None and not self.app.rebalancing and not self.app.in_recovery:
            async with self.fence.writing():
                await self.runtime.customers.sweep()

    async def _sync_segments(self) -> None:
        """A segment sync round: merge with the other workers, publish profiles and the customers that moved."""
        if self.runtime is None or not self.model_sync.started:
            return
        started = time.perf_counter()
        await self._segment_round()
        log.info("segments: sync round took %.0f ms", (time.perf_counter() - started) * 1000)

    async def _segment_round(self) -> None:
        runtime, owned = self.runtime, self.owned_partitions()
        if self._resume_segments:
            await self.model_sync.caught_up()
            runtime.segments.resume()
            self._resume_segments = False
            await runtime.customers.relearn_segments(owned)
        update = await runtime.segments.sync(owned)
        batch = WriteBatch()  # thousands of customers can move in a round: one command, not one each
        self.views.forget_segments(batch, update.removed)
        self.views.segments(batch, update.segments)
        self.views.segment_profiles(batch, runtime.segments.profiles())
        self.views.metrics(batch, "segments", runtime.segments.metrics())
        await batch.execute(runtime.redis)
        for change in update.changes:
            await runtime.producer.send(self.settings.topics.segment_changes,
                                        orjson.dumps(change.to_event()), key=change.customer_id.encode())

    async def _publish_baskets(self) -> None:
        """Rules, best-sellers and trend alerts of this worker's basket partitions; share pair supports.

        Rounds are spaced (``BASKET_ROUND_SHARE``), except that a round whose rules missed baskets counted while
        it mined is followed as soon as counting stops (a burst's end): its rules are then served from every
        basket at once, not a spacing later.
        """
        if self.runtime is None or not self.model_sync.started:
            return
        counted = sum(state.counter.n_baskets for state in self.runtime.baskets.states.values())
        quiet, self._baskets_counted = counted == self._baskets_counted, counted
        if time.monotonic() < self._baskets_next_at and not (self._baskets_stale and quiet):
            return
        started = time.perf_counter()
        self._baskets_stale = await self._basket_round()
        took = time.perf_counter() - started
        self._baskets_next_at = time.monotonic() + took / BASKET_ROUND_SHARE - self.settings.basket_publish_seconds
        log.info("baskets: publication took %.0f ms", took * 1000)

    async def _basket_round(self) -> bool:
        """One publication round; True if a partition counted baskets its rules (snapshot) do not hold."""
        runtime, settings = self.runtime, self.settings
        local = dict(runtime.baskets.states)
        batch = WriteBatch()  # every rule's hash is rewritten each round: one command, not one per rule
        alerts = []
        metrics: dict[str, float] = {}
        # First this worker's pair supports, shared: a rule whose antecedent another partition owns takes that
        # partition's support, so on one worker every rule is served in the first round after the counts
        # (a partition on another worker: its previous round's, a round stale at most).
        # Mining runs in a thread on a snapshot of the counter (taken under the partition's lock, cheap: see
        # BasketCounter.snapshot), so counting goes on meanwhile: on wholesale baskets a mining pass takes up to
        # a second, which the partition's counting used to wait out (the Online Retail month: its last baskets
        # counted 0.4 s later than with the rounds 30 s apart).
        # One snapshot per partition for the whole round, so that its pair supports and its rules count the same
        # baskets.
        snapshots = {}
        for partition, state in local.items():
            async with runtime.baskets.lock(partition):
                snapshots[partition] = state.counter.snapshot()
        for partition, state in local.items():
            pairs = await asyncio.to_thread(state.owned_pairs, snapshots[partition])
            await self.model_sync.publish(f"{BASKETS_SYNC}{partition}", {"partition": partition, "pairs": pairs})
        for partition, state in local.items():
            foreign = foreign_supports(self.model_sync, partition)
            frozen = snapshots[partition]
            rules = await asyncio.to_thread(frozen.rules, foreign_supports=foreign)
            async with runtime.baskets.lock(partition):  # the trend state changes: counting waits (it is cached)
                trends = await asyncio.to_thread(state.trends, settings.basket_trend_window_seconds, frozen)
            state.counter.adopt_views(frozen)
            written = publish_rules(batch, self.views, state, rules, settings.basket_top_n,
                                    settings.basket_rule_ttl_seconds)
            for alert in trends:
                self.views.alert(batch, alert)
                alerts.append(alert)
            metrics |= {f"p{partition}.{name}": value for name, value in state.counter.metrics().items()}
            metrics[f"p{partition}.rules"] = len(rules)
            metrics[f"p{partition}.rules_written"] = written
            metrics[f"p{partition}.counted_at"] = state.counted_at
            metrics[f"p{partition}.rules_baskets"] = frozen.n_baskets  # the baskets these rules count
        # Each worker writes its partitions' figures; the totals are over every partition's, whoever owns it.
        self.views.metrics(batch, "baskets-partitions", metrics)
        await batch.execute(runtime.redis)
        stored = await runtime.redis.hgetall(self.views.keys.metrics("baskets-partitions"))
        per_partition: dict[int, dict[str, float]] = {}
        for field, value in stored.items():
            part, name = field.decode().split(".", 1)
            per_partition.setdefault(int(part[1:]), {})[name] = float(value)
        totals = WriteBatch()
        self.views.metrics(totals, "baskets", basket_totals(per_partition))
        await totals.execute(runtime.redis)
        for alert in alerts:
            await runtime.producer.send(settings.topics.alerts, alert.message(), key=alert.alert_id.encode())
        return any(state.counter.n_baskets != snapshots[partition].n_baskets for partition, state in local.items())

    async def _share_risk_learning(self, runtime: Runtime) -> None:
        """Average the learners into the scoring model now (also between two sync rounds).

        Called by the risk agent every ``KAIROS_RISK_SYNC_LABELS`` labels a learner learned, so the model that
        scores payments follows the labels in event time, not only every ``KAIROS_RISK_SYNC_SECONDS`` of wall
        clock: a backfill read at full speed would otherwise score a day of payments with an older model.
        """
        if self.model_sync.started:
            async with self._risk_sync_lock:
                await sync_learners(self.model_sync, runtime.learners, runtime.risk)

    async def _sync_risk(self) -> None:
        """Average the risk learners across workers; reload the analyst rules."""
        if self.runtime is None or not self.model_sync.started:
            return
        runtime = self.runtime
        await self._share_risk_learning(runtime)
        drifts = await drift_alerts(runtime.learners)
        raw = await runtime.redis.hgetall(self.views.keys.risk_rules())
        # Values as stored (bytes): load_rules rejects what it cannot read, whatever wrote it.
        rejected = runtime.risk.load_rules({k.decode(errors="replace"): v for k, v in raw.items()})
        pipe = runtime.redis.pipeline(transaction=False)
        pipe.delete(self.views.keys.risk_rules_rejected())
        if rejected:
            pipe.hset(self.views.keys.risk_rules_rejected(), mapping=rejected)
        report = self._risk_metrics(runtime)
        self._note_time_effects(report)
        self.views.metrics(pipe, "risk", report)
        for alert in drifts:
            self.views.alert(pipe, alert)
        await pipe.execute()
        for alert in drifts:
            await runtime.producer.send(self.settings.topics.alerts, alert.message(), key=alert.alert_id.encode())

    def _note_late_sales(self, report: dict[str, Any]) -> None:
        """One log line a minute at most when orders or views came after their window closed."""
        now = time.monotonic()
        late = (int(report.get("late_events", 0)), int(report.get("late_views", 0)))
        if any(late) and late != self._late_sales[0] and now - self._late_sales[1] >= 60.0:
            log.info("sales: %d orders came after their window closed (shown in the actuals, not learned) and %d "
                     "product views (dropped); watermark %s", late[0], late[1], report.get("watermark"))
            self._late_sales = (late, now)

    def _note_time_effects(self, report: dict[str, Any]) -> None:
        """One log line a minute at most when labels came after maturity (corrected, confirmed or too late)."""
        now = time.monotonic()
        counts = {name: report.get(f"labels_{name}", 0) for name in ("corrected", "confirmed", "late", "unmatched")}
        if any(counts.values()) and counts != self._time_effects[0] and now - self._time_effects[1] >= 60.0:
            log.info("risk: labels after their payment matured: %d learned as corrections (fraud), %d confirmed "
                     "(legit); %d too late and %d never matched, not learned", counts["corrected"],
                     counts["confirmed"], counts["late"], counts["unmatched"])
            self._time_effects = (counts, now)

    def _risk_metrics(self, runtime: Runtime) -> dict[str, Any]:
        """Progressive metrics of this worker's learners (label-weighted) and its scoring model."""
        learners = list(runtime.learners.states.values())
        report: dict[str, Any] = {"mode": runtime.risk.scorer.mode, "threshold": runtime.risk.scorer.threshold.value(),
                                  "rules_active": len(runtime.risk.rulebook.rules),
                                  "rules_rejected": len(runtime.risk.rejected)}
        scoring = runtime.risk.scorer.metrics()
        report["alert_rate"] = scoring.get("alert_rate", 0.0)
        labelled = [(learner.scorer.metrics(), learner.pending.stats()) for learner in learners]
        weight = sum(m.get("labels", 0) for m, _ in labelled)
        for name in ("roc_auc", "precision", "recall"):
            if weight:
                report[name] = sum(m.get(name, 0.0) * m.get("labels", 0) for m, _ in labelled) / weight
        for name in ("labelled", "corrected", "confirmed", "matured", "repeated", "late", "pending", "early_labels",
                     "unmatched"):
            report[f"labels_{name}"] = sum(stats.get(name, 0) for _, stats in labelled)
        return report

    async def _restore_views(self) -> None:
        """Republish the customer views and segment ids of each owned partition whose marker Redis lacks.

        The marker (``meta:views-published:{partition}``) is set with the views; a Redis restarted
        without persistence (or flushed) has none, so its views come back within one tick of its
        return, with the risk payment views from their log (:mod:`.view_log`), and the event-time views
        of this worker's sales, anomaly and sessions states (forecasts, stock, traffic scopes, open
        sessions and the propensity model). Basket rules and segment profiles return with the next
        round. Not restored: the views of sessions that had ended (not kept in state; they would have
        expired with their TTL) and the alerts stream (the ``alerts`` topic keeps every alert).
        """
        runtime = self.runtime
        if runtime is None or self.app.rebalancing or self.app.in_recovery:
            return  # a table being recovered would republish views older than Redis may hold
        owned = sorted(self.owned_partitions())
        if not owned:
            return
        present = await mget(runtime.redis, [self.views.keys.views_published(p) for p in owned])
        async with self.fence.writing():  # a revocation waits for it
            await self._republish([p for p, marker in zip(owned, present) if marker is None], runtime)

    async def _apply_erasures(self) -> None:
        """Erase the customers whose erasure was requested, in the partitions this worker owns (:mod:`.erasure`)."""
        runtime = self.runtime
        if runtime is None or self.app.rebalancing or self.app.in_recovery:
            return
        owned = self.owned_partitions()
        requested = await erasure.take_erasures(runtime.redis, self.views.keys, owned, self.settings.partitions)
        if not requested:
            return
        async with self.fence.writing():  # a revocation waits for it
            still = self.owned_partitions()  # a partition that left meanwhile: its new owner erases
            requested = [cid for cid in requested if partition_for(cid, self.settings.partitions) in still]
            if not requested:
                return
            await runtime.customers.erase(requested)
        await erasure.done(runtime.redis, self.views.keys, requested)
        log.info("erasure: %d customer(s) erased (state, views, payment views, alerts)", len(requested))

    async def _republish(self, partitions: list[int], runtime: Runtime) -> None:
        if partitions:  # Redis lost its views: the basket rounds write only what moved, so they must write all
            for basket_state in runtime.baskets.states.values():
                basket_state.published.rewrite_all()
            await self._republish_event_time_views(runtime)
        for partition in partitions:
            if partition in self.owned_partitions():
                started = time.perf_counter()
                customers, payments = await runtime.customers.republish(partition)
                log.info("views: partition %d had no views in Redis; republished %d customers and %d risk "
                         "payment views in %.0f ms", partition, customers, payments,
                         (time.perf_counter() - started) * 1000)

    async def _republish_event_time_views(self, runtime: Runtime) -> None:
        """Forecasts, stock, traffic scopes, open sessions and the propensity model, from the states of this
        worker's sales, anomaly and sessions partitions (each under its lock: a state is not folded meanwhile)."""
        stages = ((runtime.sales, self._publish_sales, lambda update: len(update.views) + len(update.stock)),
                  (runtime.anomaly, self._publish_anomalies, lambda update: len(update.views)),
                  (runtime.sessions, self._publish_sessions, lambda update: len(update.sessions)))
        written = []
        for snapshots, publish, size in stages:
            for partition in sorted(snapshots.states):
                # Held while writing too: the stage folds nothing newer meanwhile, so no view of its own can be
                # overwritten by an older one of these.
                async with snapshots.lock(partition):
                    state = snapshots.states.get(partition)
                    if state is not None:
                        update = state.views()
                        await publish([update])
                        if size(update):
                            written.append(f"{size(update)} of {snapshots.name}:{partition}")
        if written:
            log.info("views: republished the event-time views (%s)", ", ".join(written))

    async def _flush_metrics(self) -> None:
        """Publish this worker's partitions' counters, then the totals over all partitions."""
        if self.runtime is None:
            return
        redis, customers = self.runtime.redis, self.runtime.customers
        consumer = self.app.consumer
        ready = self.readiness()
        owned = self.owned_partitions()
        per_partition = {
            f"p{partition}.{name}": value
            for partition in owned
            for name, value in totals(customers.counter_totals({partition})).items()
        }
        if per_partition:
            await redis.hset(self.views.keys.metrics("ingest-partitions"), mapping=per_partition)
        stored = await redis.hgetall(self.views.keys.metrics("ingest-partitions"))
        summed: dict[str, int] = {}
        for name, value in stored.items():
            field = name.decode().split(".", 1)[1]
            summed[field] = summed.get(field, 0) + int(value)
        pipe = redis.pipeline(transaction=False)
        self.views.metrics(pipe, "ingest", summed)
        self.views.worker_metrics(pipe, self.worker_id, {
            **self.ingestor.report(), **self.group_watch.report(),
            # What is failing now (one entry per step: since, failures, reason) and failures since start.
            "failing": orjson.dumps({name: failure.to_dict() for name, failure in FAILING.items()}).decode(),
            "failures_total": sum(FAILURES_TOTAL.values()),
            "stale_events_skipped": self.fence.skipped, "offsets_skipped": self.offsets_skipped,
            **(consumer.report() if isinstance(consumer, PromptFetchConsumer) else {}),
            **customers.metrics(),
            "snapshots_discarded": sum(snapshots.snapshots_discarded for snapshots in self.runtime.snapshot_stages()),
            "ready": int(ready.ready), "not_ready": "; ".join(ready.reasons),
        })
        for state in self.runtime.sales.states.values():
            report = state.monitor.metrics()
            self._note_late_sales(report)
            self.views.metrics(pipe, "forecast", report)
            if len(state.stock):
                self.views.metrics(pipe, "stock", state.stock.metrics())
        for state in self.runtime.anomaly.states.values():
            self.views.metrics(pipe, "anomaly", state.metrics())
        for state in self.runtime.sessions.states.values():
            self.views.metrics(pipe, "sessions", state.metrics())
        await pipe.execute()
