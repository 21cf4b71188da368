"""A consumer polls fast while data flows and slowly once idle, against a real broker (Tansu).

Tansu holds a fetch that found nothing for its whole wait, so the wait is what
decides how often an idle consumer asks: every 5 ms cost an idle worker 39 % of
a core. :func:`~streams.pipeline.transport.long_poll_when_idle` keeps the short
wait while fetches bring records and switches to the idle wait after a quiet
second; the first record after the quiet spell still arrives.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.pipeline.transport import FETCH_IDLE_AFTER_SECONDS, long_poll_when_idle

pytestmark = pytest.mark.integration

BUSY_MS, IDLE_MS = 5, 200


async def fetches_in(consumer: AIOKafkaConsumer, seconds: float) -> int:
    """How many fetch requests ``consumer`` makes in ``seconds`` (counted at the fetcher's request routine)."""
    fetcher = consumer._fetcher
    made = 0
    fetch = fetcher._proc_fetch_request

    async def counted(*args):
        nonlocal made
        made += 1
        return await fetch(*args)

    fetcher._proc_fetch_request = counted
    try:
        await asyncio.sleep(seconds)
    finally:
        fetcher._proc_fetch_request = fetch
    return made


async def poll_then_idle(bootstrap: str) -> None:
    topic = f"paced-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=BUSY_MS)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        long_poll_when_idle(consumer, BUSY_MS, IDLE_MS)
        records: list = []

        async def read() -> None:
            while True:
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    records.extend(batch)

        reader = asyncio.create_task(read())
        # Data flowing: a record every 20 ms keeps the short wait.
        for i in range(50):
            await producer.send_and_wait(topic, f"busy-{i}".encode(), partition=i % 2)
            await asyncio.sleep(0.02)
        assert consumer._fetcher._fetch_max_wait_ms == BUSY_MS
        # Quiet: after the idle time the consumer asks at most every IDLE_MS (Tansu holds the empty fetch).
        await asyncio.sleep(FETCH_IDLE_AFTER_SECONDS + 0.5)
        assert consumer._fetcher._fetch_max_wait_ms == IDLE_MS
        idle_fetches = await fetches_in(consumer, 2.0)
        assert idle_fetches <= 2.0 / (IDLE_MS / 1000) + 4, idle_fetches  # at 5 ms it would be hundreds
        # The first record after the quiet spell comes within one idle wait (plus slack), and the short wait is back.
        sent = time.monotonic()
        await producer.send_and_wait(topic, b"after-quiet", partition=1)
        while not any(r.value == b"after-quiet" for r in records):
            assert time.monotonic() - sent < 5.0, "the record after the quiet spell never arrived"
            await asyncio.sleep(0.005)
        waited = time.monotonic() - sent
        assert waited < IDLE_MS / 1000 + 0.5, waited
        assert consumer._fetcher._fetch_max_wait_ms == BUSY_MS
        assert len(records) == 51
        reader.cancel()
    finally:
        await consumer.stop()
        await producer.stop()


def test_an_idle_consumer_polls_slowly_and_still_gets_the_next_record(stack) -> None:
    asyncio.run(poll_then_idle(stack.kafka_bootstrap))
