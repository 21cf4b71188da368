"""Every setting in one place (environment prefix ``KAIROS_``).

Defaults fit the embedded dev stack (``kairos demo``); production values are
documented in the README and set in ``docker-compose.yml``.

>>> s = KairosSettings(kafka_bootstrap="kafka:9092", prefix="shop1")
>>> s.kafka_bootstrap, s.prefix, s.topics.orders
('kafka:9092', 'shop1', 'orders')
"""

from __future__ import annotations

import ssl
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TopicNames(BaseModel):
    """Names of the public topics (inputs, dead letters, outputs)."""

    clicks: str = "clicks"
    orders: str = "orders"
    payments: str = "payments"
    labels: str = "labels"
    #: Optional: on-hand counts per SKU (``Inventory``); without them stock-out risk is off.
    inventory: str = "inventory"
    dead_letters: str = "dead-letters"
    alerts: str = "alerts"
    segment_changes: str = "segment-changes"

    def inputs(self) -> dict[str, str]:
        """Input topic name -> event type (the key of ``EVENT_TYPES``)."""
        return {
            self.clicks: "clicks",
            self.orders: "orders",
            self.payments: "payments",
            self.labels: "labels",
            self.inventory: "inventory",
        }


class KairosSettings(BaseSettings):
    """Kairos settings; each field is read from ``KAIROS_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="KAIROS_", env_nested_delimiter="__", extra="ignore"
    )

    # Connections
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_replication_factor: int = Field(1, ge=1)
    #: Longest a fetch waits for data. Apache Kafka answers as soon as data
    #: arrives, so 500 is fine there; brokers that hold every empty fetch for
    #: the full wait (Tansu) need it small for low latency.
    kafka_fetch_max_wait_ms: int = Field(5, ge=1, le=5000)
    #: The wait once a consumer has fetched nothing for a second (``streams.pipeline.transport.long_poll_when_idle``):
    #: an idle worker stops polling the broker every few milliseconds. On brokers that hold empty fetches (Tansu)
    #: the first record after a quiet spell waits up to this much longer per hop; Apache Kafka answers at once.
    kafka_fetch_idle_wait_ms: int = Field(50, ge=1, le=5000)
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    #: The URL names one node of a Redis Cluster: clients discover the others and route keys by slot.
    redis_cluster: bool = False

    # Naming
    prefix: str = Field("kairos", pattern=r"^[A-Za-z0-9_.-]+$")
    app_id: str = Field("kairos", pattern=r"^[A-Za-z0-9_.-]+$")
    topics: TopicNames = TopicNames()
    partitions: int = Field(4, ge=1, le=256)

    # Ingestion
    max_event_bytes: int = Field(64 * 1024, ge=256)
    #: Events dated more than this after the stream (the later of the wall clock and the latest event accepted)
    #: are dead letters: one order dated 2099 would push every event-time clock downstream 73 years ahead.
    max_future_seconds: float = Field(86400.0, gt=0)
    #: Events dated more than this before the latest event accepted are dead letters (unset: no limit; relative
    #: to the stream's own time, so replays of old data pass). See ``EventValidator``.
    max_past_seconds: float | None = Field(None, gt=0)
    dead_letter_max_bytes: int = Field(64 * 1024, ge=256)
    dedupe_ids_per_customer: int = Field(64, ge=1, le=4096)
    ingest_batch_records: int = Field(5000, ge=1)
    ingest_fetch_wait_ms: int = Field(20, ge=0)
    #: Event-time alignment of the input partitions (streams/pipeline/alignment.py): how long a partition at
    #: its end, silent, still holds the others back (wall clock), and the records buffered per partition
    #: before it is paused (memory: partitions x this x about 1 KB).
    ingest_align_idle_seconds: float = Field(1.0, ge=0)
    ingest_align_max_buffered: int = Field(20_000, ge=100)

    # Segmentation
    segment_k: int = Field(6, ge=2, le=50)
    segment_half_life_days: float = Field(30.0, gt=0)
    #: Customers seen before the first k-means++ seeding.
    segment_warmup: int = Field(300, ge=2)
    #: Wall-clock seconds between sync rounds (sweep, merge across workers, profiles).
    segment_sync_seconds: float = Field(10.0, gt=0)
    segment_capacity: int = Field(200_000, ge=100)
    #: A customer changes segment only when another centroid is closer by more than this (standard units).
    #: Lower: segments depend less on how the events arrived (more nearest-centroid), but flicker more.
    segment_stickiness: float = Field(0.5, ge=0, le=5)

    # Payment risk
    #: Alert when the score passes this value; unset: follow the target alert rate.
    risk_threshold: float | None = Field(None, gt=0, lt=1)
    risk_target_alert_rate: float = Field(0.01, gt=0, lt=1)
    #: Block (not only review) a payment whose score passes this value; unset: only analyst rules block.
    risk_block_threshold: float | None = Field(None, gt=0, le=1)
    #: Labels (with at least 20 frauds) before the model replaces the cold-start rules.
    risk_min_labels: int = Field(200, ge=1)
    risk_min_fraud_labels: int = Field(20, ge=1)
    risk_alerts_per_customer_hour: int = Field(3, ge=1)
    #: Event-time seconds after which an unlabelled payment counts as legitimate.
    risk_label_maturity_seconds: float = Field(7 * 86400.0, gt=0)
    risk_learn_unlabelled_as_legit: bool = True
    risk_sync_seconds: float = Field(2.0, gt=0)
    #: Also share what the learners learned with the scoring model after this many labels (so the model follows
    #: the labels in event time at any replay speed).
    risk_sync_labels: int = Field(50, ge=1)
    risk_payment_ttl_seconds: int = Field(30 * 86400, ge=60)

    # Sales forecasting
    #: Tumbling window size in event-time seconds (an hour; the demo's accelerated clock uses the same).
    sales_window_seconds: float = Field(3600.0, gt=0)
    sales_allowed_lateness_seconds: float = Field(600.0, ge=0)
    #: A path into the sales stage (a raw partition through a customers partition) silent this long (wall clock)
    #: stops holding the windows open (``SalesState``: windows close when every active path has passed them).
    #: 30 s, as for risk maturity: in a backfill one customers partition can go unserved for 20 s while the others
    #: run days of event time ahead (measured: 5 s let 1,327 orders and 39,103 views in late on 724,244 events).
    sales_idle_path_seconds: float = Field(30.0, gt=0)
    #: Windows per season (24 hourly windows = one day).
    sales_season_windows: int = Field(24, ge=2)
    sales_horizon_windows: int = Field(3, ge=1)
    sales_top_skus: int = Field(50, ge=1)
    #: Opportunity alerts (``SurgeDetector``): the sales ratio a surge is tested for (a slump: its inverse), the
    #: evidence (log-likelihood ratio) that raises a surge and a slump, and the calm windows that end an episode.
    #: 5.0 was chosen on simulated shops: the same surges caught in time as 4.5, a third fewer other alerts.
    surge_ratio: float = Field(2.5, gt=1)
    surge_threshold: float = Field(5.0, gt=0)
    slump_threshold: float = Field(10.0, gt=0)
    surge_recovery_windows: int = Field(2, ge=1)
    #: Also alert on open windows from their sales so far (earlier, but no longer a function of the events
    #: alone: a partial window's evidence depends on arrival speed). Off: windows are judged once closed.
    surge_nowcast: bool = False
    #: The views' evidence that raises a surge led by product views (unless the orders over the same windows argue
    #: against it). 8.0 was chosen on simulated shops (2,000 customers, seeds 1-20): all 80 planted surges in time
    #: for 1.12 other alerts a day; 9.0 and 10.0 missed one (1.05, 1.00 a day). BENCHMARKS.md has the table.
    surge_interest_threshold: float = Field(8.0, gt=0)

    # Stock-out risk (from the ``inventory`` topic and the SKU sales forecasts; ``StockBook``)
    #: A ``restock`` alert is raised when even the lower bound of the demand forecast sells the stock on hand
    #: within this many hours of event time.
    restock_horizon_hours: float = Field(48.0, gt=0)
    #: How far ahead the hours until stock-out are looked for (beyond: none is served).
    stock_lookahead_hours: float = Field(168.0, gt=0)
    #: An inventory count this late (event time behind the stage's watermark) still applies exactly; an older one,
    #: older than every count kept for its SKU, is counted as late and not applied.
    inventory_late_seconds: float = Field(7200.0, ge=0)
    #: SKUs with inventory held at most (the one counted least recently is dropped first).
    stock_max_skus: int = Field(100_000, ge=1)
    # Traffic anomalies
    #: Scopes watched per minute: ``all`` (shop-wide), ``category`` (views, add-to-cart rate), ``country``
    #: (orders' and payments' billing country) and ``method`` (payment method).
    #: As JSON in the environment: ``KAIROS_ANOMALY_SCOPES='["all", "method"]'``.
    anomaly_scopes: tuple[Literal["all", "category", "country", "method"], ...] = ("all", "category", "country",
                                                                                    "method")
    #: A minute's alert threshold, shop-wide and per category/country/method: the worst signal's move in standard
    #: deviations (chosen on simulated shops, see BENCHMARKS.md "Traffic anomalies"; the smaller scopes' counts
    #: burst more, so they need a higher one).
    anomaly_threshold: float = Field(5.0, gt=0)
    anomaly_scope_threshold: float = Field(7.0, gt=0)
    #: The shop-wide conversion rate's own threshold (orders given add-to-carts falling: a broken checkout). Its
    #: counts are the densest of the rates and its residual the closest to calibrated; at 5, a checkout break at
    #: the quietest hour (about two orders a minute) is not 5 sd within five minutes. Chosen on simulated shops
    #: (seeds 1-3, BENCHMARKS.md "Traffic anomalies").
    anomaly_conversion_threshold: float = Field(4.5, gt=0)
    #: Minutes a scope learns before it may alert.
    anomaly_warmup_minutes: int = Field(60, ge=0)
    #: Event-time seconds a minute stays open after its end (later events are counted as late, not in it).
    anomaly_lateness_seconds: float = Field(30.0, ge=0)
    #: Most scopes watched (a detector each, ~6 KB); further category/country/method values are counted, not watched.
    anomaly_max_scopes: int = Field(256, ge=1)
    #: As ``sales_idle_path_seconds``, for the anomaly stage's minutes.
    anomaly_idle_path_seconds: float = Field(30.0, gt=0)

    # Conversion propensity (the sessions stage; ``SessionTracker``)
    #: Score live sessions and learn who converts (off: no sessions stage work, no session views).
    propensity_enabled: bool = True
    #: Event-time seconds without a click after which a session ends without an order.
    session_timeout_seconds: float = Field(1800.0, gt=0)
    #: Open sessions held at most (beyond: the least recently clicked ends unlearned, counted as dropped).
    sessions_max_open: int = Field(200_000, ge=1)
    #: Sessions the tree waits for before splitting a leaf (River's ``grace_period``); until it has learned this
    #: many, a session's probability is the base rate.
    propensity_grace_period: int = Field(100, ge=1)
    #: An ``abandon`` alert: a cart worth at least this much (shop currency; 0 = no such alerts) whose session's
    #: probability falls below ``abandon_below`` after having reached it, once ``propensity_warmup_sessions``
    #: sessions were learned.
    abandon_cart_value: float = Field(100.0, ge=0)
    abandon_below: float = Field(0.3, gt=0, lt=1)
    propensity_warmup_sessions: int = Field(500, ge=0)
    #: Seconds a session's view (and a customer's latest-session view) stays in Redis after its last change.
    session_ttl_seconds: int = Field(86_400, ge=60)
    #: As ``sales_idle_path_seconds``, for the sessions stage: clicks and orders are applied in event-time order up
    #: to the slowest path heard from within this time (the stage holds the records meanwhile).
    sessions_idle_path_seconds: float = Field(30.0, gt=0)
    #: Records the sessions stage holds for the watermark, at most (about 570 B each in memory, as lists of field
    #: values: 250,000 are about 140 MB, and what a checkpoint writes); beyond, the earliest are applied without
    #: waiting (``released_early``).
    #: A start holds every record for ``sessions_idle_path_seconds``: a replay at full speed fills it then.
    sessions_max_waiting: int = Field(250_000, ge=1)

    # Baskets
    #: Lossy Counting error: supports are underestimated by at most this (fraction of baskets; raised by the
    #: counter, and reported in ``kairos:metrics:baskets``, when a segment would track over the entry budget).
    basket_epsilon: float = Field(0.002, gt=0, lt=1)
    basket_min_support: float = Field(0.01, gt=0, lt=1)
    #: Largest itemset counted (rules come from itemsets of up to three SKUs).
    basket_max_size: int = Field(5, ge=1, le=8)
    #: Baskets per counting segment (each mined as a whole; the open one is mined by every query).
    basket_segment: int = Field(2048, ge=1)
    #: Most untracked itemsets one mining pass may start tracking (the counter's memory budget).
    basket_max_entries: int = Field(1_000_000, ge=1)
    basket_min_confidence: float = Field(0.1, ge=0, le=1)
    basket_min_lift: float = Field(1.0, ge=0)
    basket_top_n: int = Field(10, ge=1)
    #: Event-time half-life of basket counts (unset: no decay).
    basket_half_life_seconds: float | None = Field(None, gt=0)
    #: Wall-clock seconds between rule publications to Redis.
    basket_publish_seconds: float = Field(2.0, gt=0)
    #: Rule hashes and item recommendations expire this long after their last publication, so a rule
    #: no longer produced disappears even when the worker that wrote it restarted or moved away.
    basket_rule_ttl_seconds: int = Field(300, ge=10)
    #: Event-time seconds per rising-pairs observation.
    basket_trend_window_seconds: float = Field(3600.0, gt=0)

    # Checkpoints and alerts
    #: Seconds between snapshots of partition states (risk learner, baskets, sales).
    snapshot_seconds: float = Field(2.0, gt=0)
    alerts_max_len: int = Field(10_000, ge=100)
    #: How long an alert id is remembered to drop a repeated alert (replay after a crash).
    alert_dedupe_seconds: int = Field(7 * 86400, ge=60)

    # Bounded customers (policy in streams/pipeline/expiry.py)
    #: A customer with no event for this many days of event time (behind its partition's watermark) is evicted,
    #: and events older than that are not applied (counted ``expired``).
    customer_idle_days: float = Field(90.0, gt=0)
    #: Customers one partition of the customers table holds at most; beyond it the least recently seen (event
    #: time) are evicted until a sixteenth of it is free. Memory: about 2.2 KB per one-click customer
    #: (BENCHMARKS.md, "Memory per customer").
    max_customers_per_partition: int = Field(250_000, ge=16)
    #: Event-time seconds between two sweeps of a partition: quiet customers re-vectorised at the sweep's time
    #: (so recency and decay move their segment) and idle ones evicted, a bounded slice per batch.
    customer_sweep_seconds: float = Field(86_400.0, gt=0)

    # Serving
    customer_ttl_seconds: int = Field(90 * 24 * 3600, ge=60)
    metrics_flush_seconds: float = Field(1.0, gt=0)

    # Lookup API (kairos serve)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    #: When set, every /api/* request needs the header X-API-Key with this value.
    api_key: SecretStr | None = None
    #: When set, every customer id is replaced by its keyed hash at the ingest; lookups hash the same way
    #: (streams/pipeline/pseudonyms.py).
    pseudonymize_key: SecretStr | None = None

    # Worker process
    worker_web_port: int = Field(6066, ge=0, le=65535)
    worker_web_enabled: bool = False
    #: A worker whose input has lag and whose ingest has not moved for this long is not ready (stalled).
    worker_stall_seconds: float = Field(30.0, gt=0)
    #: How often the worker asks the broker whether its consumer groups move (streams/pipeline/group_watch.py).
    worker_probe_seconds: float = Field(5.0, gt=0)
    #: A consumer group stalled this much longer than ``worker_stall_seconds`` with nothing to explain it
    #: (the broker and Redis answer, no recovery) makes the worker exit (status 75) for its supervisor to
    #: restart it; 0 = never exit.
    worker_exit_after_stall_seconds: float = Field(300.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def redis_dsn(self) -> str:
        """The Redis URL in clear text, for the client only."""
        return self.redis_url.get_secret_value()

    @cached_property
    def internal_topics(self) -> dict[str, str]:
        """Topics Kairos owns (named after ``app_id``)."""
        return {
            "events": f"{self.app_id}-events",
            "model_sync": f"{self.app_id}-model-sync",
            "risk": f"{self.app_id}-risk",
            "sales": f"{self.app_id}-sales",
            "anomaly": f"{self.app_id}-anomaly",
            "sessions": f"{self.app_id}-sessions",
            "baskets": f"{self.app_id}-baskets",
            "risk_views": f"{self.app_id}-risk-views",
        }

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options for aiokafka / kafka-python clients."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        if self.kafka_security_protocol.endswith("SSL"):
            options["ssl_context"] = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
        return options
