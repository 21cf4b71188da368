"""The consumer commits only what a stage applied (the hole behind events lost on stops and rebalances)."""

from __future__ import annotations

from faust.types import TP

from streams.pipeline.app import KairosApp
from streams.pipeline.transport import EpochMessage, mark_applied
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
