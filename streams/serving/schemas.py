"""What the lookup API answers: one pydantic model per response, shared by the API and the client.

The API declares these as response models (so they document the OpenAPI
schema); the Python client parses answers back into the same classes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

AlertKind = Literal["risk", "drift", "trend", "surge", "slump", "restock", "anomaly", "abandon"]
AnomalyScopeKind = Literal["all", "category", "country", "method"]
ForecastScope = Literal["total", "category", "sku"]
RecommendationSource = Literal["rule", "segment", "global"]


class ErrorBody(BaseModel):
    """What went wrong: a stable machine code and a readable message."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody


class SegmentProfile(BaseModel):
    """A segment as a marketer reads it: name, size, one-line summary, typical member."""

    segment_id: int
    name: str
    size: int
    summary: str = ""
    #: The typical member: feature -> value in original units.
    centroid: dict[str, float] = {}
    #: Feature -> z-score against the population (what makes the segment stand out).
    traits: dict[str, float] = {}
    updated_at: float | None = None


class SegmentList(BaseModel):
    """Every segment with its size."""

    segments: list[SegmentProfile]
    customers: int


class CustomerView(BaseModel):
    """One customer's live features, segment and that segment's profile."""

    customer_id: str
    #: ``orders``, ``spend``, ``units``, ``clicks``, ``payments``, ``payment_amount``, timestamps (epoch s).
    features: dict[str, float]
    segment_id: int | None = None
    segment: SegmentProfile | None = None


class Recommendation(BaseModel):
    """One suggested SKU, its score and where it came from."""

    sku: str
    #: Confidence (noisy-or over the cart's rules) for ``rule``; recent units for best-sellers.
    score: float
    source: RecommendationSource


class Recommendations(BaseModel):
    """Suggestions for an item, a cart or a customer, best first."""

    cart: list[str] = []
    customer_id: str | None = None
    segment_id: int | None = None
    items: list[Recommendation]


class AssociationRule(BaseModel):
    """``antecedent -> consequent`` with its support, confidence and lift."""

    antecedent: list[str]
    consequent: str
    support: float
    confidence: float
    lift: float
    count: float
    updated_at: float | None = None


class RuleList(BaseModel):
    """Association rules, highest lift first."""

    rules: list[AssociationRule]


class PaymentRisk(BaseModel):
    """The scorer's verdict on one payment, with its reasons."""

    payment_id: str
    customer_id: str | None = None
    amount: float | None = None
    ts: float | None = None
    score: float
    decision: Literal["allow", "review", "block"]
    #: ``rules`` (cold start) or ``model``.
    mode: str | None = None
    #: The score above which the scorer alerted when it scored this payment.
    threshold: float | None = None
    reasons: list[str] = []
    rule_hits: list[str] = []
    model_version: str | None = None
    scored_at: float | None = None


class RiskRuleBody(BaseModel):
    """An analyst rule as sent to ``PUT /risk/rules/{rule_id}`` (validated by :mod:`models.risk.rules`)."""

    expression: str = Field(examples=["amount > 1000 and ip_country != billing_country"])
    #: ``"review"``, ``"block"``, or a score floor in (0, 1].
    action: Literal["review", "block"] | float = Field(examples=["review"])
    enabled: bool = True
    description: str = ""


class RiskRuleView(RiskRuleBody):
    """An analyst rule in force, and why the workers rejected it, if they did."""

    id: str
    rejected: str | None = None


class RiskRuleList(BaseModel):
    """All analyst rules."""

    rules: list[RiskRuleView]


class Alert(BaseModel):
    """One entry of the alerts stream."""

    #: Stream entry id (``<ms>-<seq>``); pass it as ``Last-Event-ID`` to resume the live stream.
    id: str
    kind: str
    #: Stable id of what is alerted on (``risk:<payment id>``, ``surge:<series>:<window>``, ...).
    alert_id: str | None = None
    subject: str
    score: float
    reasons: list[str]
    #: Event time the alert is about (epoch s).
    ts: float | None = None
    #: Wall clock when the worker raised it (epoch s).
    created_at: float | None = None
    #: Kind-specific fields, as the worker wrote them (strings).
    details: dict[str, str] = {}


class AlertList(BaseModel):
    """Recent alerts, newest first."""

    alerts: list[Alert]


class SalesWindow(BaseModel):
    """One closed window of actual sales."""

    window_start: float
    units: float
    revenue: float
    lines: float | None = None
    #: Product views of the series in the window.
    views: float | None = None


class ForecastStep(BaseModel):
    """One future window: forecast and interval per measure."""

    window_start: float
    basis: str | None = None
    units: float
    units_lower: float
    units_upper: float
    revenue: float | None = None
    revenue_lower: float | None = None
    revenue_upper: float | None = None
    views: float | None = None
    views_lower: float | None = None
    views_upper: float | None = None


class Forecast(BaseModel):
    """Next-window forecasts of one series, its recent actuals and its error."""

    scope: str
    key: str
    window_size: float | None = None
    next_window_start: float | None = None
    forecast_units: float | None = None
    lower_units: float | None = None
    upper_units: float | None = None
    forecast_revenue: float | None = None
    lower_revenue: float | None = None
    upper_revenue: float | None = None
    forecast_views: float | None = None
    last_window_start: float | None = None
    last_units: float | None = None
    last_revenue: float | None = None
    last_views: float | None = None
    basis: str | None = None
    mae: float | None = None
    naive_mae: float | None = None
    mae_ratio: float | None = None
    smape: float | None = None
    horizon: list[ForecastStep] = []
    actuals: list[SalesWindow] = []


class ForecastList(BaseModel):
    """Every series of one scope."""

    scope: str
    forecasts: list[Forecast]


class StockRisk(BaseModel):
    """A SKU's stock on hand and the hours until it runs out (``kairos:stock:sku:{sku}``).

    ``hours_to_stockout`` is when the expected demand uses the stock up;
    ``hours_to_stockout_latest`` when the lower bound of the demand forecast
    does (a ``restock`` alert is raised when that is within ``horizon_hours``).
    Both are absent when not within the look-ahead or without a forecast
    (``basis`` ``no-forecast``: the SKU is not among the forecast top SKUs).
    """

    sku: str
    on_hand: float | None = None
    as_of: float | None = None
    counted_at: float | None = None
    basis: str | None = None
    horizon_hours: float | None = None
    hours_to_stockout: float | None = None
    hours_to_stockout_latest: float | None = None
    stockout_at: float | None = None
    alerted_at: float | None = None


class StockRiskList(BaseModel):
    """SKUs by expected hours until stock-out, soonest first."""

    skus: list[StockRisk]


class AnomalyScope(BaseModel):
    """One traffic scope's latest closed minute: its counts, the usual value of each signal, its score."""

    scope: str
    kind: str
    key: str
    #: Start of the minute (event time, ISO 8601 UTC).
    minute: str | None = None
    #: The worst signal's move in standard deviations (0 while the scope warms up).
    score: float = 0.0
    anomalous: bool = False
    #: Counter -> events in the minute (views, carts, orders, payments, declined, failed, new_devices, dead, events).
    counts: dict[str, float] = {}
    #: Signal -> usual value (views and payments per minute; rates as shares).
    usual: dict[str, float] = {}


class SessionPropensity(BaseModel):
    """A session's probability of ending in an order (``kairos:session:{id}``), as of its latest click.

    ``status``: ``open`` (still browsing), ``converted`` (its customer ordered) or ``ended`` (no click for
    ``KAIROS_SESSION_TIMEOUT_SECONDS`` of event time). ``propensity`` is absent until the session is scored.
    """

    session_id: str
    customer_id: str | None = None
    status: str
    propensity: float | None = None
    clicks: float | None = None
    cart_items: float | None = None
    cart_value: float | None = None
    started: float | None = None
    last_click: float | None = None


class PropensityRule(BaseModel):
    """One leaf of the conversion tree as a rule: its conditions, and the share of its sessions that converted."""

    rule: str
    converts: float
    sessions: int


class PropensityModel(BaseModel):
    """The conversion model (``kairos:propensity:model``): sessions learned and converted, the progressive ROC
    AUC of the live score at each session's last click (over the last ``window`` sessions), its top rules."""

    learned: int = 0
    converted: int = 0
    roc_auc: float | None = None
    window: int | None = None
    rules: list[PropensityRule] = []
    updated_at: float | None = None


class AnomalyScopeList(BaseModel):
    """Every watched scope, highest latest score first."""

    scopes: list[AnomalyScope]


class TopicCounts(BaseModel):
    """Events of one input topic over all partitions."""

    processed: int = 0
    invalid: int = 0
    duplicate: int = 0


class ErasureRequest(BaseModel):
    """A customer's erasure, requested (the workers apply it; see ``streams/pipeline/erasure.py``)."""

    customer_id: str
    status: Literal["requested"]


class WorkerStatus(BaseModel):
    """One live worker (its metrics hash expires when it stops)."""

    worker: str
    ingest_lag: float | None = None
    updated_at: float | None = None
    figures: dict[str, float] = {}


class PipelineMetrics(BaseModel):
    """Pipeline health and progressive model metrics, as the workers last wrote them."""

    ingest: dict[str, TopicCounts]
    workers: list[WorkerStatus]
    #: Sum of the live workers' ingest lag (events behind the input topics' ends).
    lag: float
    #: Component (``risk``, ``segments``, ``baskets``, ``forecast``, ``anomaly``) -> metric -> value.
    models: dict[str, dict[str, float]]


class Health(BaseModel):
    """Liveness of the API and its Redis."""

    status: Literal["ok"]
    redis: Literal["ok"]

