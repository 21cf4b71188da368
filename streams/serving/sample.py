"""A shop in the serving contract's shapes, written as a worker would (see the README's table).

Each writer sets exactly the documented keys and fields through
:class:`~streams.pipeline.keys.RedisKeys`. The tests use them to arrange
Redis, the serving bench to load many customers and SKUs, and they preview the
dashboard without a worker. They take a sync Redis client or pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

import redis

from streams.pipeline.keys import RedisKeys
from streams.pipeline.views import Alert, iso

#: Event time of the sample data (epoch s).
NOW = 1_795_327_277.0
RedisWriter = redis.Redis | redis.client.Pipeline


def write_customer(r: RedisWriter, keys: RedisKeys, customer_id: str, segment_id: int | None,
                   orders: int = 3, spend: float = 120.5) -> None:
    """``kairos:customer:{id}`` and, when given, ``kairos:segment:customer:{id}``."""
    r.hset(keys.customer(customer_id), mapping={
        "orders": orders, "spend": f"{spend:.2f}", "units": 2 * orders, "clicks": 10 * orders, "payments": orders,
        "payment_amount": f"{spend:.2f}", "first_seen": f"{NOW - 86400:.3f}", "last_seen": f"{NOW:.3f}",
        "last_order_ts": f"{NOW:.3f}", "updated_at": f"{time.time():.3f}",
    })
    if segment_id is not None:
        r.set(keys.segment_of(customer_id), segment_id)


def write_segment(r: RedisWriter, keys: RedisKeys, segment_id: int, name: str, size: int, summary: str) -> None:
    """``kairos:segment:profile:{id}`` and its entry in ``kairos:segment:sizes``."""
    r.hset(keys.segment_profile(segment_id), mapping={
        "segment_id": segment_id, "name": name, "size": size, "summary": summary,
        "centroid": json.dumps({"orders": 4.0 + segment_id, "spend": 80.0 * (segment_id + 1)}),
        "traits": json.dumps({"orders": 0.5 * segment_id, "spend": -0.2 + segment_id}),
        "updated_at": f"{NOW:.3f}",
    })
    r.hset(keys.segment_sizes(), str(segment_id), size)


def write_item_rules(r: RedisWriter, keys: RedisKeys, antecedent: str, consequents: Mapping[str, float],
                     lift: float = 2.0, support: float = 0.05) -> None:
    """``kairos:reco:item:{sku}`` (consequent -> confidence) and one rule hash per consequent."""
    r.zadd(keys.reco_item(antecedent), dict(consequents))
    for consequent, confidence in consequents.items():
        r.hset(keys.reco_rule([antecedent], consequent), mapping={
            "antecedent": json.dumps([antecedent]), "consequent": consequent, "support": support,
            "confidence": confidence, "lift": lift, "count": round(support * 1000), "updated_at": f"{NOW:.3f}",
        })


def write_bestsellers(r: RedisWriter, keys: RedisKeys, units: Mapping[str, float], segment_id: int | None = None) -> None:
    """Global (or one segment's) best-sellers: sku -> recent units."""
    key = keys.reco_bestsellers() if segment_id is None else keys.reco_bestsellers_segment(segment_id)
    r.zadd(key, dict(units))


def write_payment_risk(r: RedisWriter, keys: RedisKeys, payment_id: str, customer_id: str, score: float,
                       decision: str, reasons: Sequence[str], rule_hits: Sequence[str] = ()) -> None:
    """``kairos:risk:payment:{id}``."""
    r.hset(keys.risk_payment(payment_id), mapping={
        "payment_id": payment_id, "customer_id": customer_id, "amount": "1500.00", "ts": iso(NOW),
        "score": f"{score:.6f}", "decision": decision, "mode": "model", "threshold": "0.800000",
        "reasons": json.dumps(list(reasons)), "rule_hits": json.dumps(list(rule_hits)),
        "model_version": "model-1200", "scored_at": f"{NOW + 0.01:.3f}",
    })


def write_alert(r: redis.Redis, keys: RedisKeys, kind: str, subject: str, score: float,
                reasons: Sequence[str], **extra: float | str) -> str:
    """One ``XADD`` to ``kairos:alerts`` with the worker's fields (:class:`Alert`); returns the entry id."""
    alert = Alert(kind=kind, alert_id=f"{kind}:{subject}", subject=subject, score=score, reasons=list(reasons),
                  ts=NOW, extra=extra)
    return r.xadd(keys.alerts(), alert.fields(), maxlen=10_000, approximate=True).decode()


def write_forecast(r: RedisWriter, keys: RedisKeys, scope: str, key: str, level: float, windows: int = 6) -> None:
    """``kairos:forecast:{scope}:{key}``: ``windows`` hourly actuals around ``level`` and three windows ahead."""
    hour = 3600.0
    start = NOW - NOW % hour - windows * hour
    actuals = [{"window_start": start + i * hour, "units": level + (i % 3), "revenue": 10 * (level + (i % 3)),
                "lines": level} for i in range(windows)]
    horizon = [{"window_start": start + (windows + i) * hour, "basis": "seasonal", "units": level + 1,
                "units_lower": level - 1, "units_upper": level + 3, "revenue": 10 * (level + 1),
                "revenue_lower": 10 * (level - 1), "revenue_upper": 10 * (level + 3)} for i in range(3)]
    step = horizon[0]
    r.hset(keys.forecast(scope, key), mapping={
        "scope": scope, "key": key, "window_size": hour, "next_window_start": step["window_start"],
        "forecast_units": step["units"], "lower_units": step["units_lower"], "upper_units": step["units_upper"],
        "forecast_revenue": step["revenue"], "lower_revenue": step["revenue_lower"],
        "upper_revenue": step["revenue_upper"], "last_window_start": actuals[-1]["window_start"],
        "last_units": actuals[-1]["units"], "last_revenue": actuals[-1]["revenue"], "basis": "seasonal",
        "mae": 1.2, "naive_mae": 1.8, "mae_ratio": 0.67, "smape": 12.0,  # percent, as the monitor reports
        "horizon": json.dumps(horizon), "actuals": json.dumps(actuals),
    })


def write_anomaly_scope(r: RedisWriter, keys: RedisKeys, scope: str, score: float, counts: Mapping[str, float],
                        usual: Mapping[str, float]) -> None:
    """``kairos:anomaly:{kind}:{key}`` (a scope's latest minute) and its entry in ``kairos:anomaly:scopes``."""
    from streams.pipeline.stages.anomaly import anomaly_fields

    kind, _, key = scope.partition(":")
    view = {"minute": NOW - NOW % 60 - 60, "score": score, "anomalous": int(score >= 6.0),
            **{f"count_{name}": value for name, value in counts.items()},
            **{f"usual_{name}": value for name, value in usual.items()}}
    r.hset(keys.anomaly(kind, key), mapping=anomaly_fields(view))
    r.zadd(keys.anomaly_scopes(), {scope: score})


def write_session(r: RedisWriter, keys: RedisKeys, session_id: str, customer_id: str, propensity: float,
                  carts: int = 2, price: float = 45.0) -> None:
    """``kairos:session:{id}`` (an open session: three views, ``carts`` add-to-carts) and the customer's
    ``kairos:propensity:customer:{id}``."""
    from models.propensity import LiveSession, session_view
    from streams.pipeline.stages.sessions import view_fields

    session = LiveSession(session_id, customer_id, NOW - 300)
    for step, action in enumerate(["view"] * 3 + ["add_to_cart"] * carts):
        session.click({"ts": NOW - 300 + 40 * step, "action": action, "price": price})
    session.score = propensity
    r.hset(keys.session(session_id), mapping=view_fields(session_view(session, "open")))
    r.set(keys.propensity_of(customer_id), session_id)


def write_propensity_model(r: RedisWriter, keys: RedisKeys, learned: int, converted: int, roc_auc: float | None,
                           rules: Sequence[Mapping[str, object]]) -> None:
    """``kairos:propensity:model``: sessions learned and converted, live AUC, the tree's top rules."""
    from streams.pipeline.stages.sessions import model_fields

    r.hset(keys.propensity_model(), mapping=model_fields({"learned": learned, "converted": converted,
                                                          "roc_auc": roc_auc, "window": 5000, "rules": list(rules)}))


def write_metrics(r: RedisWriter, keys: RedisKeys, processed: int = 1000, lag: float = 42.0) -> None:
    """Ingest counters, one live worker and each component's model metrics."""
    ingest = {}
    for i, topic in enumerate(("clicks", "orders", "payments", "labels")):
        ingest |= {f"{topic}.processed": processed * (4 - i), f"{topic}.invalid": i, f"{topic}.duplicate": 2 * i}
    r.hset(keys.metrics("ingest"), mapping=ingest)
    worker = keys.metrics("worker:host-1234")
    r.hset(worker, mapping={"ingest_lag": lag, "ready": 0, "group_lag.kairos-ingest": lag, "fetched": processed,
                            "invalid": 1, "updated_at": f"{time.time():.3f}"})
    r.expire(worker, 60)
    r.hset(keys.metrics("risk"), mapping={"auc": 0.91, "precision_at_threshold": 0.6, "recall_at_threshold": 0.7,
                                          "alert_rate": 0.02})
    r.hset(keys.metrics("segments"), mapping={"inertia": 12.5, "segments": 3})
    r.hset(keys.metrics("baskets"), mapping={"itemsets": 120, "rules": 30})
    r.hset(keys.metrics("forecast"), mapping={"category.mae_ratio": 0.8, "series": 4})
