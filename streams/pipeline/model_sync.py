"""Model sync: small model states shared by every worker through a compacted topic.

Global models (segment centroids, risk weights) are trained per worker or per
partition and merged: each publisher writes its latest state under its own
key to ``<app_id>-model-sync`` (one partition, compacted), and every worker
reads the whole topic, keeping the latest value per key. A restarted worker
reads what was published before it died, so the merged model resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from mode import Service

from streams.pipeline.transport import long_poll_when_idle
from streams.settings import KairosSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncedState:
    """One published state: who, when, and the payload (plain data)."""

    key: str
    published_at: float
    payload: dict[str, Any]


class ModelSync(Service):
    """Publishes this worker's model states and keeps everyone's latest ones."""

    def __init__(self, settings: KairosSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topic = settings.internal_topics["model_sync"]
        self.latest: dict[str, SyncedState] = {}
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self._caught_up = asyncio.Event()

    @property
    def started(self) -> bool:
        """True once the producer and consumer run (Faust starts services after table recovery)."""
        return self.producer is not None and self.consumer is not None

    async def on_start(self) -> None:
        options = self.settings.kafka_client_options()
        self.producer = AIOKafkaProducer(**options, acks="all", max_request_size=8 << 20,
                                         max_batch_size=4 << 20, client_id=f"{self.settings.app_id}-sync")
        await self.producer.start()
        consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False,
                                         auto_offset_reset="earliest", max_partition_fetch_bytes=16 << 20,
                                         fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
                                         client_id=f"{self.settings.app_id}-sync")
        await consumer.start()
        long_poll_when_idle(consumer, self.settings.kafka_fetch_max_wait_ms,
                            self.settings.kafka_fetch_idle_wait_ms)
        consumer.assign([TopicPartition(self.topic, 0)])
        await consumer.seek_to_beginning()
        self.consumer = consumer

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    @Service.task
    async def _read(self) -> None:
        assert self.consumer is not None
        tp = TopicPartition(self.topic, 0)
        while not self.should_stop:
            fetched = await self.consumer.getmany(timeout_ms=200)
            for messages in fetched.values():
                for message in messages:
                    self._remember(message.key.decode(), message.value)
            if not self._caught_up.is_set():
                highwater = self.consumer.highwater(tp)
                if highwater is None:  # no fetch answered yet (e.g. an empty topic)
                    highwater = (await self.consumer.end_offsets([tp]))[tp]
                if await self.consumer.position(tp) >= highwater:
                    self._caught_up.set()

    def _remember(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.latest.pop(key, None)
            return
        try:
            envelope = orjson.loads(value)
            self.latest[key] = SyncedState(key, envelope["published_at"], envelope["payload"])
        except (ValueError, KeyError, TypeError):
            log.warning("model sync: ignoring an unreadable state under %r", key)

    async def caught_up(self, timeout: float = 30.0) -> bool:
        """Wait until everything published before this worker started has been read."""
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def publish(self, key: str, payload: dict[str, Any]) -> None:
        """Publish this worker's latest state under ``key`` (and keep it locally)."""
        assert self.producer is not None
        now = time.time()
        value = orjson.dumps({"published_at": now, "payload": payload}, option=orjson.OPT_SERIALIZE_NUMPY)
        await self.producer.send_and_wait(self.topic, value, key=key.encode(), partition=0)
        self.latest[key] = SyncedState(key, now, payload)

    def states(self, prefix: str) -> list[SyncedState]:
        """Latest states whose key starts with ``prefix``, newest first."""
        found = [state for key, state in self.latest.items() if key.startswith(prefix)]
        return sorted(found, key=lambda state: state.published_at, reverse=True)
