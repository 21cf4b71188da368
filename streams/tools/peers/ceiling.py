"""The ceiling: a raw aiokafka consumer that fetches every input event and parses it with ``json.loads``."""

from __future__ import annotations

import json
import time

from aiokafka import AIOKafkaConsumer

from streams.settings import KairosSettings
from streams.tools.peers.measure import Measurement, RunClock


async def raw_consumer(settings: KairosSettings, expected: int) -> Measurement:
    """Fetch and parse ``expected`` events of the input topics (no validation, no state, no Redis)."""
    consumer = AIOKafkaConsumer(
        *settings.topics.inputs(), **settings.kafka_client_options(), group_id=None,
        auto_offset_reset="earliest", enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20, fetch_max_bytes=64 << 20,
    )
    clock = RunClock()
    await consumer.start()
    try:
        seen = 0
        while seen < expected:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if fetched:
                clock.mark_first(time.perf_counter())
            for messages in fetched.values():
                for message in messages:
                    try:
                        json.loads(message.value)
                    except ValueError:
                        pass  # a bad message of a workload: parsed as far as it goes
                seen += len(messages)
        clock.mark_last(time.perf_counter())
        return clock.measurement("ceiling", seen)
    finally:
        await consumer.stop()
