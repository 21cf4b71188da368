"""A Faust transport (``kairos://``) whose consumer long-polls for a bounded time.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``. Apache
Kafka answers a waiting fetch as soon as data arrives, so that is harmless
there; some Kafka-compatible brokers (Tansu, our embedded broker, measured:
~380 ms average extra delay per hop) hold every fetch that found nothing for
the full wait. This transport is Faust's aiokafka transport with the wait set
from ``KAIROS_KAFKA_FETCH_MAX_WAIT_MS``. It is registered as an entry point in
the ``faust.transports`` namespace (see ``pyproject.toml``).

The consumer also stamps every message it fetches with a local assignment
epoch (bumped at each partition assignment), which the write fence
(:mod:`streams.pipeline.fence`) uses to recognise events fetched before a
rebalance. Faust's ``generation_id`` is ambiguous there: the app's value is 0
before the first join, and some brokers (Tansu) number the first generation 0.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ConsumerMessage

log = logging.getLogger(__name__)

#: Environment variable read by the consumer thread (set from the settings by the app).
FETCH_WAIT_ENV = "KAIROS_KAFKA_FETCH_MAX_WAIT_MS"


class PromptFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a bounded fetch long-poll."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts and builds its fetcher.
        consumer._fetch_max_wait_ms = int(os.environ.get(FETCH_WAIT_ENV, "5"))
        return consumer


class EpochMessage(ConsumerMessage):
    """A consumer message with the local assignment epoch it was fetched in."""

    __slots__ = ("epoch",)


class PromptFetchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer using :class:`PromptFetchConsumerThread`, stamping epochs."""

    #: Bumped at every partition assignment, before the new partitions are fetched.
    epoch = 0

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        self.epoch += 1
        await super().on_partitions_assigned(assigned, generation_id)

    def _to_message(self, tp: Any, record: Any) -> EpochMessage:
        timestamp = record.timestamp
        message = EpochMessage(
            record.topic, record.partition, record.offset,
            timestamp / 1000.0 if timestamp is not None else None,
            record.timestamp_type, record.headers, record.key, record.value, record.checksum,
            record.serialized_key_size, record.serialized_value_size, tp,
            generation_id=self.app.consumer_generation_id,
        )
        message.epoch = self.epoch
        return message

    async def _commit(self, offsets: Any) -> bool:
        if self.app.should_stop:  # the last commit of a stopping worker: what it hands over
            log.info("commit on stop: %s", {f"{tp.topic}:{tp.partition}": offset for tp, offset in offsets.items()})
        return await super()._commit(offsets)

    def _new_consumer_thread(self) -> PromptFetchConsumerThread:
        return PromptFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """``kairos://`` broker URLs: Faust's aiokafka transport with prompt fetches."""

    Consumer = PromptFetchConsumer
