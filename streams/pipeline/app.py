"""The Faust app: topics, tables, the ingest service and the agents, wired once.

Read this module first. The flow:

1. :class:`~streams.pipeline.ingest.Ingestor` (a service, not an agent) reads
   ``clicks``/``orders``/``payments``/``labels`` in batches, validates,
   dead-letters and forwards packed batches to ``<app_id>-events``.
2. The ``customers`` agent applies each packed batch to the ``customers``
   table (:class:`~streams.pipeline.stages.customers.CustomerStage`) and
   writes the customer views to Redis.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from streams.pipeline.counters import totals
from streams.pipeline.ingest import Ingestor
from streams.pipeline.packing import decode_packet
from streams.pipeline.stages.customers import CustomerStage, encode_value, value_decoder
from streams.pipeline.store import MAX_BATCH_BYTES, ChangelogWriter, KeyedStore, register_codec
from streams.pipeline.transport import FETCH_WAIT_ENV
from streams.pipeline.views import RedisViews, connect_redis
from streams.settings import KairosSettings

log = logging.getLogger(__name__)

#: Internal messages folded together (at most), and how long to wait for more.
TAKE_MESSAGES = 64
TAKE_WITHIN_SECONDS = 0.005


@dataclass
class Runtime:
    """What the agents share inside one worker process, created at start-up."""

    producer: AIOKafkaProducer
    redis: Any
    customers: CustomerStage


class KairosApp:
    """Builds and holds the Faust app for one set of settings."""

    def __init__(self, settings: KairosSettings) -> None:
        self.settings = settings
        os.environ[FETCH_WAIT_ENV] = str(settings.kafka_fetch_max_wait_ms)
        self.views = RedisViews(settings)
        self.runtime: Runtime | None = None
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        self.app = faust.App(
            settings.app_id,
            broker=f"kairos://{settings.kafka_bootstrap}",
            broker_credentials=self._faust_credentials(),
            store="memory://",
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
        )
        self.events_topic = self.app.topic(
            settings.internal_topics["events"],
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=settings.partitions, internal=True,
        )
        self._customer_decoder = value_decoder(settings.dedupe_ids_per_customer)
        self.customers_table = self._table("customers", encode_value, self._customer_decoder)
        self.customers_table.on_recover(self._on_customers_recovered)
        self.ingestor = Ingestor(settings)
        self.app.service(self.ingestor)  # started and stopped with the app
        self.app.agent(self.events_topic, name="customers")(self._customers_agent)
        self.app.timer(settings.metrics_flush_seconds)(self._flush_metrics)

    def _table(self, name: str, encode: Any, decode: Any) -> faust.Table:
        """A table keyed by str whose changelog values use ``encode``/``decode``."""
        codec = register_codec(f"kairos.{self.settings.app_id}.{name}", encode, decode)
        changelog = self.app.topic(
            f"{self.settings.app_id}-{name}-changelog",
            key_type=str, key_serializer="raw", value_serializer=codec,
            partitions=self.settings.partitions, compacting=True, deleting=False,
            acks=False, internal=True, maxsize=131_072, allow_empty=True,
            config={"max.message.bytes": str(MAX_BATCH_BYTES + 64 * 1024)},
        )
        return self.app.Table(name, partitions=self.settings.partitions, key_type=str, changelog_topic=changelog)

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
        """Create the producer and Redis client the agents share (once)."""
        if self.runtime is None:
            producer = AIOKafkaProducer(
                **self.settings.kafka_client_options(), acks="all", linger_ms=2,
                max_batch_size=MAX_BATCH_BYTES, max_request_size=4 << 20,
                client_id=f"{self.settings.app_id}-state",
            )
            await producer.start()
            redis = connect_redis(self.settings)
            writer = ChangelogWriter(producer)
            customers = CustomerStage(
                KeyedStore(self.customers_table, writer, encode_value, self._customer_decoder), redis, self.views,
                self.settings.dedupe_ids_per_customer,
            )
            self.runtime = Runtime(producer, redis, customers)
        return self.runtime

    async def _on_customers_recovered(self) -> None:
        try:
            await self._catch_up_customers()
        except Exception:  # Faust swallows callback errors; make them loud
            log.exception("customers: changelog catch-up failed")
            raise

    async def _catch_up_customers(self) -> None:
        runtime = await self.start_runtime()
        recovery = self.app.tables.recovery
        # Faust stopped at the end offset the broker reported; re-read from the
        # start of the last record batch it could have cut short.
        start = {
            tp: max(0, (recovery.active_highwaters.get(tp) or 0) - 1)
            for tp in recovery.actives_for_table[self.customers_table]
        }
        applied = await runtime.customers.store.catch_up(self.settings.kafka_client_options(), start)
        if applied:
            log.info("customers: re-applied %d changelog records from the last batch on", applied)
        runtime.customers.reload_counters()

    async def _customers_agent(self, stream: faust.Stream) -> None:
        runtime = await self.start_runtime()
        async for events in stream.take_events(TAKE_MESSAGES, within=TAKE_WITHIN_SECONDS):
            await runtime.customers.apply([
                (event.message.partition, batch) for event in events for batch in decode_packet(event.value)
            ])

    def owned_partitions(self) -> set[int]:
        """Internal partitions whose tables this worker owns now."""
        topic = self.settings.internal_topics["events"]
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    async def _flush_metrics(self) -> None:
        """Publish this worker's partitions' counters, then the totals over all partitions."""
        if self.runtime is None:
            return
        redis, customers = self.runtime.redis, self.runtime.customers
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
        for field, value in stored.items():
            name = field.decode().split(".", 1)[1]
            summed[name] = summed.get(name, 0) + int(value)
        pipe = redis.pipeline(transaction=False)
        self.views.metrics(pipe, "ingest", summed)
        self.views.worker_metrics(pipe, self.worker_id, {"ingest_lag": self.ingestor.lag, **self.ingestor.counts})
        await pipe.execute()
