"""A Faust transport (``kairos://``) whose consumer long-polls for a bounded time.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``. Apache
Kafka answers a waiting fetch as soon as data arrives, so that is harmless
there; some Kafka-compatible brokers (Tansu, our embedded broker, measured:
~380 ms average extra delay per hop) hold every fetch that found nothing for
the full wait. This transport is Faust's aiokafka transport with the wait set
from ``KAIROS_KAFKA_FETCH_MAX_WAIT_MS``. It is registered as an entry point in
the ``faust.transports`` namespace (see ``pyproject.toml``).
"""

from __future__ import annotations

import os
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

#: Environment variable read by the consumer thread (set from the settings by the app).
FETCH_WAIT_ENV = "KAIROS_KAFKA_FETCH_MAX_WAIT_MS"


class PromptFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a bounded fetch long-poll."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts and builds its fetcher.
        consumer._fetch_max_wait_ms = int(os.environ.get(FETCH_WAIT_ENV, "5"))
        return consumer


class PromptFetchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer using :class:`PromptFetchConsumerThread`."""

    def _new_consumer_thread(self) -> PromptFetchConsumerThread:
        return PromptFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """``kairos://`` broker URLs: Faust's aiokafka transport with prompt fetches."""

    Consumer = PromptFetchConsumer
