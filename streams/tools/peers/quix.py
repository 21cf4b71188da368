"""The Quix Streams peer of ``kairos bench --peer quix``: a Kairos worker's work, written the Quix Streams way.

What a team would write with Quix Streams 3.x instead of Kairos, given the same
events and the same serving contract, with nothing held back:

- one ``StreamingDataFrame`` over ``clicks``, ``orders`` and ``payments``
  (``concat``: all keyed by customer), each value validated with the same
  pydantic wire schema (:class:`~streams.pipeline.validation.EventValidator`);
- per-customer state in Quix's own state store (RocksDB; not changelogged on
  Tansu, see the application's settings): the
  same :class:`~streams.pipeline.customers.CustomerState` (counters, duplicate
  ids, the segmentation features, the payment history of the risk features),
  read and written per event with ``state.get`` / ``state.set``;
- each payment scored on arrival by the same River risk model and analyst
  rules (:class:`~streams.pipeline.stages.risk.RiskScoring`); its snapshot
  repartitioned by payment id (``group_by``) and joined there with the late
  fraud labels (``labels`` keyed by payment id, stateful), each joined label
  learned by the same scorer;
- the models Kairos keeps per process kept per process here too, fed in
  batches where a batch does better (as Kairos does): the segmenter
  (incremental K-means, ``learn_many`` of the customers touched), the basket
  counter (itemsets of every order, hence the item-pair counts), the sales
  windows and forecasters (orders and product views);
- one batching sink (:class:`ShopSink`) that at every checkpoint folds its
  batch into those models and writes the same Redis views (customer hashes,
  segment ids, sizes and profiles, risk payment views, alerts, rules,
  best-sellers, forecasts) through one redis-py pipeline per batch, each key
  once per batch; the model rounds (segments every
  ``KAIROS_SEGMENT_SYNC_SECONDS``, rules every ``KAIROS_BASKET_PUBLISH_SECONDS``)
  run there too.

What it leaves out, as an application of this size would: dead-letter topics,
expiry sweeps, metrics, worker-to-worker model sync (one process).

Run alone with ``python -m streams.tools.peers quix ...``: it stops after
``expected`` input events (Quix then commits the last checkpoint, so every
view is written) and reports its :class:`~.measure.Measurement`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from quixstreams import Application, State, message_context
from quixstreams.sinks import BatchingSink, SinkBatch

from streams.pipeline.customers import CustomerState
from streams.pipeline.packing import PackedBatch
from streams.pipeline.stages.baskets import BasketState, basket_record, publish_rules
from streams.pipeline.stages.customers import risk_alert
from streams.pipeline.stages.risk import RiskScoring
from streams.pipeline.stages.sales import SalesState, publish_sales, sales_view
from streams.pipeline.stages.segments import SegmentStage
from streams.pipeline.validation import EventValidator
from streams.pipeline.views import Alert, RedisViews
from streams.settings import KairosSettings
from streams.tools.peers.measure import Measurement, RunClock


@dataclass(slots=True)
class Folded:
    """What one accepted event changed, handed from the stateful step to the sink.

    Plain values only: Quix copies (pickles) every value at a branching point, and the payments branch off here.
    """

    customer_id: str
    view: dict[str, str]
    vector: dict[str, float]
    last_seen: float
    path: str
    offset: int
    risk_view: dict[str, str] | None = None
    alert: Alert | None = None
    snapshot: dict[str, Any] | None = None
    sale: tuple[str, dict[str, Any]] | None = None
    basket: dict[str, Any] | None = None


class ShopModels:
    """The models one process learns (as one Kairos worker does), and when their rounds are due."""

    def __init__(self, settings: KairosSettings) -> None:
        self.settings = settings
        self.segments = SegmentStage(settings, model_sync=None)  # type: ignore[arg-type]  # one process: no sync
        self.risk = RiskScoring(settings)
        # One basket partition owning every itemset (Kairos spreads them over its partitions).
        self.baskets = BasketState.new(settings.model_copy(update={"partitions": 1}), partition=0)
        self.sales = SalesState.new(settings)
        self.now = float("-inf")
        self._rounds = {"segments": time.monotonic(), "baskets": time.monotonic()}

    def due(self, name: str, every: float) -> bool:
        now = time.monotonic()
        if now - self._rounds[name] < every:
            return False
        self._rounds[name] = now
        return True


class ShopSink(BatchingSink):
    """Folds each checkpoint's batch into the process's models and writes the views through one pipeline."""

    def __init__(self, settings: KairosSettings, models: ShopModels) -> None:
        super().__init__()
        self.settings = settings
        self.models = models
        self.views = RedisViews(settings)
        self._redis: redis.Redis | None = None

    def setup(self) -> None:
        self._redis = redis.Redis.from_url(self.settings.redis_dsn())
        self._redis.ping()

    def write(self, batch: SinkBatch) -> None:
        models, views, settings = self.models, self.views, self.settings
        touched: dict[str, Folded] = {}
        risk_views, alerts = [], []
        sales: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        baskets: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for item in batch:
            folded: Folded = item.value
            touched[folded.customer_id] = folded  # the latest state of each customer: one write
            if folded.risk_view is not None:
                risk_views.append(folded.risk_view)
            if folded.alert is not None:
                alerts.append(folded.alert)
            if folded.sale is not None:
                sales[(folded.sale[0], folded.path)].append((folded.offset, folded.sale[1]))
            if folded.basket is not None:
                baskets[folded.path].append((folded.offset, folded.basket))
        for folded in touched.values():
            models.now = max(models.now, folded.last_seen)
        update = models.segments.observe({cid: folded.vector for cid, folded in touched.items()}, models.now)
        sales_updates = [models.sales.apply(PackedBatch(kind, path, entries)) for (kind, path), entries in sales.items()]
        for path, entries in baskets.items():
            models.baskets.apply(PackedBatch("orders", path, entries))
        assert self._redis is not None
        pipe = self._redis.pipeline(transaction=False)
        stamp = {"updated_at": f"{time.time():.3f}"}
        views.customers(pipe, [(cid, folded.view | stamp) for cid, folded in touched.items()])
        views.forget_segments(pipe, update.removed)
        views.segments(pipe, update.segments)
        if update.segments or update.removed:
            views.segment_sizes(pipe, models.segments.sizes())
        for view in risk_views:
            views.risk_payment(pipe, view)
        for alert in alerts:
            views.alert(pipe, alert)
        for sales_update in sales_updates:
            publish_sales(pipe, views, sales_update)
        self._rounds(pipe)
        pipe.execute()

    def _rounds(self, pipe: Any) -> None:
        """The segment round (re-fit on every customer held, profiles, moves) and the basket round (rules)."""
        models, views, settings = self.models, self.views, self.settings
        segmenter = models.segments.segmenter
        if models.segments.seeded and models.due("segments", settings.segment_sync_seconds):
            before = segmenter.assignments()
            segmenter.merge_stats([segmenter.export_stats()])  # what a Kairos sync round does with one worker
            moved = {cid: segment for cid, segment in segmenter.assignments().items() if before.get(cid) != segment}
            views.segments(pipe, moved)
            views.segment_profiles(pipe, models.segments.profiles())
        if models.due("baskets", settings.basket_publish_seconds):
            state = models.baskets
            rules = state.counter.rules(foreign_supports={})
            publish_rules(pipe, views, state, rules, settings.basket_top_n, settings.basket_rule_ttl_seconds)
            for alert in state.trends(settings.basket_trend_window_seconds):
                views.alert(pipe, alert)


class QuixPeer:
    """The Quix Streams application; :meth:`run` processes ``expected`` input events and measures itself."""

    def __init__(self, settings: KairosSettings, consumer_group: str, state_dir: Path, expected: int) -> None:
        self.settings = settings
        self.expected = expected
        self.seen = 0
        self.clock = RunClock()
        self.models = ShopModels(settings)
        self.validator = EventValidator(settings.max_event_bytes, max_future_seconds=settings.max_future_seconds,
                                        max_past_seconds=settings.max_past_seconds)
        self.event_types = settings.topics.inputs()
        self.app = Application(
            broker_address=settings.kafka_bootstrap, consumer_group=consumer_group, auto_offset_reset="earliest",
            state_dir=str(state_dir), loglevel="WARNING",
            # The broker settings Kairos runs with: Tansu holds every fetch that finds a partition empty for the
            # whole wait (librdkafka's default 500 ms), and Quix's consume() waits up to this timeout to fill
            # its buffer; with the defaults it idled 70-80 % of the time on preloaded topics (measured:
            # 805 events/s at 0.22 cores on 19k events; 2,960 at 0.55 with these).
            consumer_extra_config={"fetch.wait.max.ms": settings.kafka_fetch_max_wait_ms},
            consumer_poll_timeout=settings.ingest_fetch_wait_ms / 1000,
            # Quix checks that a store's changelog offsets only grow; on Tansu the check failed within a minute
            # of a 300k-event run (InvalidChangelogOffset at a checkpoint), so the state lives in RocksDB alone.
            # Less work than Kairos, which changelogs every key it touches: the comparison leans to Quix here.
            use_changelog_topics=False,
        )
        topics = {event_type: self.app.topic(name, value_deserializer="bytes", key_deserializer="str")
                  for name, event_type in self.event_types.items()}
        events = (self.app.dataframe(topics["clicks"]).concat(self.app.dataframe(topics["orders"]))
                  .concat(self.app.dataframe(topics["payments"])))
        folded = events.apply(self.fold, stateful=True).filter(lambda value: value is not None)
        snapshots = (folded.filter(lambda value: value.snapshot is not None)
                     .apply(lambda value: value.snapshot)
                     .group_by(lambda snapshot: snapshot["payment_id"], name="payment_id"))
        snapshots.concat(self.app.dataframe(topics["labels"])).update(self.join, stateful=True)
        folded.sink(ShopSink(settings, self.models))

    def _count(self) -> None:
        self.clock.mark_first(time.perf_counter())
        self.seen += 1
        if self.seen == self.expected:
            self.app.stop()  # Quix finishes this message, then commits the checkpoint (the sink writes)

    def fold(self, value: bytes, state: State) -> Folded | None:
        """Validate one click, order or payment and fold it into its customer's state."""
        self._count()
        context = message_context()
        event_type = self.event_types[context.topic]
        record = self.validator.check(event_type, value).record
        if record is None:
            return None
        settings = self.settings
        stored = state.get("customer")
        customer = (CustomerState.new(settings.dedupe_ids_per_customer, settings.segment_half_life_days)
                    if stored is None else CustomerState.from_state(stored, settings.dedupe_ids_per_customer))
        if customer.recent.seen_before(record["event_id"]):
            return None
        folded = Folded(record["customer_id"], {}, {}, 0.0, f"{context.topic}:{context.partition}", context.offset)
        if event_type == "clicks":
            if record["action"] == "view" and record.get("sku"):
                folded.sale = ("views", sales_view(record))
        elif event_type == "payments":
            scored = self.models.risk.score(customer.history, record)
            folded.risk_view = RedisViews.risk_payment_view(record, scored.assessment)
            folded.alert = risk_alert(scored) if scored.alert else None
            folded.snapshot = scored.snapshot()
        else:
            folded.sale = ("orders", record)
            folded.basket = basket_record(record, self.models.segments.segment_of(record["customer_id"]))
        customer.apply(event_type, record)
        state.set("customer", customer.to_state())
        # What the sink writes and learns: the view, and the vector as Kairos reads it (as of the last event).
        folded.view, folded.vector, folded.last_seen = customer.view(), customer.features.vector(float("-inf")), record["ts"]
        return folded

    def join(self, value: bytes | dict[str, Any], state: State) -> None:
        """Keyed by payment id: a payment's snapshot meets its fraud label (either may come first); learn."""
        if isinstance(value, dict):
            label = state.get("label")
            if label is None:
                state.set("snapshot", value)
            else:
                self._learn(value, label)
                state.delete("label")
            return
        self._count()
        record = self.validator.check("labels", value).record
        if record is None:
            return
        snapshot = state.get("snapshot")
        if snapshot is None:
            state.set("label", record["is_fraud"])
        else:
            self._learn(snapshot, record["is_fraud"])
            state.delete("snapshot")

    def _learn(self, snapshot: dict[str, Any], is_fraud: bool) -> None:
        self.models.risk.scorer.learn_one(snapshot["features"], is_fraud, score=snapshot["score"],
                                          alerted=snapshot["alert"])

    def run(self) -> Measurement:
        self.app.run()
        self.clock.mark_last(time.perf_counter())
        return self.clock.measurement("quix", self.seen)
