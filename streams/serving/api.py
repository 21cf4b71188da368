"""The lookup API: FastAPI over the Redis views (``kairos serve``).

Routes (JSON, versioned under ``/api/v1``; the OpenAPI document is at
``/openapi.json`` and browsable at ``/docs``):

================================================  ==============================================
``GET /api/v1/customers/{customer_id}``           features, segment and segment profile
``DELETE /api/v1/customers/{customer_id}``        erase a customer (202: the workers apply it)
``GET /api/v1/segments[/{segment_id}]``           segment profiles and sizes
``GET /api/v1/recommendations/items/{sku}``       what goes with a SKU
``GET /api/v1/recommendations/cart?items=A,B``    what goes with a cart
``GET /api/v1/recommendations/customers/{id}``    what to show a customer
``GET /api/v1/rules``                             top association rules
``GET /api/v1/risk/payments/{payment_id}``        a payment's risk verdict and reasons
``GET|PUT|DELETE /api/v1/risk/rules[/{id}]``      analyst risk rules (``POST .../pause|resume``)
``GET /api/v1/alerts``                            recent alerts, filtered
``GET /api/v1/alerts/stream``                     live alerts (server-sent events)
``GET /api/v1/forecasts[/{scope}/{key}]``         sales forecasts vs actuals
``GET /api/v1/stock[/{sku}]``                     stock on hand and hours until stock-out
``GET /api/v1/anomalies[/{kind}/{key}]``          traffic per minute vs usual, anomaly scores
``GET /api/v1/sessions/{session_id}``             a live session's probability of ending in an order
``GET /api/v1/customers/{customer_id}/session``   a customer's latest session and its probability
``GET /api/v1/propensity``                        the conversion model: AUC, sessions learned, rules
``GET /api/v1/metrics``                           pipeline health and model metrics
``GET /healthz``, ``GET /metrics``, ``GET /``     Redis ping, Prometheus, the dashboard
================================================  ==============================================

Errors are ``{"error": {"code": ..., "message": ...}}`` with the status that
fits: 401 (API key), 404 (unknown id), 422 (bad input), 503 (Redis
unreachable). When ``KAIROS_API_KEY`` is set, every ``/api/*`` request needs
the header ``X-API-Key``; the dashboard page and its assets, ``/healthz`` and
``/metrics`` stay open (the dashboard asks for the key and sends it on its
own API calls).

Everything except the analyst risk rules and the erasure is read-only.
"""

from __future__ import annotations

import gc
import hmac
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated, TypeVar

import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Security, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.risk.rules import RuleBook
from streams.pipeline.keys import RedisKeys
from streams.pipeline.pseudonyms import Pseudonyms
from streams.pipeline.views import redis_client as views_client
from streams.serving.metrics import ApiMetrics, RequestTimer
from streams.serving.queries import ServingQueries
from streams.serving.schemas import (
    AlertKind,
    AlertList,
    AnomalyScope,
    AnomalyScopeKind,
    AnomalyScopeList,
    CustomerView,
    PropensityModel,
    SessionPropensity,
    ErasureRequest,
    ErrorResponse,
    Forecast,
    ForecastList,
    ForecastScope,
    Health,
    PaymentRisk,
    PipelineMetrics,
    Recommendations,
    RiskRuleBody,
    RiskRuleList,
    RiskRuleView,
    RuleList,
    SegmentList,
    SegmentProfile,
    StockRisk,
    StockRiskList,
)
from streams.settings import KairosSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

DASHBOARD = FilePath(__file__).with_name("dashboard")
API_PREFIX = "/api/v1"
#: A lookup that takes longer than this fails with 503 (Redis hung or unreachable).
LOOKUP_TIMEOUT_SECONDS = 2.0
#: How long one XREAD of the live alert stream waits before sending a keep-alive.
STREAM_BLOCK_MS = 5000
#: Most SKUs accepted in one cart.
MAX_CART_ITEMS = 100

Identifier = Annotated[str, Path(min_length=1, max_length=128, description="An id as sent on the wire (1-128 characters).")]
Limit = Annotated[int, Query(ge=1, le=100, description="Most results to return.")]
RuleId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="Analyst rule id.")]
Kinds = Annotated[list[AlertKind] | None, Query(description="Only these kinds (repeat for several).")]
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="The value of KAIROS_API_KEY.")
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class ApiError(Exception):
    """An error answer: HTTP status, machine code and readable message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON body every error has."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def not_found(what: str) -> ApiError:
    """404 for an id Kairos does not know."""
    return ApiError(404, "not_found", what)


def found(value: T | None, what: str) -> T:
    """``value``, or a 404 saying ``what`` was not found."""
    if value is None:
        raise not_found(what)
    return value


HTTP_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 422: "invalid_request"}
ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in ((401, "Missing or wrong X-API-Key"), (422, "Invalid input"), (503, "Redis unreachable"))
}
NOT_FOUND: dict[int | str, dict] = {404: {"model": ErrorResponse, "description": "Unknown id"}}


def install_error_handlers(app: FastAPI) -> None:
    """Render every failure as ``{"error": {"code", "message"}}``."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()]
        return error_response(422, "invalid_request", "; ".join(problems))

    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable: %s", exc)
        return error_response(503, "redis_unavailable", "Redis is unreachable; try again shortly")

    app.add_exception_handler(RedisConnectionError, redis_down)
    app.add_exception_handler(RedisTimeoutError, redis_down)


def api_key_guard(settings: KairosSettings) -> list[params.Depends]:
    """The dependency requiring ``X-API-Key`` when ``settings.api_key`` is set (none otherwise)."""
    if settings.api_key is None:
        return []
    expected = settings.api_key.get_secret_value().encode()

    async def require_key(key: Annotated[str | None, Security(API_KEY_HEADER)]) -> None:
        if key is None:
            raise ApiError(401, "unauthorized", "this API needs the header X-API-Key")
        if not hmac.compare_digest(key.encode(), expected):
            raise ApiError(401, "unauthorized", "the X-API-Key is not valid")

    return [Depends(require_key)]


def v1(path: str) -> str:
    """A route path under the API's version prefix (full paths keep metrics labels exact)."""
    return API_PREFIX + path


def cart_items(items: str) -> list[str]:
    """The SKUs of ``items=A,B,C`` (blanks dropped); 422 for an empty or oversized cart."""
    skus = [sku.strip() for sku in items.split(",") if sku.strip()]
    if not skus:
        raise ApiError(422, "invalid_request", "items: the cart is empty; pass SKUs as items=A,B")
    if len(skus) > MAX_CART_ITEMS:
        raise ApiError(422, "invalid_request", f"items: at most {MAX_CART_ITEMS} SKUs per cart")
    return skus


def validated_rule(rule_id: str, rule: RiskRuleBody) -> RiskRuleBody:
    """``rule`` if :class:`models.risk.rules.RuleBook` accepts it; 422 with its reason otherwise."""
    rejected = RuleBook(max_rules=1).load([{"id": rule_id, **rule.model_dump()}])
    if rejected:
        raise ApiError(422, "invalid_rule", f"rule {rule_id!r} rejected: {rejected[rule_id]}")
    return rule


def add_lookup_routes(router: APIRouter, queries: ServingQueries) -> None:
    """Customers, segments, recommendations, rules, forecasts and pipeline metrics."""

    @router.get(v1("/customers/{customer_id}"), response_model=CustomerView, responses=NOT_FOUND, tags=["customers"])
    async def customer(customer_id: Identifier) -> CustomerView:
        """A customer's live features, segment id and segment profile."""
        return found(await queries.customer(customer_id), f"no customer {customer_id!r}")

    @router.delete(v1("/customers/{customer_id}"), status_code=202, response_model=ErasureRequest,
                   tags=["customers"])
    async def erase_customer(customer_id: Identifier) -> ErasureRequest:
        """Erase a customer: state, views, payment views and alerts (the workers apply it within seconds;
        ``kairos forget`` waits for it). What was produced into Kafka ages out with the topics' retention."""
        await queries.request_erasure(customer_id)
        return ErasureRequest(customer_id=customer_id, status="requested")

    @router.get(v1("/segments"), response_model=SegmentList, tags=["segments"])
    async def segments() -> SegmentList:
        """Every segment with its size and profile, largest first."""
        return await queries.segments()

    @router.get(v1("/segments/{segment_id}"), response_model=SegmentProfile, responses=NOT_FOUND, tags=["segments"])
    async def segment(segment_id: Annotated[int, Path(ge=0)]) -> SegmentProfile:
        """One segment's profile: name, size, summary, typical member, stand-out traits."""
        return found(await queries.segment(segment_id), f"no segment {segment_id}")

    @router.get(v1("/recommendations/items/{sku}"), response_model=Recommendations, responses=NOT_FOUND,
                tags=["recommendations"])
    async def item_recommendations(sku: Identifier, limit: Limit = 10) -> Recommendations:
        """What is bought with ``sku`` (rules), topped up with global best-sellers.

        404 when Kairos knows nothing of the SKU: no rule starts from it and it
        is not among the global best-sellers.
        """
        return found(await queries.item_recommendations(sku, limit), f"no rules or sales for SKU {sku!r}")

    @router.get(v1("/recommendations/cart"), response_model=Recommendations, tags=["recommendations"])
    async def cart_recommendations(
        items: Annotated[str, Query(description="Comma-separated SKUs in the cart, e.g. A,B.")],
        customer_id: Annotated[str | None, Query(max_length=128, description="Adds the customer's segment best-sellers.")] = None,
        limit: Limit = 10,
    ) -> Recommendations:
        """The cart's merged rules (noisy-or of confidences), then segment, then global best-sellers.

        Each suggestion says its ``source``. An unknown customer gets no
        segment fallback (not an error); an empty cart is 422.
        """
        return await queries.cart_recommendations(cart_items(items), customer_id, limit)

    @router.get(v1("/recommendations/customers/{customer_id}"), response_model=Recommendations, responses=NOT_FOUND,
                tags=["recommendations"])
    async def customer_recommendations(customer_id: Identifier, limit: Limit = 10) -> Recommendations:
        """Best-sellers of the customer's segment, then global best-sellers."""
        return found(await queries.customer_recommendations(customer_id, limit), f"no customer {customer_id!r}")

    @router.get(v1("/rules"), response_model=RuleList, tags=["recommendations"])
    async def rules(
        limit: Limit = 20,
        min_lift: Annotated[float, Query(ge=0.0, description="Only rules with at least this lift.")] = 0.0,
    ) -> RuleList:
        """Top association rules by lift, with support, confidence and count."""
        return await queries.rules(limit, min_lift)

    @router.get(v1("/forecasts"), response_model=ForecastList, tags=["forecasts"])
    async def forecasts(scope: ForecastScope = "category") -> ForecastList:
        """Every forecast series of a scope: next windows with intervals, recent actuals, error."""
        return await queries.forecasts(scope)

    @router.get(v1("/forecasts/{scope}/{key}"), response_model=Forecast, responses=NOT_FOUND, tags=["forecasts"])
    async def forecast(scope: ForecastScope, key: Identifier) -> Forecast:
        """One series (``total/all``, ``category/toys``, ``sku/SKU-1``, ...)."""
        return found(await queries.forecast(scope, key), f"no forecast for {scope} {key!r}")

    @router.get(v1("/stock"), response_model=StockRiskList, tags=["stock"])
    async def stock_risks(limit: Limit = 20) -> StockRiskList:
        """SKUs with inventory counts by expected hours until stock-out, soonest first."""
        return await queries.stock_risks(limit)

    @router.get(v1("/stock/{sku}"), response_model=StockRisk, responses=NOT_FOUND, tags=["stock"])
    async def stock(sku: Identifier) -> StockRisk:
        """One SKU's stock on hand, hours until stock-out (expected and at the lower bound of demand)."""
        return found(await queries.stock(sku), f"no inventory counts for SKU {sku!r}")

    @router.get(v1("/anomalies"), response_model=AnomalyScopeList, tags=["anomalies"])
    async def anomalies(limit: Limit = 20) -> AnomalyScopeList:
        """The watched traffic scopes, highest latest anomaly score first: each one's last closed minute (counts)
        against the usual value of each signal."""
        return await queries.anomalies(limit)

    @router.get(v1("/anomalies/{kind}/{key}"), response_model=AnomalyScope, responses=NOT_FOUND, tags=["anomalies"])
    async def anomaly(kind: AnomalyScopeKind, key: Identifier) -> AnomalyScope:
        """One scope (``all/all``, ``category/toys``, ``country/DE``, ``method/card``)."""
        return found(await queries.anomaly(kind, key), f"no traffic scope {kind} {key!r}")

    @router.get(v1("/sessions/{session_id}"), response_model=SessionPropensity, responses=NOT_FOUND,
                tags=["propensity"])
    async def session(session_id: Identifier) -> SessionPropensity:
        """A session's probability of ending in an order as of its latest click, its cart and status."""
        return found(await queries.session(session_id), f"no session {session_id!r}")

    @router.get(v1("/customers/{customer_id}/session"), response_model=SessionPropensity, responses=NOT_FOUND,
                tags=["propensity"])
    async def customer_session(customer_id: Identifier) -> SessionPropensity:
        """A customer's latest session and its probability of ending in an order."""
        return found(await queries.customer_session(customer_id), f"no session of customer {customer_id!r}")

    @router.get(v1("/propensity"), response_model=PropensityModel, tags=["propensity"])
    async def propensity() -> PropensityModel:
        """The conversion model: sessions learned and converted, progressive ROC AUC, its top rules in words."""
        return await queries.propensity_model()

    @router.get(v1("/metrics"), response_model=PipelineMetrics, tags=["operations"])
    async def pipeline_metrics() -> PipelineMetrics:
        """Events processed/invalid/duplicate per topic, live workers and lag, model metrics."""
        return await queries.metrics()


def add_risk_routes(router: APIRouter, queries: ServingQueries) -> None:
    """Payment verdicts and the analyst rules (the one writable resource)."""

    @router.get(v1("/risk/payments/{payment_id}"), tags=["risk"], response_model=PaymentRisk, responses=NOT_FOUND)
    async def payment_risk(payment_id: Identifier) -> PaymentRisk:
        """A payment's score, decision (allow/review/block), reasons and rule hits."""
        return found(await queries.payment_risk(payment_id), f"no risk verdict for payment {payment_id!r}")

    @router.get(v1("/risk/rules"), tags=["risk"], response_model=RiskRuleList)
    async def risk_rules() -> RiskRuleList:
        """Every analyst rule, with the workers' rejection reason if any."""
        return await queries.risk_rules()

    @router.get(v1("/risk/rules/{rule_id}"), tags=["risk"], response_model=RiskRuleView, responses=NOT_FOUND)
    async def risk_rule(rule_id: RuleId) -> RiskRuleView:
        """One analyst rule."""
        return found(await queries.risk_rule(rule_id), f"no risk rule {rule_id!r}")

    @router.put(v1("/risk/rules/{rule_id}"), tags=["risk"], response_model=RiskRuleView,
                responses={201: {"model": RiskRuleView, "description": "Rule created"}})
    async def put_risk_rule(rule_id: RuleId, rule: RiskRuleBody, response: Response) -> RiskRuleView:
        """Add or replace a rule (201 when new); 422 with the reason when the rule is invalid.

        The expression uses the rule language of :mod:`models.risk.expression`
        over payment fields and risk features; the workers pick it up at runtime.
        """
        created = await queries.put_risk_rule(rule_id, validated_rule(rule_id, rule))
        response.status_code = 201 if created else 200
        return RiskRuleView(id=rule_id, **rule.model_dump())

    @router.delete(v1("/risk/rules/{rule_id}"), tags=["risk"], status_code=204, responses=NOT_FOUND)
    async def delete_risk_rule(rule_id: RuleId) -> Response:
        """Delete a rule."""
        if not await queries.delete_risk_rule(rule_id):
            raise not_found(f"no risk rule {rule_id!r}")
        return Response(status_code=204)

    @router.post(v1("/risk/rules/{rule_id}/pause"), tags=["risk"], response_model=RiskRuleView, responses=NOT_FOUND)
    async def pause_risk_rule(rule_id: RuleId) -> RiskRuleView:
        """Stop applying a rule without deleting it."""
        return found(await queries.set_risk_rule_enabled(rule_id, False), f"no risk rule {rule_id!r}")

    @router.post(v1("/risk/rules/{rule_id}/resume"), tags=["risk"], response_model=RiskRuleView, responses=NOT_FOUND)
    async def resume_risk_rule(rule_id: RuleId) -> RiskRuleView:
        """Apply a paused rule again."""
        return found(await queries.set_risk_rule_enabled(rule_id, True), f"no risk rule {rule_id!r}")


def add_alert_routes(router: APIRouter, queries: ServingQueries, stream_queries: ServingQueries) -> None:
    """Recent alerts and the live alert stream."""

    @router.get(v1("/alerts"), tags=["alerts"], response_model=AlertList)
    async def alerts(
        kind: Kinds = None,
        since: Annotated[float | None, Query(ge=0, description="Only alerts raised at or after this time (epoch s).")] = None,
        limit: Limit = 50,
    ) -> AlertList:
        """Recent alerts, newest first, with their reasons."""
        return await queries.alerts(kind or (), since, limit)

    @router.get(v1("/alerts/stream"), tags=["alerts"], response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}},
                                 "description": "Server-sent events: `event: alert`, `id`: stream id, `data`: an Alert"}})
    async def alert_stream(
        kind: Kinds = None,
        after: Annotated[str | None, Query(description="Resume after this alert id (as Last-Event-ID).")] = None,
        last_event_id: Annotated[str | None, Header(description="Set by EventSource when it reconnects.")] = None,
    ) -> StreamingResponse:
        """Alerts as they are raised (server-sent events), from now or after ``Last-Event-ID``/``after``."""
        resume = last_event_id or after
        if resume is not None and not STREAM_ID.match(resume):
            raise ApiError(422, "invalid_request", f"not an alert id: {resume!r} (expected <ms>-<seq>)")
        start = resume or await queries.last_alert_id()
        return StreamingResponse(
            alert_events(stream_queries, start, kind or ()),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


async def alert_events(queries: ServingQueries, last_id: str, kinds: Sequence[str]) -> AsyncIterator[bytes]:
    """The server-sent events of the alert stream, with a keep-alive comment when quiet."""
    yield b"retry: 2000\n\n"
    while True:
        try:
            last_id, alerts = await queries.alerts_after(last_id, STREAM_BLOCK_MS, kinds)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("alert stream ends, Redis unavailable: %s", exc)
            return
        for alert in alerts:
            yield b"id: %s\nevent: alert\ndata: %s\n\n" % (alert.id.encode(), orjson.dumps(alert.model_dump()))
        if not alerts:
            yield b": keep-alive\n\n"


def redis_client(settings: KairosSettings, socket_timeout: float) -> aioredis.Redis:
    """A decoding asyncio client with its own connection pool."""
    return views_client(settings, decode_responses=True, socket_timeout=socket_timeout,
                        socket_connect_timeout=LOOKUP_TIMEOUT_SECONDS, health_check_interval=30)


def create_app(settings: KairosSettings) -> FastAPI:
    """The lookup API and dashboard over the Redis views named by ``settings``."""
    keys = RedisKeys(settings.prefix)
    pseudonyms = Pseudonyms(settings.pseudonymize_key)
    lookups = ServingQueries(redis_client(settings, LOOKUP_TIMEOUT_SECONDS), keys, pseudonyms=pseudonyms)
    streams = ServingQueries(redis_client(settings, STREAM_BLOCK_MS / 1000 + LOOKUP_TIMEOUT_SECONDS), keys,
                             pseudonyms=pseudonyms)
    metrics = ApiMetrics()
    dashboard_page = (DASHBOARD / "index.html").read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await lookups.redis.aclose()
        await streams.redis.aclose()

    app = FastAPI(
        title="Kairos",
        version="1",
        description="Live customer segments, recommendations, forecasts, payment risk and alerts, served from "
                    "the Redis views. Errors are `{\"error\": {\"code\", \"message\"}}`; when an API key is "
                    "configured, `/api/*` needs the header `X-API-Key`.",
        lifespan=lifespan,
        # Kairos exports Prometheus metrics (/metrics); FastAPI's native OpenTelemetry
        # would look up the global providers on every request (~25 µs here).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.add_middleware(RequestTimer, metrics=metrics)

    api = APIRouter(dependencies=api_key_guard(settings), responses=ERROR_RESPONSES)
    add_lookup_routes(api, lookups)
    add_risk_routes(api, lookups)
    add_alert_routes(api, lookups, streams)
    # The routes go straight into the app's route list: FastAPI's nested-router
    # matching costs ~100 µs per request, a third of a lookup's budget.
    app.router.routes.extend(api.routes)

    @app.get("/healthz", response_model=Health, tags=["operations"], responses={503: ERROR_RESPONSES[503]})
    async def healthz() -> Health:
        """``ok`` when Redis answers a ping (503 otherwise)."""
        await lookups.ping()
        return Health(status="ok", redis="ok")

    @app.get("/metrics", response_class=Response, tags=["operations"],
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus() -> Response:
        """API request counts and latencies, and the pipeline's figures mirrored from Redis."""
        try:
            snapshot = await lookups.metrics()
        except (RedisConnectionError, RedisTimeoutError):
            snapshot = None
        return Response(metrics.render(snapshot), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(dashboard_page)

    app.mount("/dashboard", StaticFiles(directory=DASHBOARD), name="dashboard")
    return app


def serve(settings: KairosSettings) -> None:
    """Run the API with uvicorn on ``settings.api_host:api_port`` until Ctrl-C (``kairos serve``)."""
    import uvicorn

    app = create_app(settings)
    app.openapi()
    # ~80k long-lived objects (FastAPI, pydantic, the OpenAPI schema) would make
    # every full collection under load a ~40 ms pause; frozen, they are skipped.
    gc.freeze()
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=settings.log_level, access_log=False)
