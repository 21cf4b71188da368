"""The Python clients (sync and async) against a real uvicorn serving the API, and the live alert stream."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from streams.serving.client import AsyncKairosClient, KairosClient, KairosError
from streams.serving.sample import write_alert
from streams.tools.devstack import free_port
from tests.serving.conftest import API_KEY

#: (lookup, arguments, what the answer must show): one story, run by both clients.
LOOKUPS: list[tuple[str, tuple[Any, ...], Callable[[Any], bool]]] = [
    ("customer", ("c1",), lambda v: v.segment_id == 0 and v.segment.name == "loyal big spenders"),
    ("segments", (), lambda v: [s.size for s in v.segments] == [340, 120, 80]),
    ("segment", (2,), lambda v: v.name == "new customers"),
    ("item_recommendations", ("tea", 2), lambda v: [i.sku for i in v.items] == ["milk", "scones"]),
    ("cart_recommendations", (["tea", "scones"], "c1", 3),
     lambda v: [(i.sku, i.source) for i in v.items] == [("jam", "rule"), ("milk", "rule"), ("honey", "segment")]),
    ("customer_recommendations", ("c2", 2), lambda v: [i.source for i in v.items] == ["global", "global"]),
    ("rules", (2, 2.8), lambda v: [r.consequent for r in v.rules] == ["milk", "scones"]),
    ("payment_risk", ("pay-1",), lambda v: v.decision == "review" and v.reasons[0] == "card not seen before"),
    ("alerts", (["surge"],), lambda v: [a.subject for a in v.alerts] == ["category:toys"]),
    ("forecasts", ("category",), lambda v: [f.key for f in v.forecasts] == ["books", "garden", "toys"]),
    ("forecast", ("category", "toys"), lambda v: v.forecast_units == 6.0 and len(v.actuals) == 6),
    ("metrics", (), lambda v: v.lag == 42.0 and v.ingest["orders"].processed == 3000),
    ("put_risk_rule", ("burst", "velocity_1m >= 5", 0.9), lambda v: v.action == 0.9 and v.enabled),
    ("pause_risk_rule", ("burst",), lambda v: v.enabled is False),
    ("resume_risk_rule", ("burst",), lambda v: v.enabled is True),
    ("risk_rule", ("burst",), lambda v: v.expression == "velocity_1m >= 5"),
    ("risk_rules", (), lambda v: [r.id for r in v.rules] == ["burst"]),
    ("delete_risk_rule", ("burst",), lambda v: v is None),
    ("risk_rules", (), lambda v: v.rules == []),
]


def test_the_sync_client_does_every_lookup(live_server) -> None:
    with KairosClient(live_server.url, api_key=API_KEY) as client:
        for name, args, shows in LOOKUPS:
            assert shows(getattr(client, name)(*args)), name


@pytest.mark.anyio
async def test_the_async_client_does_every_lookup(live_server) -> None:
    async with AsyncKairosClient(live_server.url, api_key=API_KEY) as client:
        for name, args, shows in LOOKUPS:
            assert shows(await getattr(client, name)(*args)), name


def test_errors_raise_kairos_error_with_status_code_and_message(live_server) -> None:
    with KairosClient(live_server.url, api_key=API_KEY) as client, pytest.raises(KairosError) as unknown:
        client.customer("nobody")
    with KairosClient(live_server.url, api_key=API_KEY) as client, pytest.raises(KairosError) as invalid:
        client.put_risk_rule("typo", "amout > 1", "block")
    with KairosClient(live_server.url) as client, pytest.raises(KairosError) as keyless:
        client.segments()
    with KairosClient(f"http://127.0.0.1:{free_port()}", timeout=1.0) as client, pytest.raises(KairosError) as down:
        client.segments()
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")
    assert invalid.value.status == 422 and "did you mean 'amount'" in invalid.value.message
    assert (keyless.value.status, keyless.value.code) == (401, "unauthorized")
    assert (down.value.status, down.value.code) == (0, "unreachable")


@pytest.mark.anyio
async def test_the_async_client_raises_the_same_errors(live_server) -> None:
    async with AsyncKairosClient(live_server.url, api_key=API_KEY) as client:
        with pytest.raises(KairosError) as unknown:
            await client.forecast("category", "tractors")
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")


def read_alert_events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    """The first ``count`` ``alert`` events of a server-sent event stream, with their ids."""
    events, fields = [], {}
    for line in response.iter_lines():
        if line.startswith(("id: ", "event: ", "data: ")):
            name, _, value = line.partition(": ")
            fields[name] = value
        elif not line and fields.get("event") == "alert":
            events.append({"id": fields["id"], **json.loads(fields["data"])})
            fields = {}
            if len(events) == count:
                return events
    raise AssertionError(f"stream ended after {len(events)} of {count} alerts")


def test_a_new_alert_reaches_a_live_stream_subscriber(live_server, shop) -> None:
    headers = {"X-API-Key": API_KEY}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=10.0) as http:
        with http.stream("GET", "/api/v1/alerts/stream", params={"kind": ["risk", "surge"]}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            planted = threading.Timer(0.3, lambda: [
                write_alert(shop.redis, shop.keys, "trend", "ignored+by-filter", 2.0, ["filtered out"]),
                write_alert(shop.redis, shop.keys, "risk", "pay-live", 0.97, ["burst of new cards"]),
            ])
            planted.start()
            (event,) = read_alert_events(response, 1)
            planted.join()
        assert (event["kind"], event["subject"], event["reasons"]) == ("risk", "pay-live", ["burst of new cards"])
        resumed_id = event["id"]
        later = write_alert(shop.redis, shop.keys, "surge", "category:books", 2.2, ["sold 30 against 10"])
        with http.stream("GET", "/api/v1/alerts/stream", headers={"Last-Event-ID": resumed_id}) as response:
            (missed,) = read_alert_events(response, 1)
    assert missed["id"] == later and missed["subject"] == "category:books"
