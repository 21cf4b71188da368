"""Partition clocks, counters and compact customer state: checkpoints old and new read back the same."""

from __future__ import annotations

import math

import orjson

from models.risk import PaymentHistory
from streams.pipeline.counters import IngestCounter
from streams.pipeline.customers import CustomerState
from streams.pipeline.expiry import DAY, PartitionClock
from streams.pipeline.stages.customers import encode_value, value_decoder

decode = value_decoder(dedupe_capacity=8)


def test_a_clock_holds_back_at_its_slowest_path_and_never_lowers_its_horizon() -> None:
    clock = PartitionClock()
    clock.advance("orders:0", 200 * DAY, idle_seconds=90 * DAY)
    assert clock.horizon == 110 * DAY
    clock.advance("clicks:0", 100 * DAY, idle_seconds=90 * DAY)  # a path read behind the other
    assert clock.watermark == 100 * DAY and clock.horizon == 110 * DAY
    clock.advance("clicks:0", 250 * DAY, idle_seconds=90 * DAY)
    assert clock.watermark == 200 * DAY and clock.horizon == 110 * DAY
    assert clock.sweep_due(DAY) == 200 * DAY
    clock.swept_at = 200 * DAY
    assert clock.sweep_due(DAY) is None


def test_a_clock_comes_back_from_the_changelog_as_it_was() -> None:
    clock = PartitionClock({"clicks:0": 5 * DAY, "orders:1": 7 * DAY}, horizon=1 * DAY)
    clock.raise_horizon(2 * DAY)
    back = decode(encode_value(clock))
    assert isinstance(back, PartitionClock)
    assert (back.paths, back.watermark, back.horizon, back.swept_at) == (
        clock.paths, 5 * DAY, clock.horizon, -math.inf)


def test_a_counter_written_before_expiry_existed_reads_with_none_expired() -> None:
    old = {"kind": "ingest", "event_type": "clicks", "applied": 9, "processed": 7, "invalid": 1, "duplicate": 2}
    counter = decode(orjson.dumps(old))
    assert isinstance(counter, IngestCounter)
    assert (counter.processed, counter.duplicate, counter.expired) == (7, 2, 0)


def test_a_customer_who_never_paid_holds_no_payment_lists_and_pays_normally_after_a_restore() -> None:
    state = CustomerState.new(dedupe_capacity=8)
    state.apply("clicks", {"event_id": "e1", "ts": 100.0, "customer_id": "c", "session_id": "s",
                           "action": "view", "category": "toys"})
    assert state.history.recent == () and state.history.log_amounts == ()
    back = decode(encode_value(state))
    assert isinstance(back, CustomerState)
    assert back.to_state() == state.to_state()
    payment = {"event_id": "e2", "payment_id": "p1", "ts": 200.0, "customer_id": "c", "amount": 10.0,
               "currency": "EUR", "method": "card", "card_fingerprint": "k1"}
    back.apply("payments", payment)
    assert back.history.payments_seen == 1 and back.history.cards == ["k1"]
    assert PaymentHistory.from_state(back.history.state_dict()).state_dict() == back.history.state_dict()
