"""Time sanity at the door: implausible event times are dead letters; replays of old data still pass."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline.pseudonyms import Pseudonyms
from streams.pipeline.validation import EventValidator
from streams.settings import KairosSettings
from streams.tools.hostile import HOSTILE_KINDS, hostile_value

DAY = 86400.0
#: The wall clock of every test: 2026-11-22T06:00:00Z.
NOW = datetime(2026, 11, 22, 6, tzinfo=timezone.utc).timestamp()
#: The contract's range of event times, in epoch seconds.
FIRST = datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp()
LAST = datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp()
EVENT_TYPES = ("clicks", "orders", "payments", "labels")
#: Every input topic, the optional inventory one included.
ALL_TOPICS = (*EVENT_TYPES, "inventory")
FIELDS = {
    "clicks": {"customer_id": "c1", "session_id": "s1", "action": "view", "sku": "A"},
    "orders": {"order_id": "o1", "customer_id": "c1", "currency": "EUR",
               "lines": [{"sku": "A", "quantity": 1, "unit_price": 5.0}]},
    "payments": {"payment_id": "p1", "order_id": "o1", "customer_id": "c1", "amount": 5.0, "currency": "EUR",
                 "method": "card"},
    "labels": {"payment_id": "p1", "is_fraud": False},
    "inventory": {"sku": "A", "on_hand": 12},
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def event(event_type: str, ts: float | str) -> bytes:
    return json.dumps({"event_id": "e1", "ts": ts if isinstance(ts, str) else iso(ts), **FIELDS[event_type]}).encode()


def validator(**limits: float) -> EventValidator:
    """The validator as the ingest builds it from the settings, with a fixed wall clock."""
    s = KairosSettings(**limits)
    return EventValidator(s.max_event_bytes, max_future_seconds=s.max_future_seconds,
                          max_past_seconds=s.max_past_seconds, clock=lambda: NOW)


@pytest.mark.parametrize("event_type", ALL_TOPICS)
def test_an_event_of_any_type_dated_2099_is_a_dead_letter_that_says_why(event_type: str) -> None:
    door = validator()
    assert door.check(event_type, event(event_type, NOW - 60.0)).record is not None

    outcome = door.check(event_type, event(event_type, "2099-01-01T00:00:00Z"))

    assert outcome.record is None
    assert outcome.reason == ("ts 2099-01-01T00:00:00Z is 72.1 years ahead of the stream (2026-11-22T06:00:00Z; "
                              "limit 1 day, KAIROS_MAX_FUTURE_SECONDS)")
    assert door.stream_time == NOW - 60.0  # a rejected event does not move the stream
    assert door.check(event_type, event(event_type, NOW + 0.5 * DAY)).record is not None


@pytest.mark.parametrize("event_type", ALL_TOPICS)
def test_an_event_of_any_type_dated_2001_passes_by_default_and_is_a_dead_letter_under_a_past_limit(
        event_type: str) -> None:
    default, limited = validator(), validator(max_past_seconds=30 * DAY)
    for door in (default, limited):
        assert door.check(event_type, event(event_type, NOW)).record is not None

    assert default.check(event_type, event(event_type, "2001-01-01T00:00:00Z")).record["ts"] == 978307200.0
    assert limited.check(event_type, event(event_type, "2001-01-01T00:00:00Z")).reason == (
        "ts 2001-01-01T00:00:00Z is 25.9 years behind the stream (2026-11-22T06:00:00Z; "
        "limit 30 days, KAIROS_MAX_PAST_SECONDS)")
    assert default.stream_time == limited.stream_time == NOW


def test_the_stream_is_at_the_later_of_the_clock_and_the_latest_event_accepted() -> None:
    door = validator()
    # A simulation running ahead of the clock: ten days, one order every half day.
    for step in range(1, 21):
        assert door.check("orders", event("orders", NOW + step * 0.5 * DAY)).record is not None
    # Two days past its latest order: rejected, measured from the stream, not the clock.
    assert door.check("orders", event("orders", NOW + 12 * DAY)).reason == (
        "ts 2026-12-04T06:00:00Z is 2 days ahead of the stream (2026-12-02T06:00:00Z; "
        "limit 1 day, KAIROS_MAX_FUTURE_SECONDS)")
    # A quiet weekend: the stream's last event three days old, the next one now; the clock says it is on time.
    quiet = validator()
    assert quiet.check("labels", event("labels", NOW - 3 * DAY)).record is not None
    assert quiet.check("labels", event("labels", NOW)).record is not None


def test_a_replay_of_2010_data_passes_even_under_a_past_limit_and_unset_limits_check_nothing() -> None:
    door = validator(max_past_seconds=DAY)
    start = datetime(2010, 12, 1, 8, tzinfo=timezone.utc).timestamp()
    assert all(door.check("orders", event("orders", start + hour * 3600.0)).record for hour in range(48))
    assert door.check("orders", event("orders", start - 2 * DAY)).reason == (
        "ts 2010-11-29T08:00:00Z is 3.96 days behind the stream (2010-12-03T07:00:00Z; "
        "limit 1 day, KAIROS_MAX_PAST_SECONDS)")

    unlimited = EventValidator(max_bytes=1024)
    assert unlimited.check("orders", event("orders", "2099-01-01T00:00:00Z")).record is not None
    assert unlimited.check("orders", event("orders", "2000-01-01T00:00:00Z")).record is not None


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.integers(min_value=int(FIRST), max_value=int(LAST) - 1), max_size=25),
       future=st.sampled_from([60.0, DAY, 30 * DAY]), past=st.sampled_from([None, DAY, 365 * DAY]))
def test_an_event_passes_exactly_when_it_is_within_the_limits_of_the_stream_so_far(
        times: list[int], future: float, past: float | None) -> None:
    door = validator(max_future_seconds=future, max_past_seconds=past)
    latest = None
    for ts in times:
        outcome = door.check("payments", event("payments", float(ts)))
        ahead = ts - max(NOW, latest if latest is not None else NOW) > future
        behind = past is not None and latest is not None and latest - ts > past
        assert (outcome.record is None) == (ahead or behind)
        if outcome.record is not None:
            latest = ts if latest is None else max(latest, ts)
        else:
            assert ("KAIROS_MAX_FUTURE_SECONDS" if ahead else "KAIROS_MAX_PAST_SECONDS") in outcome.reason
        assert door.stream_time == latest


@settings(max_examples=50, deadline=None)
@given(start=st.integers(min_value=int(FIRST), max_value=int(NOW)),
       steps=st.lists(st.floats(min_value=0.0, max_value=DAY), max_size=40))
def test_a_stream_in_order_from_any_date_up_to_now_is_never_rejected(start: int, steps: list[float]) -> None:
    door = validator(max_past_seconds=DAY)
    ts = float(start)
    for step in steps:
        ts = min(ts + step, LAST - 1.0)
        assert door.check("clicks", event("clicks", ts)).record is not None


@pytest.mark.parametrize("kind", [kind for kind in HOSTILE_KINDS if kind != "duplicate"])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_hostile_kind_of_the_chaos_flood_is_a_dead_letter_with_a_reason(event_type: str, kind: str) -> None:
    """``kairos chaos --scenario hostile`` counts on it: each kind it sends is refused, whatever the topic."""
    door = validator()
    valid = json.loads(event(event_type, NOW - 60.0))
    assert door.check(event_type, json.dumps(valid).encode()).record is not None
    outcome = door.check(event_type, hostile_value(kind, event_type, valid, door.max_bytes))
    assert outcome.record is None and outcome.reason


def test_a_pseudonymizing_validator_replaces_the_customer_id_and_nothing_else() -> None:
    hashed = Pseudonyms("k")
    validator = EventValidator(max_bytes=1024, pseudonyms=hashed)
    record = validator.check("payments", b'{"event_id": "e1", "ts": "2026-11-22T06:01:17Z", "payment_id": "p1", '
                                         b'"order_id": "o1", "customer_id": "c1", "amount": 5, "currency": "EUR", '
                                         b'"method": "card", "device_id": "d1"}').record
    assert record["customer_id"] == hashed("c1") != "c1"
    assert (record["payment_id"], record["device_id"]) == ("p1", "d1")
    label = validator.check("labels", b'{"event_id": "e2", "ts": "2026-11-22T07:00:00Z", "payment_id": "p1", '
                                      b'"is_fraud": true}').record
    assert label["payment_id"] == "p1" and "customer_id" not in label
