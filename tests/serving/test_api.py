"""Contract tests of the lookup API over a real redis-server holding a shop in the contract's shapes.

Every endpoint: the happy path, unknown ids (404), bad input (422), a missing
or wrong API key (401) and Redis unreachable (503), all as JSON errors.
"""

from __future__ import annotations

import re
import time

import pytest
from pydantic import SecretStr

from streams.pipeline.pseudonyms import Pseudonyms
from streams.serving.api import create_app
from streams.serving.sample import NOW, write_alert
from streams.settings import KairosSettings
from streams.tools.devstack import free_port
from tests.serving.conftest import API_KEY

pytestmark = pytest.mark.anyio

API = "/api/v1"


def error_code(response) -> str:
    """The ``error.code`` of an error answer (and it must have the documented shape)."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


async def test_a_customer_lookup_returns_live_features_segment_and_profile(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        response = await api.get(f"{API}/customers/c1")
    assert response.status_code == 200
    view = response.json()
    assert view["features"]["orders"] == 3 and view["features"]["spend"] == 120.5
    assert view["segment_id"] == 0
    assert view["segment"]["name"] == "loyal big spenders" and view["segment"]["size"] == 120


async def test_a_customer_not_yet_segmented_has_features_and_no_segment(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        view = (await api.get(f"{API}/customers/c-new")).json()
    assert view["features"]["orders"] == 1 and view["segment_id"] is None and view["segment"] is None


async def test_unknown_customer_is_404_and_an_overlong_id_is_422(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        unknown = await api.get(f"{API}/customers/nobody")
        overlong = await api.get(f"{API}/customers/{'x' * 129}")
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"
    assert "nobody" in unknown.json()["error"]["message"]
    assert overlong.status_code == 422 and error_code(overlong) == "invalid_request"


async def test_segments_are_listed_largest_first_with_profiles(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        listing = (await api.get(f"{API}/segments")).json()
        one = await api.get(f"{API}/segments/2")
        unknown = await api.get(f"{API}/segments/99")
        not_a_number = await api.get(f"{API}/segments/loyal")
    assert [s["name"] for s in listing["segments"]] == ["occasional browsers", "loyal big spenders", "new customers"]
    assert listing["customers"] == 540
    assert listing["segments"][0]["centroid"] == {"orders": 5.0, "spend": 160.0}
    assert one.json()["summary"] == "1.0 orders, 25 EUR spent"
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"
    assert not_a_number.status_code == 422 and error_code(not_a_number) == "invalid_request"


async def test_item_recommendations_come_from_rules_then_global_bestsellers(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        tea = (await api.get(f"{API}/recommendations/items/tea", params={"limit": 4})).json()
        bestseller_without_rules = (await api.get(f"{API}/recommendations/items/apples")).json()
        unknown = await api.get(f"{API}/recommendations/items/caviar")
        bad_limit = await api.get(f"{API}/recommendations/items/tea", params={"limit": 0})
    assert [(i["sku"], i["source"]) for i in tea["items"]] == [
        ("milk", "rule"), ("scones", "rule"), ("bread", "global"), ("apples", "global")]
    assert tea["items"][0]["score"] == 0.5
    assert [i["sku"] for i in bestseller_without_rules["items"]][:2] == ["bread", "tea"]
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"
    assert bad_limit.status_code == 422 and "limit" in bad_limit.json()["error"]["message"]


async def test_a_cart_merges_its_items_rules_then_falls_back_to_segment_and_global_bestsellers(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        known = (await api.get(f"{API}/recommendations/cart",
                               params={"items": "tea,scones", "customer_id": "c1", "limit": 4})).json()
        anonymous = (await api.get(f"{API}/recommendations/cart", params={"items": "tea,scones", "limit": 4})).json()
    # noisy-or: milk = 1 - (1 - 0.5)(1 - 0.2) = 0.6; scones is in the cart, so not suggested.
    assert [(i["sku"], round(i["score"], 6), i["source"]) for i in known["items"]] == [
        ("jam", 0.6, "rule"), ("milk", 0.6, "rule"), ("honey", 12.0, "segment"), ("bread", 99.0, "global")]
    assert known["segment_id"] == 0 and known["cart"] == ["tea", "scones"]
    assert [i["source"] for i in anonymous["items"]] == ["rule", "rule", "global", "global"]


async def test_an_empty_cart_is_422(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        empty = await api.get(f"{API}/recommendations/cart", params={"items": " , "})
        missing = await api.get(f"{API}/recommendations/cart")
    assert empty.status_code == 422 and "cart is empty" in empty.json()["error"]["message"]
    assert missing.status_code == 422 and error_code(missing) == "invalid_request"


async def test_customer_recommendations_are_segment_then_global_bestsellers(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        known = (await api.get(f"{API}/recommendations/customers/c1", params={"limit": 3})).json()
        unknown = await api.get(f"{API}/recommendations/customers/nobody")
    assert [(i["sku"], i["source"]) for i in known["items"]] == [("jam", "segment"), ("honey", "segment"), ("bread", "global")]
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"


async def test_top_rules_are_ranked_by_lift_and_filtered(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        top = (await api.get(f"{API}/rules", params={"limit": 3})).json()["rules"]
        strong = (await api.get(f"{API}/rules", params={"min_lift": 2.0})).json()["rules"]
        negative = await api.get(f"{API}/rules", params={"min_lift": -1})
    assert [(r["antecedent"], r["consequent"], r["lift"]) for r in top] == [
        (["tea"], "milk", 3.0), (["tea"], "scones", 3.0), (["scones"], "jam", 2.5)]
    assert len(strong) == 4 and all(r["lift"] >= 2.0 for r in strong)
    assert negative.status_code == 422


async def test_a_payment_risk_verdict_says_why(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        verdict = (await api.get(f"{API}/risk/payments/pay-1")).json()
        unknown = await api.get(f"{API}/risk/payments/pay-unknown")
    assert verdict["decision"] == "review" and verdict["score"] == 0.93 and verdict["threshold"] == 0.8
    assert verdict["ts"] == NOW and verdict["amount"] == 1500.0
    assert verdict["reasons"] == ["card not seen before", "rule big-abroad: large payment"]
    assert verdict["rule_hits"] == ["big-abroad"]
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"


async def test_an_analyst_adds_pauses_resumes_and_deletes_a_risk_rule(shop, asgi_client) -> None:
    rule = {"expression": "amount > 1000 and ip_country != billing_country", "action": "review",
            "description": "large payment from abroad"}
    async with asgi_client(shop.settings) as api:
        created = await api.put(f"{API}/risk/rules/big-abroad", json=rule)
        replaced = await api.put(f"{API}/risk/rules/big-abroad", json=rule | {"action": 0.9})
        paused = (await api.post(f"{API}/risk/rules/big-abroad/pause")).json()
        stored = shop.redis.hget(shop.keys.risk_rules(), "big-abroad")
        resumed = (await api.post(f"{API}/risk/rules/big-abroad/resume")).json()
        listing = (await api.get(f"{API}/risk/rules")).json()["rules"]
        deleted = await api.delete(f"{API}/risk/rules/big-abroad")
        gone = await api.get(f"{API}/risk/rules/big-abroad")
        deleted_again = await api.delete(f"{API}/risk/rules/big-abroad")
    assert created.status_code == 201 and replaced.status_code == 200
    assert replaced.json()["action"] == 0.9
    assert paused["enabled"] is False and b'"enabled":false' in stored
    assert resumed["enabled"] is True
    assert [(r["id"], r["action"], r["enabled"]) for r in listing] == [("big-abroad", 0.9, True)]
    assert deleted.status_code == 204
    assert gone.status_code == 404 and deleted_again.status_code == 404


async def test_an_invalid_risk_rule_is_refused_with_the_reason(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        typo = await api.put(f"{API}/risk/rules/typo", json={"expression": "amout > 10", "action": "block"})
        unsafe = await api.put(f"{API}/risk/rules/evil", json={"expression": "__import__('os')", "action": "block"})
        bad_action = await api.put(f"{API}/risk/rules/floor", json={"expression": "amount > 10", "action": 1.5})
        bad_id = await api.put(f"{API}/risk/rules/has space", json={"expression": "amount > 10", "action": "block"})
        pause_unknown = await api.post(f"{API}/risk/rules/nope/pause")
    assert typo.status_code == 422 and error_code(typo) == "invalid_rule"
    assert "did you mean 'amount'" in typo.json()["error"]["message"]
    assert unsafe.status_code == 422 and "not allowed" in unsafe.json()["error"]["message"]
    assert bad_action.status_code == 422 and bad_id.status_code == 422
    assert not shop.redis.hexists(shop.keys.risk_rules(), "typo")
    assert pause_unknown.status_code == 404


@pytest.mark.parametrize(("expression", "reason"), [
    ("amount > " + "9" * 400, "a number has at most 30 characters"),
    ("amount > 1e400", "a number must be between -1e+15 and 1e+15"),
    ("amount > " + "-" * 980 + "1", "at most 3 unary operators (not, -) in a row"),
    ("amount > " + "-" * 1000 + "1", "at most 1000 characters"),
])
async def test_a_rule_with_a_huge_number_or_a_long_unary_run_is_422(shop, asgi_client, expression, reason) -> None:
    async with asgi_client(shop.settings) as api:
        response = await api.put(f"{API}/risk/rules/hostile", json={"expression": expression, "action": "block"})
    assert response.status_code == 422 and error_code(response) == "invalid_rule"
    message = response.json()["error"]["message"]
    assert reason in message and "\n" not in message
    assert not shop.redis.hexists(shop.keys.risk_rules(), "hostile")


@pytest.mark.parametrize(("action", "code"), [
    ("1e400", "invalid_rule"),  # JSON reads it as infinity, a float the rule refuses
    ("9" * 400, "invalid_request"),  # an integer no float holds
    ("-" + "9" * 400, "invalid_request"),
])
async def test_a_huge_number_as_the_action_is_422(shop, asgi_client, action, code) -> None:
    body = '{"expression": "amount > 10", "action": ' + action + "}"
    async with asgi_client(shop.settings) as api:
        response = await api.put(f"{API}/risk/rules/hostile", content=body,
                                 headers={"content-type": "application/json"})
    assert response.status_code == 422 and error_code(response) == code
    assert not shop.redis.hexists(shop.keys.risk_rules(), "hostile")


async def test_a_rule_the_workers_rejected_shows_why(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        await api.put(f"{API}/risk/rules/burst", json={"expression": "velocity_1m >= 5", "action": "review"})
        shop.redis.hset(shop.keys.risk_rules_rejected(), "burst", "the rule book is full (500 rules)")
        rule = (await api.get(f"{API}/risk/rules/burst")).json()
    assert rule["rejected"] == "the rule book is full (500 rules)"


async def test_recent_alerts_are_newest_first_and_filtered_by_kind_and_time(shop, asgi_client) -> None:
    time.sleep(0.002)
    since = time.time()
    write_alert(shop.redis, shop.keys, "slump", "category:garden", 0.2, ["sold 1 against a forecast of 9.0"])
    async with asgi_client(shop.settings) as api:
        everything = (await api.get(f"{API}/alerts")).json()["alerts"]
        risk_and_surge = (await api.get(f"{API}/alerts", params=[("kind", "risk"), ("kind", "surge")])).json()["alerts"]
        recent = (await api.get(f"{API}/alerts", params={"since": since})).json()["alerts"]
        newest = (await api.get(f"{API}/alerts", params={"limit": 1})).json()["alerts"]
        bad_kind = await api.get(f"{API}/alerts", params={"kind": "fire"})
    assert [a["kind"] for a in everything] == ["slump", "trend", "surge", "risk"]
    assert [a["kind"] for a in risk_and_surge] == ["surge", "risk"]
    assert [a["subject"] for a in recent] == ["category:garden"]
    assert newest[0]["kind"] == "slump"
    risk = everything[-1]
    assert risk["reasons"] == ["card not seen before"] and risk["details"] == {"customer_id": "c1", "decision": "review"}
    assert risk["alert_id"] == "risk:pay-1" and risk["ts"] == NOW
    assert bad_kind.status_code == 422 and error_code(bad_kind) == "invalid_request"


async def test_drift_alerts_of_both_models_are_listed_by_their_kind(shop, asgi_client) -> None:
    write_alert(shop.redis, shop.keys, "drift", "risk:3", 0.875, ["RiskScorer fraud_rank_error 0.25 -> 0.875"],
                model="RiskScorer", metric="fraud_rank_error")
    write_alert(shop.redis, shop.keys, "drift", "forecast:total:all", 2.47,
                ["SalesForecaster units of total:all scaled_abs_error 0.81 -> 2.47"], model="SalesForecaster",
                metric="scaled_abs_error", series="total:all", measure="units")
    async with asgi_client(shop.settings) as api:
        drifts = (await api.get(f"{API}/alerts", params={"kind": "drift"})).json()["alerts"]
    assert [(a["subject"], a["details"]["model"]) for a in drifts] == [
        ("forecast:total:all", "SalesForecaster"), ("risk:3", "RiskScorer")]


async def test_the_alert_stream_refuses_a_malformed_resume_id(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        response = await api.get(f"{API}/alerts/stream", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 422 and error_code(response) == "invalid_request"


async def test_forecasts_show_actuals_next_windows_and_error_per_series(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        categories = (await api.get(f"{API}/forecasts")).json()
        total = (await api.get(f"{API}/forecasts/total/all")).json()
        unknown = await api.get(f"{API}/forecasts/category/tractors")
        bad_scope = await api.get(f"{API}/forecasts", params={"scope": "planet"})
        bad_scope_path = await api.get(f"{API}/forecasts/planet/earth")
    assert [f["key"] for f in categories["forecasts"]] == ["books", "garden", "toys"]
    toys = categories["forecasts"][2]
    assert toys["forecast_units"] == 6.0 and (toys["lower_units"], toys["upper_units"]) == (4.0, 8.0)
    assert len(toys["actuals"]) == 6 and len(toys["horizon"]) == 3
    assert toys["horizon"][0]["window_start"] > toys["actuals"][-1]["window_start"]
    assert total["scope"] == "total" and total["mae_ratio"] == 0.67
    assert unknown.status_code == 404
    assert bad_scope.status_code == 422 and bad_scope_path.status_code == 422


async def test_pipeline_metrics_show_counts_lag_and_model_metrics(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        metrics = (await api.get(f"{API}/metrics")).json()
    assert metrics["ingest"]["orders"] == {"processed": 3000, "invalid": 1, "duplicate": 2}
    assert [(w["worker"], w["ingest_lag"]) for w in metrics["workers"]] == [("host-1234", 42.0)]
    assert metrics["lag"] == 42.0
    assert metrics["models"]["risk"]["auc"] == 0.91 and metrics["models"]["baskets"]["rules"] == 30


async def test_prometheus_metrics_count_requests_per_route_and_mirror_the_pipeline(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        await api.get(f"{API}/customers/c1")
        await api.get(f"{API}/customers/c2")
        await api.get(f"{API}/customers/nobody")
        text = (await api.get("/metrics")).text
    route = 'route="/api/v1/customers/{customer_id}"'
    assert f'kairos_api_requests_total{{method="GET",{route},status="200"}} 2.0' in text
    assert f'kairos_api_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert re.search(rf'kairos_api_request_seconds_count{{method="GET",{re.escape(route)}}} 3.0', text)
    assert 'kairos_events_total{outcome="processed",topic="orders"} 3000.0' in text
    assert 'kairos_ingest_lag{worker="host-1234"} 42.0' in text
    assert 'kairos_worker_ready{worker="host-1234"} 0.0' in text
    assert 'kairos_group_lag{group="kairos-ingest",worker="host-1234"} 42.0' in text
    assert 'kairos_model_metric{component="risk",metric="auc"} 0.91' in text
    assert "kairos_redis_up 1.0" in text


async def test_health_is_ok_while_redis_answers(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        response = await api.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "redis": "ok"}


async def test_redis_unreachable_is_503_and_prometheus_says_so(asgi_client) -> None:
    settings = KairosSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0", prefix="down")
    async with asgi_client(settings) as api:
        lookup = await api.get(f"{API}/customers/c1")
        health = await api.get("/healthz")
        prometheus = await api.get("/metrics")
    assert lookup.status_code == 503 and error_code(lookup) == "redis_unavailable"
    assert health.status_code == 503
    assert prometheus.status_code == 200 and "kairos_redis_up 0.0" in prometheus.text


async def test_sessions_are_served_with_their_propensity_and_the_model_with_its_rules(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        session = (await api.get(f"{API}/sessions/s-1")).json()
        latest = (await api.get(f"{API}/customers/c1/session")).json()
        model = (await api.get(f"{API}/propensity")).json()
        unknown = await api.get(f"{API}/sessions/nope")
        no_session = await api.get(f"{API}/customers/c2/session")
    assert session == latest and session["session_id"] == "s-1" and session["customer_id"] == "c1"
    assert (session["status"], session["propensity"], session["clicks"], session["cart_items"],
            session["cart_value"]) == ("open", 0.62, 5, 2, 90.0)
    assert session["last_click"] - session["started"] == 160.0
    assert (model["learned"], model["converted"], model["roc_auc"]) == (5210, 1240, 0.912)
    assert model["rules"][0] == {"rule": "last_action = add_to_cart and cart_items ≥ 3", "converts": 0.97,
                                 "sessions": 640}
    assert unknown.status_code == 404 and no_session.status_code == 404


def api_operations() -> list[tuple[str, str]]:
    """(method, path with sample ids) of every /api operation in the OpenAPI document."""
    samples = {"customer_id": "c1", "segment_id": "0", "sku": "tea", "payment_id": "pay-1", "rule_id": "r1",
               "scope": "total", "key": "all", "kind": "all", "session_id": "s-1"}
    paths = create_app(KairosSettings()).openapi()["paths"]
    return [(method.upper(), path.format(**samples)) for path, operations in paths.items() if path.startswith("/api/")
            for method in operations]


@pytest.mark.parametrize(("method", "path"), api_operations())
async def test_every_api_operation_needs_the_key_when_one_is_configured(shop, asgi_client, method, path) -> None:
    settings = shop.settings.model_copy(update={"api_key": SecretStr(API_KEY)})
    async with asgi_client(settings) as api:
        missing = await api.request(method, path)
        wrong = await api.request(method, path, headers={"X-API-Key": "guess"})
    assert missing.status_code == 401 and error_code(missing) == "unauthorized"
    assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]["message"]


async def test_with_the_key_the_api_answers_and_open_pages_stay_open(shop, asgi_client) -> None:
    settings = shop.settings.model_copy(update={"api_key": SecretStr(API_KEY)})
    async with asgi_client(settings) as api:
        with_key = await api.get(f"{API}/customers/c1", headers={"X-API-Key": API_KEY})
        open_pages = [await api.get(path) for path in ("/", "/healthz", "/metrics", "/dashboard/dashboard.js")]
    assert with_key.status_code == 200
    assert [page.status_code for page in open_pages] == [200, 200, 200, 200]


async def test_the_openapi_document_describes_every_route_and_its_errors(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        document = (await api.get("/openapi.json")).json()
    paths = document["paths"]
    assert f"{API}/customers/{{customer_id}}" in paths and f"{API}/alerts/stream" in paths
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("description"), f"{method.upper()} {path} has no description"
            if path.startswith(API):
                assert "ErrorResponse" in str(operation["responses"].get("422", "")), f"{method.upper()} {path}"
    customer = paths[f"{API}/customers/{{customer_id}}"]["get"]["responses"]
    assert customer["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/CustomerView")
    assert "404" in customer


async def test_the_dashboard_loads_nothing_from_other_hosts(shop, asgi_client) -> None:
    async with asgi_client(shop.settings) as api:
        page = (await api.get("/")).text
        assets = [(await api.get(f"/dashboard/{name}")).text for name in ("dashboard.js", "dashboard.css")]
    assert "<svg" in page and 'src="dashboard/dashboard.js"' in page
    for text in (page, *assets):
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|fetch\(\s*["']https?:""", text)


async def test_an_erasure_is_requested_under_the_stored_id(shop, asgi_client) -> None:
    """``DELETE /customers/{id}`` asks the workers (they apply it: tests/integration/test_erasure.py) for the id
    as stored: the keyed hash when the pipeline pseudonymizes."""
    settings = shop.settings.model_copy(update={"pseudonymize_key": SecretStr("k")})
    async with asgi_client(settings) as api:
        answer = await api.delete(f"{API}/customers/c-9")
    assert answer.status_code == 202 and answer.json() == {"customer_id": "c-9", "status": "requested"}
    assert shop.redis.hkeys(shop.keys.erasures()) == [Pseudonyms("k")("c-9").encode()]


async def test_anomalies_show_each_scopes_latest_minute_against_its_usual_values(shop, asgi_client) -> None:
    write_alert(shop.redis, shop.keys, "anomaly", "all:all", 7.2,
                ["conversion_rate 0 over the last 4 minutes against a usual 0.21 (-7.2 sd)"], scope="all:all")
    async with asgi_client(shop.settings) as api:
        scopes = (await api.get(f"{API}/anomalies")).json()["scopes"]
        card = (await api.get(f"{API}/anomalies/method/card")).json()
        unknown = await api.get(f"{API}/anomalies/country/XX")
        bad_kind = await api.get(f"{API}/anomalies/planet/earth")
        alerts = (await api.get(f"{API}/alerts", params={"kind": "anomaly"})).json()["alerts"]
    assert [(s["scope"], s["anomalous"]) for s in scopes] == [("all:all", True), ("method:card", False)]
    shop_wide = scopes[0]
    assert shop_wide["counts"]["orders"] == 0 and shop_wide["usual"]["conversion_rate"] == 0.21
    assert shop_wide["minute"].endswith(":00.000Z")
    assert card["kind"] == "method" and card["key"] == "card" and card["usual"]["payments"] == 3.1
    assert unknown.status_code == 404 and bad_kind.status_code == 422
    assert [a["subject"] for a in alerts] == ["all:all"]
