"""Stock-out risk as served: the sales stage's writer into a real redis-server, read back by the API."""

from __future__ import annotations

import pytest

from models.forecasting import RestockAlert, SalesUpdate
from streams.pipeline.stages.sales import publish_sales
from streams.pipeline.views import RedisViews

pytestmark = pytest.mark.anyio

API = "/api/v1"
AT = 1_795_327_200.0  # 2026-11-22T06:00:00Z


def _publish(shop) -> None:
    views = RedisViews(shop.settings)
    stock = {
        "A": {"sku": "A", "on_hand": 12, "as_of": AT, "counted_at": AT - 1800.0, "horizon_hours": 48.0,
              "basis": "seasonal", "hours_to_stockout": 6.5, "hours_to_stockout_latest": 9.25, "alerted_at": AT},
        "B": {"sku": "B", "on_hand": 400, "as_of": AT, "counted_at": AT - 600.0, "horizon_hours": 48.0,
              "basis": "seasonal", "hours_to_stockout": 120.0, "alerted_at": None},
        "C": {"sku": "C", "on_hand": 7, "as_of": AT, "counted_at": AT, "horizon_hours": 48.0,
              "basis": "no-forecast", "alerted_at": None},
    }
    update = SalesUpdate(stock=stock, restocks=[RestockAlert("A", AT, 12, 6.5, 9.25, 48.0, "seasonal")])
    pipe = shop.redis.pipeline(transaction=False)
    publish_sales(pipe, views, update)
    pipe.execute()


async def test_stock_views_are_served_soonest_stock_out_first_with_the_restock_alert(shop, asgi_client) -> None:
    _publish(shop)
    async with asgi_client(shop.settings) as api:
        listing = (await api.get(f"{API}/stock")).json()
        one = (await api.get(f"{API}/stock/C")).json()
        unknown = await api.get(f"{API}/stock/nope")
        alerts = (await api.get(f"{API}/alerts", params={"kind": "restock"})).json()
    assert [s["sku"] for s in listing["skus"]] == ["A", "B"]  # C has no forecast: not ranked
    first = listing["skus"][0]
    assert (first["on_hand"], first["hours_to_stockout"], first["hours_to_stockout_latest"]) == (12, 6.5, 9.25)
    assert first["stockout_at"] == AT + 6.5 * 3600 and first["alerted_at"] == AT and first["as_of"] == AT
    assert one["basis"] == "no-forecast" and one["hours_to_stockout"] is None and one["on_hand"] == 7
    assert unknown.status_code == 404
    [alert] = alerts["alerts"]
    assert alert["kind"] == "restock" and alert["subject"] == "sku:A" and "12 units on hand" in alert["reasons"][0]
