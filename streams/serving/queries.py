"""Read-side access to the Redis views: every lookup the API serves, in one or two round trips.

The worker writes the views (see the README's serving contract); this module
only reads them, except the analyst risk rules (``kairos:risk:rules``), which
analysts edit through the API and the workers read at runtime. Every key comes
from :class:`~streams.pipeline.keys.RedisKeys`.

Lookups by id (customer, payment, SKU, cart) pipeline their reads into one
round trip. What many lookups share and what changes slowly is kept in process
for ``shared_seconds`` (default 1 s) in a :class:`ShortLived` cache: the
segment profiles and sizes, the top of the best-seller lists, and the key lists
of SCAN-based listings (rules, forecasts, live workers), so that a dashboard
polling every few seconds does not walk the keyspace each time. Per-id views
(customers, payments, item rules, forecasts, alerts) are always read fresh.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis

from models.baskets import CartRecommender
from streams.pipeline.keys import RedisKeys
from streams.pipeline.erasure import request_erasure
from streams.pipeline.pseudonyms import Pseudonyms
from streams.serving.schemas import (
    Alert,
    AlertList,
    AssociationRule,
    CustomerView,
    Forecast,
    ForecastList,
    PaymentRisk,
    PipelineMetrics,
    PropensityModel,
    Recommendation,
    SessionPropensity,
    AnomalyScope,
    AnomalyScopeList,
    Recommendations,
    RiskRuleBody,
    RiskRuleList,
    RiskRuleView,
    RuleList,
    SegmentList,
    SegmentProfile,
    StockRisk,
    StockRiskList,
    TopicCounts,
    WorkerStatus,
)

#: Fields every alert carries; the rest of an entry is kind-specific detail.
ALERT_FIELDS = ("kind", "alert_id", "subject", "score", "reasons", "ts", "created_at")
#: Components whose model metrics the workers publish under ``kairos:metrics:{component}``.
MODEL_COMPONENTS = ("risk", "segments", "baskets", "forecast", "stock", "anomaly", "sessions")
#: Input topics counted in ``kairos:metrics:ingest``.
INGEST_TOPICS = ("clicks", "orders", "payments", "labels")
#: At most this many alerts are examined per listing when filtering by kind.
ALERT_SCAN_LIMIT = 10_000
#: Entries kept of each best-seller list: enough for the largest limit plus the largest cart.
BESTSELLERS_KEPT = 200

T = TypeVar("T")


def number(text: str | None) -> float | None:
    """A float from a Redis string, ``None`` when absent or not a finite number."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def timestamp(text: str | None) -> float | None:
    """Epoch seconds from a Redis string holding epoch seconds or ISO 8601 (``2026-11-22T06:01:17.123Z``)."""
    value = number(text)
    if value is not None or text is None:
        return value
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def numbers(fields: Mapping[str, str], skip: Iterable[str] = ()) -> dict[str, float]:
    """The fields of a hash that hold finite numbers."""
    skipped = set(skip)
    parsed = {name: number(text) for name, text in fields.items() if name not in skipped}
    return {name: value for name, value in parsed.items() if value is not None}


def json_field(fields: Mapping[str, str], name: str, default: Any) -> Any:
    """A JSON-encoded field of a hash, ``default`` when absent or unreadable."""
    text = fields.get(name)
    if text is None:
        return default
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return default


def reason_texts(raw: Any) -> list[str]:
    """Reasons as readable strings (the workers write strings; objects with ``text`` are accepted)."""
    if not isinstance(raw, list):
        return []
    return [str(item.get("text", item)) if isinstance(item, dict) else str(item) for item in raw]


def segment_profile(segment_id: int, fields: Mapping[str, str], size: float | None = None) -> SegmentProfile:
    """A :class:`SegmentProfile` from its hash; ``size`` (from the sizes hash) wins when given."""
    return SegmentProfile(
        segment_id=segment_id,
        name=fields.get("name") or f"segment {segment_id}",
        size=int(size if size is not None else number(fields.get("size")) or 0),
        summary=fields.get("summary", ""),
        centroid=json_field(fields, "centroid", {}),
        traits=json_field(fields, "traits", {}),
        updated_at=number(fields.get("updated_at")),
    )


def ranked(pairs: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """``ZREVRANGE ... WITHSCORES`` output as ``(member, score)`` tuples."""
    return [(member, float(score)) for member, score in pairs]


def alert_from_entry(entry_id: str, fields: Mapping[str, str]) -> Alert:
    """An :class:`Alert` from one stream entry."""
    return Alert(
        id=entry_id,
        kind=fields.get("kind", ""),
        alert_id=fields.get("alert_id"),
        subject=fields.get("subject", ""),
        score=number(fields.get("score")) or 0.0,
        reasons=reason_texts(json_field(fields, "reasons", [])),
        ts=timestamp(fields.get("ts")),
        created_at=number(fields.get("created_at")),
        details={name: text for name, text in fields.items() if name not in ALERT_FIELDS},
    )


def anomaly_from_hash(scope: str, fields: Mapping[str, str]) -> AnomalyScope:
    """An :class:`AnomalyScope` from a ``kairos:anomaly:{kind}:{key}`` hash."""
    kind, _, key = scope.partition(":")
    values = numbers(fields, skip=("minute",))
    return AnomalyScope(
        scope=scope, kind=kind, key=key, minute=fields.get("minute"), score=values.get("score", 0.0),
        anomalous=bool(values.get("anomalous")),
        counts={name[6:]: value for name, value in values.items() if name.startswith("count_")},
        usual={name[6:]: value for name, value in values.items() if name.startswith("usual_")},
    )


def session_from_hash(fields: Mapping[str, str]) -> SessionPropensity:
    """A :class:`SessionPropensity` from a ``kairos:session:{id}`` hash (instants as epoch seconds)."""
    instants = ("started", "last_click")
    return SessionPropensity(
        session_id=fields.get("session_id", ""), customer_id=fields.get("customer_id"),
        status=fields.get("status", ""), **{name: timestamp(fields.get(name)) for name in instants},
        **{name: value for name, value in numbers(fields, (*instants, "session_id", "customer_id")).items()
           if name in SessionPropensity.model_fields})


def forecast_from_hash(fields: Mapping[str, str]) -> Forecast:
    """A :class:`Forecast` from a ``kairos:forecast:{scope}:{key}`` hash."""
    structured = {"scope", "key", "basis", "horizon", "actuals"}
    return Forecast(
        scope=fields.get("scope", ""),
        key=fields.get("key", ""),
        basis=fields.get("basis"),
        horizon=json_field(fields, "horizon", []),
        actuals=json_field(fields, "actuals", []),
        **{name: value for name, value in numbers(fields, structured).items() if name in Forecast.model_fields},
    )


def stock_from_hash(fields: Mapping[str, str]) -> StockRisk:
    """A :class:`StockRisk` from a ``kairos:stock:sku:{sku}`` hash (instants as epoch seconds)."""
    instants = ("as_of", "counted_at", "stockout_at", "alerted_at")
    return StockRisk(
        sku=fields.get("sku", ""), basis=fields.get("basis"),
        **{name: timestamp(fields.get(name) or None) for name in instants},
        **{name: value for name, value in numbers(fields, instants).items() if name in StockRisk.model_fields},
    )


def risk_rule_view(rule_id: str, text: str, rejected: str | None) -> RiskRuleView:
    """A :class:`RiskRuleView` from the rule's stored JSON and the workers' rejection reason."""
    return RiskRuleView.model_validate(orjson.loads(text) | {"id": rule_id, "rejected": rejected})


def rule_from_hash(fields: Mapping[str, str]) -> AssociationRule | None:
    """An :class:`AssociationRule` from its hash, ``None`` for a hash without the numbers."""
    values = numbers(fields)
    if not {"support", "confidence", "lift"} <= values.keys():
        return None
    return AssociationRule(
        antecedent=json_field(fields, "antecedent", []),
        consequent=fields.get("consequent", ""),
        support=values["support"],
        confidence=values["confidence"],
        lift=values["lift"],
        count=values.get("count", 0.0),
        updated_at=values.get("updated_at"),
    )


class ShortLived:
    """Values shared by many lookups, each kept for ``seconds`` after it was loaded.

    Memory: one entry per name; the names are fixed (segment profiles, global
    best-sellers, SCAN patterns) or one per segment (its best-sellers).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._values: dict[str, tuple[float, Any]] = {}

    async def get(self, name: str, load: Callable[[], Awaitable[T]]) -> T:
        """The value under ``name``, loaded with ``load`` when absent or older than ``seconds``."""
        now = time.monotonic()
        kept = self._values.get(name)
        if kept is not None and kept[0] > now:
            return kept[1]
        value = await load()
        self._values[name] = (now + self.seconds, value)
        return value


class ServingQueries:
    """The lookups of the serving layer over one Redis connection pool.

    ``redis`` must decode responses (``decode_responses=True``).
    """

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, shared_seconds: float = 1.0,
                 pseudonyms: Callable[[str], str] = Pseudonyms(None)) -> None:
        self.redis = redis
        self.keys = keys
        #: A customer id as the pipeline stores it (its keyed hash under ``KAIROS_PSEUDONYMIZE_KEY``).
        self.stored_id = pseudonyms
        self.shared = ShortLived(shared_seconds)

    async def ping(self) -> None:
        """Raise ``redis.ConnectionError`` unless Redis answers."""
        await self.redis.ping()

    async def _scan(self, pattern: str) -> list[str]:
        """Keys matching ``pattern`` (a shared value)."""

        async def scan() -> list[str]:
            return sorted({key async for key in self.redis.scan_iter(match=pattern, count=1000)})

        return await self.shared.get(pattern, scan)

    async def _hashes(self, keys: Sequence[str]) -> list[dict[str, str]]:
        """HGETALL of every key in one round trip."""
        if not keys:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return await pipe.execute()

    async def _profiles(self) -> dict[int, SegmentProfile]:
        """Every segment in the sizes hash with its profile (a shared value)."""

        async def load() -> dict[int, SegmentProfile]:
            sizes = await self.redis.hgetall(self.keys.segment_sizes())
            ids = sorted(int(sid) for sid in sizes)
            profiles = await self._hashes([self.keys.segment_profile(sid) for sid in ids])
            return {sid: segment_profile(sid, fields, number(sizes[str(sid)]) or 0.0)
                    for sid, fields in zip(ids, profiles)}

        return await self.shared.get("segment-profiles", load)

    async def _bestsellers(self, segment_id: int | None) -> list[tuple[str, float]]:
        """The top of the global (or a segment's) best-sellers (a shared value)."""
        key = self.keys.reco_bestsellers() if segment_id is None else self.keys.reco_bestsellers_segment(segment_id)

        async def load() -> list[tuple[str, float]]:
            return ranked(await self.redis.zrevrange(key, 0, BESTSELLERS_KEPT - 1, withscores=True))

        return await self.shared.get(key, load)

    # Customers and segments.

    async def customer(self, customer_id: str) -> CustomerView | None:
        """Features, segment and segment profile of a customer; ``None`` if Kairos has never seen them."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.customer(self.stored_id(customer_id)))
            pipe.get(self.keys.segment_of(self.stored_id(customer_id)))
            features, segment_id = await pipe.execute()
        if not features and segment_id is None:
            return None
        view = CustomerView(customer_id=customer_id, features=numbers(features))
        if segment_id is not None:
            view.segment_id = int(segment_id)
            view.segment = (await self._profiles()).get(view.segment_id) or await self.segment(view.segment_id)
        return view

    async def segment(self, segment_id: int) -> SegmentProfile | None:
        """One segment's profile (read fresh), ``None`` if no worker has profiled it."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.segment_profile(segment_id))
            pipe.hget(self.keys.segment_sizes(), str(segment_id))
            fields, size = await pipe.execute()
        if not fields:
            return None
        return segment_profile(segment_id, fields, number(size))

    async def segments(self) -> SegmentList:
        """Every segment in the sizes hash with its profile, largest first."""
        segments = sorted((await self._profiles()).values(), key=lambda s: (-s.size, s.segment_id))
        return SegmentList(segments=segments, customers=sum(s.size for s in segments))

    # Recommendations.

    async def _recommend(self, cart: list[str], item_rules: dict[str, list[tuple[str, float]]],
                         segment_id: int | None, customer_id: str | None, limit: int) -> Recommendations:
        """:class:`CartRecommender` over the cart's rules and the (shared) best-seller lists."""
        segment_best = [] if segment_id is None else await self._bestsellers(segment_id)
        picks = CartRecommender(limit).recommend(cart, item_rules, segment_best, await self._bestsellers(None))
        return Recommendations(
            cart=cart,
            customer_id=customer_id,
            segment_id=segment_id,
            items=[Recommendation(sku=p.sku, score=p.score, source=p.source) for p in picks],
        )

    async def item_recommendations(self, sku: str, limit: int) -> Recommendations | None:
        """What goes with ``sku``; global best-sellers fill the places rules leave.

        ``None`` when Kairos knows nothing of the SKU: no rule starts from it
        and it is not among the global best-sellers.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(self.keys.reco_item(sku), 0, limit - 1, withscores=True)
            pipe.zscore(self.keys.reco_bestsellers(), sku)
            rules, bestseller_score = await pipe.execute()
        if not rules and bestseller_score is None:
            return None
        return await self._recommend([sku], {sku: ranked(rules)}, None, None, limit)

    async def cart_recommendations(self, cart: Sequence[str], customer_id: str | None, limit: int) -> Recommendations:
        """Merged rules of the cart's SKUs, then the customer's segment best-sellers, then global ones.

        An unknown (or absent) customer simply gets no segment fallback.
        """
        skus = list(dict.fromkeys(cart))
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.zrevrange(self.keys.reco_item(sku), 0, limit - 1, withscores=True)
            if customer_id is not None:
                pipe.get(self.keys.segment_of(customer_id))
            replies = await pipe.execute()
        segment_id = replies[len(skus)] if customer_id is not None else None
        item_rules = {sku: ranked(reply) for sku, reply in zip(skus, replies)}
        return await self._recommend(skus, item_rules, None if segment_id is None else int(segment_id), customer_id,
                                     limit)

    async def customer_recommendations(self, customer_id: str, limit: int) -> Recommendations | None:
        """The customer's segment best-sellers, then global ones; ``None`` for an unknown customer.

        The serving contract keeps no basket history per customer, so this is
        the recommendation for an empty cart.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.keys.customer(self.stored_id(customer_id)))
            pipe.get(self.keys.segment_of(self.stored_id(customer_id)))
            known, segment_id = await pipe.execute()
        if not known and segment_id is None:
            return None
        return await self._recommend([], {}, None if segment_id is None else int(segment_id), customer_id, limit)

    async def rules(self, limit: int, min_lift: float) -> RuleList:
        """Association rules with lift at least ``min_lift``, highest lift (then confidence) first."""
        hashes = await self._hashes(await self._scan(self.keys.pattern("reco", "rule")))
        rules = [rule for rule in map(rule_from_hash, hashes) if rule is not None and rule.lift >= min_lift]
        rules.sort(key=lambda r: (-r.lift, -r.confidence, r.antecedent, r.consequent))
        return RuleList(rules=rules[:limit])

    # Risk.

    async def payment_risk(self, payment_id: str) -> PaymentRisk | None:
        """The scorer's verdict on a payment, ``None`` if it was not scored (or has expired)."""
        fields = await self.redis.hgetall(self.keys.risk_payment(payment_id))
        if not fields:
            return None
        values = numbers(fields, skip=("payment_id", "customer_id", "ts", "decision", "mode", "model_version"))
        return PaymentRisk(
            payment_id=payment_id,
            customer_id=fields.get("customer_id"),
            amount=values.get("amount"),
            ts=timestamp(fields.get("ts")),
            score=values.get("score", 0.0),
            decision=fields.get("decision", "allow"),
            mode=fields.get("mode"),
            threshold=values.get("threshold"),
            reasons=reason_texts(json_field(fields, "reasons", [])),
            rule_hits=[str(hit) for hit in json_field(fields, "rule_hits", [])],
            model_version=fields.get("model_version"),
            scored_at=values.get("scored_at"),
        )

    async def risk_rules(self) -> RiskRuleList:
        """Every analyst rule, with the workers' rejection reason when there is one."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.risk_rules())
            pipe.hgetall(self.keys.risk_rules_rejected())
            stored, rejected = await pipe.execute()
        return RiskRuleList(rules=[risk_rule_view(rule_id, text, rejected.get(rule_id))
                                   for rule_id, text in sorted(stored.items())])

    async def risk_rule(self, rule_id: str) -> RiskRuleView | None:
        """One analyst rule, ``None`` if there is no rule with that id."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.risk_rules(), rule_id)
            pipe.hget(self.keys.risk_rules_rejected(), rule_id)
            text, rejected = await pipe.execute()
        if text is None:
            return None
        return risk_rule_view(rule_id, text, rejected)

    async def put_risk_rule(self, rule_id: str, rule: RiskRuleBody) -> bool:
        """Store (add or replace) an analyst rule; ``True`` if it is new. Validate it first."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.risk_rules(), rule_id, orjson.dumps(rule.model_dump()).decode())
            pipe.hdel(self.keys.risk_rules_rejected(), rule_id)
            added, _ = await pipe.execute()
        return bool(added)

    async def request_erasure(self, customer_id: str) -> None:
        """Ask the workers to erase a customer (see :mod:`streams.pipeline.erasure`)."""
        await request_erasure(self.redis, self.keys, self.stored_id(customer_id))

    async def erasure_pending(self, customer_id: str) -> bool:
        """Whether a customer's erasure was requested and no worker has applied it yet."""
        return bool(await self.redis.hexists(self.keys.erasures(), self.stored_id(customer_id)))

    async def delete_risk_rule(self, rule_id: str) -> bool:
        """Remove an analyst rule; ``False`` if there was none."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.risk_rules(), rule_id)
            pipe.hdel(self.keys.risk_rules_rejected(), rule_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def set_risk_rule_enabled(self, rule_id: str, enabled: bool) -> RiskRuleView | None:
        """Pause or resume a rule (atomically against concurrent edits); ``None`` if there is none."""
        key = self.keys.risk_rules()
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    text = await pipe.hget(key, rule_id)
                    if text is None:
                        return None
                    rule = RiskRuleBody.model_validate_json(text).model_copy(update={"enabled": enabled})
                    pipe.multi()
                    pipe.hset(key, rule_id, orjson.dumps(rule.model_dump()).decode())
                    await pipe.execute()
                    return await self.risk_rule(rule_id)
                except aioredis.WatchError:
                    continue

    # Alerts.

    async def alerts(self, kinds: Sequence[str] = (), since: float | None = None, limit: int = 50) -> AlertList:
        """Newest alerts first, optionally of some kinds only and raised at or after ``since`` (epoch s)."""
        low = "-" if since is None else str(int(since * 1000))
        high = "+"
        wanted = set(kinds)
        found: list[Alert] = []
        examined = 0
        page = limit if not wanted else max(100, 4 * limit)
        while len(found) < limit and examined < ALERT_SCAN_LIMIT:
            entries = await self.redis.xrevrange(self.keys.alerts(), max=high, min=low, count=page)
            if not entries:
                break
            examined += len(entries)
            found.extend(alert_from_entry(entry_id, fields) for entry_id, fields in entries
                         if not wanted or fields.get("kind") in wanted)
            high = f"({entries[-1][0]}"
        return AlertList(alerts=found[:limit])

    async def last_alert_id(self) -> str:
        """Id of the newest alert (``0-0`` when there is none): where a live stream starts."""
        entries = await self.redis.xrevrange(self.keys.alerts(), count=1)
        return entries[0][0] if entries else "0-0"

    async def alerts_after(self, last_id: str, block_ms: int, kinds: Sequence[str] = ()) -> tuple[str, list[Alert]]:
        """Alerts newer than ``last_id``, waiting up to ``block_ms`` for one; returns the new last id too."""
        reply = await self.redis.xread({self.keys.alerts(): last_id}, count=100, block=block_ms)
        entries = reply[0][1] if reply else []
        if not entries:
            return last_id, []
        wanted = set(kinds)
        alerts = [alert_from_entry(entry_id, fields) for entry_id, fields in entries
                  if not wanted or fields.get("kind") in wanted]
        return entries[-1][0], alerts

    # Forecasts.

    async def forecasts(self, scope: str) -> ForecastList:
        """Every series of ``scope`` (``total``, ``category`` or ``sku``), by key."""
        hashes = await self._hashes(await self._scan(self.keys.pattern("forecast", scope)))
        forecasts = sorted((forecast_from_hash(fields) for fields in hashes if fields), key=lambda f: f.key)
        return ForecastList(scope=scope, forecasts=forecasts)

    async def forecast(self, scope: str, key: str) -> Forecast | None:
        """One series' forecast, ``None`` if it is not forecast."""
        fields = await self.redis.hgetall(self.keys.forecast(scope, key))
        return forecast_from_hash(fields) if fields else None

    # Stock-out risk.

    async def stock_risks(self, limit: int) -> StockRiskList:
        """The ``limit`` SKUs expected to run out soonest."""
        skus = await self.redis.zrange(self.keys.stock_risk(), 0, limit - 1)
        hashes = await self._hashes([self.keys.stock_sku(sku) for sku in skus])
        return StockRiskList(skus=[stock_from_hash(fields) for fields in hashes if fields])

    async def stock(self, sku: str) -> StockRisk | None:
        """One SKU's stock view, ``None`` without inventory counts of it."""
        fields = await self.redis.hgetall(self.keys.stock_sku(sku))
        return stock_from_hash(fields) if fields else None

    # Conversion propensity.

    async def session(self, session_id: str) -> SessionPropensity | None:
        """A live (or recently ended) session's view, ``None`` when unknown or expired."""
        return await self._stored_session(self.stored_id(session_id))

    async def customer_session(self, customer_id: str) -> SessionPropensity | None:
        """A customer's latest session (by the id the shop knows), ``None`` without one."""
        latest = await self.redis.get(self.keys.propensity_of(self.stored_id(customer_id)))
        return None if latest is None else await self._stored_session(latest)  # the pointer holds the stored id

    async def _stored_session(self, stored_id: str) -> SessionPropensity | None:
        fields = await self.redis.hgetall(self.keys.session(stored_id))
        return session_from_hash(fields) if fields else None

    async def propensity_model(self) -> PropensityModel:
        """The conversion model's figures and rules (empty before it has learned)."""
        fields = await self.redis.hgetall(self.keys.propensity_model())
        values = numbers(fields, skip=("rules",))
        return PropensityModel(
            learned=int(values.get("learned", 0)), converted=int(values.get("converted", 0)),
            roc_auc=values.get("roc_auc"), window=int(values["window"]) if "window" in values else None,
            rules=json_field(fields, "rules", []), updated_at=values.get("updated_at"))

    # Traffic anomalies.

    async def anomalies(self, limit: int) -> AnomalyScopeList:
        """The ``limit`` scopes with the highest latest score (every scope's minute read fresh)."""
        scopes = [scope for scope in await self.redis.zrevrange(self.keys.anomaly_scopes(), 0, limit - 1)]
        keys = [self.keys.anomaly(*scope.split(":", 1)) for scope in scopes]
        hashes = await self._hashes(keys)
        return AnomalyScopeList(scopes=[anomaly_from_hash(scope, fields) for scope, fields in zip(scopes, hashes)
                                        if fields])

    async def anomaly(self, kind: str, key: str) -> AnomalyScope | None:
        """One scope's latest minute, ``None`` if it is not watched."""
        fields = await self.redis.hgetall(self.keys.anomaly(kind, key))
        return anomaly_from_hash(f"{kind}:{key}", fields) if fields else None

    # Pipeline metrics.

    async def metrics(self) -> PipelineMetrics:
        """Ingest counts per topic, live workers and their lag, and each component's model metrics."""
        worker_pattern = self.keys.pattern("metrics", "worker")
        worker_keys = await self._scan(worker_pattern)
        hashes = await self._hashes([self.keys.metrics("ingest"), *map(self.keys.metrics, MODEL_COMPONENTS), *worker_keys])
        ingest, models, workers = hashes[0], hashes[1 : 1 + len(MODEL_COMPONENTS)], hashes[1 + len(MODEL_COMPONENTS) :]
        counts = {topic: TopicCounts() for topic in INGEST_TOPICS}
        for name, value in numbers(ingest).items():
            topic, _, outcome = name.partition(".")
            if outcome in TopicCounts.model_fields:
                setattr(counts.setdefault(topic, TopicCounts()), outcome, int(value))
        live = [
            WorkerStatus(
                worker=key.removeprefix(worker_pattern[:-1]),
                ingest_lag=number(fields.get("ingest_lag")),
                updated_at=number(fields.get("updated_at")),
                figures=numbers(fields, skip=("ingest_lag", "updated_at")),
            )
            for key, fields in zip(worker_keys, workers)
            if fields
        ]
        return PipelineMetrics(
            ingest=counts,
            workers=live,
            lag=sum(w.ingest_lag or 0.0 for w in live),
            models={component: numbers(fields) for component, fields in zip(MODEL_COMPONENTS, models) if fields},
        )
