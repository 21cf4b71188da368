"""The consumer commits only what a stage applied (the hole behind events lost on stops and rebalances)."""

from __future__ import annotations

import logging

from faust.types import TP

from streams.pipeline.app import KairosApp
from streams.pipeline.transport import EpochMessage, long_poll_when_idle, mark_applied
from streams.settings import KairosSettings


class Event:
    def __init__(self, message: EpochMessage) -> None:
        self.message = message


def message(topic: str, offset: int) -> EpochMessage:
    found = EpochMessage(topic, 0, offset, 0.0, 0, [], b"k", b"v", None, 1, 1, TP(topic, 0))
    found.epoch, found.applied = 1, False
    return found


def consumer_of(settings: KairosSettings):
    """The worker's consumer, as once its agents run (they make Faust acknowledge their topics)."""
    kairos = KairosApp(settings)
    kairos.app.topics.acks_enabled_for = lambda topic: True
    return kairos.app.consumer, settings.internal_topics["events"]


def test_an_acknowledgement_of_a_message_no_stage_applied_is_never_committed() -> None:
    consumer, events = consumer_of(KairosSettings(app_id="gate-test"))
    tp = TP(events, 0)
    consumer._committed_offset[tp] = 100
    skipped = message(events, 100)  # what Faust acks when it skips a message during a stop or a rebalance
    assert consumer.ack(skipped) is False
    applied = [message(events, offset) for offset in (101, 102)]
    mark_applied([Event(m) for m in applied])
    assert all(consumer.ack(m) for m in applied)
    # Faust alone would commit 103 here (one missing message at the head passes its check): never past 100.
    assert consumer._new_offset(tp) is None
    mark_applied([Event(skipped)])
    assert consumer.ack(skipped) is True
    assert consumer._new_offset(tp) == 103


def test_topics_kairos_does_not_own_are_acknowledged_as_faust_does() -> None:
    consumer, _ = consumer_of(KairosSettings(app_id="gate-test-2"))
    other = message("someone-elses-topic", 5)
    assert consumer.ack(other) is True



def scripted_fetches(monkeypatch, app_id: str, partition: int, fetches: list[list[int]], next_offset: int):
    """The worker's consumer whose fetches return ``fetches`` (offsets of one events partition, fetch by fetch,
    the last one repeated), its seeks recorded, and a reader of one fetch's records as the stages get them."""
    import asyncio
    from types import SimpleNamespace

    from faust.transport.drivers import aiokafka as faust_aiokafka

    consumer, events = consumer_of(KairosSettings(app_id=app_id))
    tp = TP(events, partition)
    remaining = list(fetches)

    async def scripted(self, timeout):  # what the broker returned
        for offset in remaining.pop(0) if len(remaining) > 1 else remaining[0]:
            yield tp, message(events, offset)

    sought: list[dict] = []

    async def seek_wait(partitions):
        sought.append(dict(partitions))

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", scripted)
    monkeypatch.setattr(consumer, "_thread", SimpleNamespace(seek_wait=seek_wait))
    monkeypatch.setattr(consumer, "highwater", lambda tp: max(max(f) for f in fetches) + 1)
    consumer.app.gated_topics = {events}
    consumer._fetch_next[tp] = next_offset  # as the recovery's seek to the committed offset leaves it

    async def read_offsets() -> list[int]:
        return [m.offset async for _, m in consumer.getmany(1.0)]

    return consumer, tp, sought, lambda: asyncio.run(read_offsets())


def test_a_fetch_that_skips_offsets_is_sought_back_and_read_again(monkeypatch) -> None:
    """A fetch returning a gated partition's records past the next offset (seen with Tansu after a kill) must
    not reach the stages: the partition is sought back, and the records come again in order."""
    consumer, tp, sought, read = scripted_fetches(monkeypatch, "gap-test", 1, [[18, 19, 24, 25],
                                                                              [20, 21, 22, 23, 24, 25]], 18)
    assert read() == [18, 19]
    assert sought == [{tp: 20}] and consumer.gaps_refetched == 1
    assert read() == [20, 21, 22, 23, 24, 25]
    assert consumer.offsets_missing == 0


def test_a_gap_that_stays_after_every_refetch_is_counted_as_missing(monkeypatch) -> None:
    from streams.pipeline.transport import MAX_REFETCHES

    consumer, tp, sought, read = scripted_fetches(monkeypatch, "gap-test-2", 0, [[7, 8]], 5)
    for _ in range(MAX_REFETCHES):
        assert read() == []
    assert sought == [{tp: 5}] * MAX_REFETCHES
    assert read() == [7, 8]
    assert consumer.offsets_missing == 2 and consumer.gaps_refetched == MAX_REFETCHES


def test_a_seek_back_that_fails_is_tried_again_at_the_next_fetch(monkeypatch) -> None:
    """A partition revoked, or the broker away, between the fetch and the seek back: the fetcher goes on."""
    consumer, tp, sought, read = scripted_fetches(monkeypatch, "gap-test-3", 2, [[4, 9], [5, 6, 7, 8, 9]], 4)

    async def failing(partitions):
        sought.append(dict(partitions))
        raise RuntimeError("no current assignment")

    monkeypatch.setattr(consumer._thread, "seek_wait", failing)
    assert read() == [4]
    assert read() == [5, 6, 7, 8, 9] and consumer.offsets_missing == 0


def test_a_consumer_whose_fetcher_cannot_be_paced_keeps_working_and_says_so(caplog) -> None:
    """``long_poll_when_idle`` leans on aiokafka's fetcher internals: without them it changes nothing, logs why,
    and never raises out of a consumer's start."""

    class Fetcherless:
        pass

    with caplog.at_level(logging.WARNING, logger="streams.pipeline.transport"):
        long_poll_when_idle(Fetcherless(), 5, 50)
    assert "cannot be paced" in caplog.text
