"""The inventory topic's wire contract: counts are validated and dead-lettered like every other input."""

from __future__ import annotations

import pytest

from streams.pipeline.ingest import ROUTING_FIELD
from streams.pipeline.validation import EventValidator
from streams.settings import KairosSettings

VALIDATOR = EventValidator(max_bytes=1024)


def test_a_count_becomes_a_record_routed_by_sku() -> None:
    outcome = VALIDATOR.check("inventory", b'{"event_id": "i1", "ts": "2026-11-22T06:00:00Z", "sku": "A", '
                                           b'"on_hand": 12, "warehouse": "north"}')
    assert outcome.record == {"event_id": "i1", "ts": 1795327200.0, "sku": "A", "on_hand": 12}
    assert ROUTING_FIELD["inventory"] == "sku"
    assert KairosSettings().topics.inputs()["inventory"] == "inventory"


@pytest.mark.parametrize(("value", "reason"), [
    (b'{"event_id": "i1", "ts": "2026-11-22T06:00:00Z", "sku": "A", "on_hand": -1}',
     "field 'on_hand': Input should be greater than or equal to 0 (got -1)"),
    (b'{"event_id": "i1", "ts": "2026-11-22T06:00:00Z", "sku": "A", "on_hand": "12"}',
     "field 'on_hand': Input should be a valid integer (got '12')"),
    (b'{"event_id": "i1", "ts": "2026-11-22T06:00:00Z", "on_hand": 3}', "missing required field 'sku'"),
    (b'{"event_id": "i1", "ts": "2026-11-22T06:00:00", "sku": "A", "on_hand": 3}',
     "field 'ts': Input should have timezone info (got '2026-11-22T06:00:00')"),
    (b'{"type": "order", "event_id": "i1", "ts": "2026-11-22T06:00:00Z", "sku": "A", "on_hand": 3}',
     "unknown event type 'order' (expected 'inventory')"),
])
def test_a_bad_count_gets_a_reason_never_an_exception(value: bytes, reason: str) -> None:
    outcome = VALIDATOR.check("inventory", value)
    assert outcome.record is None and outcome.reason == reason
