"""The broker's view of a consumer group, against a real broker (Tansu).

The state a stalled Faust consumer leaves behind (faust-streaming #175/#640):
a group with lag that no member consumes. The worker's own consumers hold no
partition then, so their lag reads 0; the group watch sees the group's
committed offsets stand still while the topic's end moves on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.pipeline import retry
from streams.pipeline.group_watch import PROBE_STEP, GroupWatch
from streams.pipeline.health import StallDetector, readiness
from streams.tools.devstack import start_tansu

pytestmark = pytest.mark.integration


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit ``offsets`` for ``group`` as a member that then leaves (consuming nothing more)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def watch_a_group_nobody_consumes(bootstrap: str) -> None:
    topic, group = f"watched-{uuid.uuid4().hex[:8]}", f"group-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 2, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for index in range(10):
        await producer.send_and_wait(topic, b"event", partition=index % 2)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    await commit(bootstrap, group, {tps[0]: 5, tps[1]: 2})
    watch = GroupWatch({"bootstrap_servers": bootstrap}, {group: [topic]}, stall_seconds=10.0, probe_seconds=1.0)
    await watch.on_start()
    await watch._start_clients()
    try:
        await watch.probe(now=0.0)
        assert watch.lags[group] == 3 and watch.stalls(now=0.0) == []
        await producer.send_and_wait(topic, b"event", partition=0)  # the end moves on, the group does not
        await watch.probe(now=11.0)
        stalls = watch.stalls(now=11.0)
        assert [(s.group, s.lag) for s in stalls] == [(group, 4)], stalls
        # The worker's own detector saw no lag (it holds no partition): only the group's view says why.
        own = StallDetector(10.0)
        own.observe(lag=0, position=0, now=11.0)
        ready = readiness(False, False, own, 0, stalls)
        assert not ready.ready and ready.reasons == [f"consumer group {group}: lag 4 and no committed offset "
                                                     "moved for 11 s"], ready.reasons
        await commit(bootstrap, group, {tps[0]: 6, tps[1]: 5})  # a member came back and caught up
        await watch.probe(now=12.0)
        assert watch.lags[group] == 0 and watch.stalls(now=30.0) == []
    finally:
        await producer.stop()
        await watch.on_stop()


def test_a_group_with_lag_that_nobody_consumes_is_a_stall(stack) -> None:
    asyncio.run(watch_a_group_nobody_consumes(f"127.0.0.1:{stack.broker.port}"))


async def probe_a_frozen_broker(bootstrap: str, pid: int) -> list[str]:
    """Probe every 0.5 s for 6.5 s while the broker is frozen, then until it answers again; the log lines."""
    watch = GroupWatch({"bootstrap_servers": bootstrap}, {"g": ["absent-topic"]}, stall_seconds=10.0,
                       probe_seconds=0.5)
    await watch.start()
    try:
        await asyncio.sleep(1.5)
        assert PROBE_STEP not in retry.FAILING
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(6.5)
            failing = retry.FAILING.get(PROBE_STEP)
            assert failing is not None and "did not answer" in failing.reason, failing
        finally:
            os.kill(pid, signal.SIGCONT)
        for _ in range(60):
            if PROBE_STEP not in retry.FAILING:
                break
            await asyncio.sleep(0.5)
        assert PROBE_STEP not in retry.FAILING, "the probe answers again once the broker is back"
    finally:
        await watch.stop()


def test_a_frozen_broker_is_one_failing_probe_not_silence(tmp_path, caplog) -> None:
    """SIGSTOP on the broker: its connections stay open and nothing answers (before, the worker's figures
    read lag 0 throughout). The probe fails within its timeout, logged once, and recovers after."""
    broker = start_tansu(tmp_path)
    try:
        with caplog.at_level("WARNING", logger="streams.pipeline.retry"):
            asyncio.run(probe_a_frozen_broker(f"127.0.0.1:{broker.port}", broker.process.pid))
    finally:
        broker.stop()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(PROBE_STEP)]
    assert len(lines) == 2 and "failing" in lines[0] and "recovered" in lines[1], lines
