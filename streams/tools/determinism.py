"""``kairos bench --suite determinism``: the same events sent four ways must give the same views.

Kafka orders nothing across topics or partitions, and a shop's first act is a
backfill. This sends one seeded simulated shop through its own Tansu broker,
redis-server and one ``kairos worker`` in each of these arrival orders
(:data:`ARRIVALS`):

* ``topic-by-topic``: every click, then every order, payment and label (a backfill per topic);
* ``interleaved``: in event-time order, as fast as the producer goes;
* ``paced``: in event-time order at a steady rate;
* ``held-back``: in event-time order, except one topic sent ``held_days`` of event time late
  (one producer lagging behind the others);
* ``three-workers`` (on request): interleaved at full speed into three workers.

Each run is read back into comparable families (:func:`read_views`) and every
pair of runs is compared (:func:`compare`): customer views and ingest counters
exactly, the set of sales alerts (kind, subject, window), the traffic scopes' views (learned usual values
included), the traffic monitor's counts and the anomaly alert ids exactly, forecasts within 1 %,
labels learned against labels sent, risk AUC against the planted fraud, and
the share of customers served the same segment.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from streams.pipeline.keys import RedisKeys
from streams.settings import KairosSettings
from streams.tools.faults import Deployment, read_alert_ids, read_features, read_hashes, send_events

#: Topic order of a per-topic backfill.
TOPIC_ORDER = ("clicks", "orders", "payments", "labels", "inventory")
ARRIVALS = ("topic-by-topic", "interleaved", "paced", "held-back")
#: Not run by default: interleaved at full speed into three workers.
MORE_ARRIVALS = ("three-workers",)
#: Alert kinds the sales stage raises (the set compared between runs).
SALES_ALERT_KINDS = ("surge", "slump")
#: Forecast fields compared within :data:`FORECAST_TOLERANCE`.
FORECAST_FIELDS = ("next_window_start", "forecast_units", "forecast_revenue", "last_window_start", "last_units")
FORECAST_TOLERANCE = 0.01
#: Stock-out risk fields compared exactly (with inventory events).
STOCK_FIELDS = ("on_hand", "as_of", "counted_at", "hours_to_stockout", "hours_to_stockout_latest", "alerted_at")
#: The traffic monitor's counts compared exactly (with its scopes' views: counts, scores and learned usual values).
TRAFFIC_COUNTS = ("records", "late", "minutes_closed", "minutes_skipped", "scopes")
Event = tuple[str, str, Any]


def event_time(value: dict[str, Any]) -> float:
    """An event's ``ts`` in epoch seconds (the wire format takes numbers or ISO-8601 text)."""
    ts = value["ts"]
    if isinstance(ts, str):
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    return float(ts)


def arrange(events: list[Event], arrival: str, held_topic: str = "orders", held_days: float = 2.0) -> list[Event]:
    """``events`` (event-time order) in the order ``arrival`` sends them.

    >>> events = [("clicks", "c", {"ts": 1}), ("orders", "c", {"ts": 2}), ("clicks", "c", {"ts": 3})]
    >>> [e[2]["ts"] for e in arrange(events, "topic-by-topic")]
    [1, 3, 2]
    >>> [e[2]["ts"] for e in arrange(events, "held-back", held_topic="orders", held_days=1)]
    [1, 3, 2]
    """
    if arrival == "topic-by-topic":
        return sorted(events, key=lambda event: TOPIC_ORDER.index(event[0]))
    if arrival == "held-back":
        lag = held_days * 86_400.0
        return sorted(events, key=lambda event: event_time(event[2]) + (lag if event[0] == held_topic else 0.0))
    if arrival in ("interleaved", "paced", "three-workers"):
        return list(events)
    raise ValueError(f"unknown arrival {arrival!r}: choose from {', '.join(ARRIVALS)}")




def read_views(settings: KairosSettings) -> dict[str, Any]:
    """What a run served, as comparable families."""
    client = redis.Redis.from_url(settings.redis_dsn(), decode_responses=True, socket_timeout=10)
    keys = RedisKeys(settings.prefix)
    customers = read_hashes(client, keys.customer("*"), keys.customer(""))
    segments = {key[len(keys.segment_of("")):]: client.get(key) for key in client.scan_iter(keys.segment_of("*"))}
    risk_prefix = keys.risk_payment("")
    scores = {}
    for key in client.scan_iter(keys.risk_payment("*"), count=1000):
        view = client.hmget(key, "score", "mode")
        scores[key[len(risk_prefix):]] = (float(view[0]), view[1])
    forecasts = {}
    for key in client.scan_iter(keys.forecast("*", "*"), count=1000):
        view = client.hgetall(key)
        forecasts[f"{view.get('scope')}:{view.get('key')}"] = {name: view.get(name) for name in FORECAST_FIELDS}
    alert_ids = read_alert_ids(settings)
    sales_alerts = {alert for alert in alert_ids if alert.split(":", 1)[0] in SALES_ALERT_KINDS}
    stock = {sku: {name: view.get(name) for name in STOCK_FIELDS}
             for sku, view in read_hashes(client, keys.stock_sku("*"), keys.stock_sku("")).items()}
    monitor = client.hgetall(keys.metrics("anomaly"))
    return {
        "traffic": read_hashes(client, keys.anomaly("*", "*"), keys.anomaly("", "")[:-1]),
        "traffic_counts": {name: monitor.get(name) for name in TRAFFIC_COUNTS},
        "anomaly_alerts": {alert for alert in alert_ids if alert.startswith("anomaly:")},
        "stock": stock, "restock_alerts": {alert for alert in alert_ids if alert.startswith("restock:")},
        "customers": customers, "segments": segments, "scores": scores, "forecasts": forecasts,
        "sales_alerts": sales_alerts, "ingest": client.hgetall(keys.metrics("ingest")),
        "risk": client.hgetall(keys.metrics("risk")), "forecast_metrics": client.hgetall(keys.metrics("forecast")),
    }


def features_gap(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> tuple[int, float]:
    """Customers whose features differ in their fields, and the largest relative difference of a value."""
    differing, worst = 0, 0.0
    for customer in set(a) | set(b):
        x, y = a.get(customer), b.get(customer)
        if x is None or y is None or x.keys() != y.keys():
            differing += 1
            continue
        for name, p in x.items():
            q = y[name]
            if p is None or q is None:
                if p != q:
                    differing += 1
                    break
                continue
            worst = max(worst, abs(p - q) / max(abs(p), abs(q), 1e-12))
    return differing, worst


def _stable_part(views: dict[str, Any]) -> dict[str, Any]:
    risk = {name: value for name, value in views["risk"].items() if name.startswith("labels_")}
    return {name: value for name, value in views.items() if name not in ("risk", "forecast_metrics")} | {"risk": risk}


def settled_views(settings: KairosSettings, quiet: float | None = None, timeout: float = 180.0) -> dict[str, Any]:
    """The views once nothing in them changed for ``quiet`` seconds: by default longer than two segment sync
    rounds and than the sales stage waits for idle paths before it closes the last windows."""
    if quiet is None:
        quiet = max(4.0, 2 * settings.segment_sync_seconds + 1, settings.sales_idle_path_seconds + 5)
    deadline = time.monotonic() + timeout
    views, rounds = read_views(settings), segment_rounds(settings)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        # On a loaded machine the sync timer wakes late: stable means stable across two rounds actually run.
        while segment_rounds(settings) < rounds + 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        again, rounds_again = read_views(settings), segment_rounds(settings)
        waiting = int(again["risk"].get("labels_early_labels", 0))  # labels whose payment is still on its way
        if _stable_part(again) == _stable_part(views) and not waiting:
            return again
        views, rounds = again, rounds_again
    return views


def segment_rounds(settings: KairosSettings) -> int:
    """Segment sync rounds the workers have run (as last reported in the segments metrics)."""
    client = redis.Redis.from_url(settings.redis_dsn(), decode_responses=True, socket_timeout=10)
    try:
        return int(client.hget(RedisKeys(settings.prefix).metrics("segments"), "sync_rounds") or 0)
    finally:
        client.close()


def roc_auc(scores: dict[str, tuple[float, str]], fraud: set[str]) -> float | None:
    """AUC of the served scores (cold start or model) against the planted fraud."""
    from sklearn.metrics import roc_auc_score

    scored = [(score, payment in fraud) for payment, (score, _) in scores.items()]
    if len({truth for _, truth in scored}) < 2:
        return None
    return float(roc_auc_score([truth for _, truth in scored], [score for score, _ in scored]))


def _relative_gap(a: str | None, b: str | None) -> float:
    if a is None or b is None:
        return 0.0 if a == b else float("inf")
    try:
        x, y = json.loads(a), json.loads(b)
    except ValueError:
        return 0.0 if a == b else float("inf")
    xs, ys = (x, y) if isinstance(x, list) else ([x], [y])
    if len(xs) != len(ys):
        return float("inf")
    gaps = [abs(p - q) / max(abs(p), abs(q), 1.0) for p, q in zip(xs, ys)]
    return max(gaps, default=0.0)


@dataclass
class RunSummary:
    arrival: str
    events: int
    counted: int
    seconds: float
    labels_sent: int
    labels_learned: int
    labels_discarded: int
    scored_by_model: int
    auc: float | None
    sales_alerts: int
    views: dict[str, Any]

    def row(self) -> str:
        auc = "–" if self.auc is None else f"{self.auc:.3f}"
        return (f"| {self.arrival} | {self.counted:,}/{self.events:,} | {self.labels_learned:,}/{self.labels_sent:,} "
                f"| {self.labels_discarded:,} | {self.scored_by_model:,} | {auc} | {self.sales_alerts} "
                f"| {self.seconds:.0f} s |")


def summarise(arrival: str, views: dict[str, Any], events: list[Event], counted: int, seconds: float,
              fraud: set[str]) -> RunSummary:
    risk = views["risk"]
    learned = sum(int(risk.get(f"labels_{name}", 0)) for name in ("labelled", "corrected", "confirmed"))
    discarded = sum(int(risk.get(f"labels_{name}", 0)) for name in ("late", "unmatched"))
    return RunSummary(
        arrival, len(events), counted, seconds,
        labels_sent=sum(1 for topic, _, _ in events if topic == "labels"), labels_learned=learned,
        labels_discarded=discarded,
        scored_by_model=sum(1 for _, mode in views["scores"].values() if mode == "model"),
        auc=roc_auc(views["scores"], fraud), sales_alerts=len(views["sales_alerts"]), views=views)


def compare(a: RunSummary, b: RunSummary) -> dict[str, Any]:
    """How two runs of the same events differ, family by family."""
    va, vb = a.views, b.views
    customers = sum(va["customers"].get(k) != vb["customers"].get(k) for k in set(va["customers"]) | set(vb["customers"]))
    both = set(va["segments"]) & set(vb["segments"])
    everyone = set(va["segments"]) | set(vb["segments"])
    # Segment ids are stable within a run; across runs the same segment may carry another id, so agreement
    # is measured after matching ids by their largest overlap.
    pairs: dict[tuple[str, str], int] = {}
    for customer in both:
        pair = (va["segments"][customer], vb["segments"][customer])
        pairs[pair] = pairs.get(pair, 0) + 1
    matched, used_a, used_b = 0, set(), set()
    for (sa, sb), n in sorted(pairs.items(), key=lambda item: -item[1]):
        if sa not in used_a and sb not in used_b:
            matched += n
            used_a.add(sa)
            used_b.add(sb)
    forecast_keys = set(va["forecasts"]) | set(vb["forecasts"])
    gaps = [(_relative_gap(va["forecasts"].get(k, {}).get(f), vb["forecasts"].get(k, {}).get(f)), k, f)
            for k in sorted(forecast_keys) for f in FORECAST_FIELDS]
    worst, worst_series, worst_field = max(gaps, default=(0.0, None, None))
    feature_fields, feature_gap = features_gap(va.get("features", {}), vb.get("features", {}))
    return {
        "customers_differing": customers,
        "features_differing": feature_fields,
        "features_worst_relative_gap": feature_gap,
        "ingest_equal": va["ingest"] == vb["ingest"],
        "sales_alerts_symmetric_difference": len(va["sales_alerts"] ^ vb["sales_alerts"]),
        "stock_differing": sum(va["stock"].get(k) != vb["stock"].get(k) for k in set(va["stock"]) | set(vb["stock"])),
        "restock_alerts": (len(va["restock_alerts"]), len(vb["restock_alerts"])),
        "restock_alerts_symmetric_difference": len(va["restock_alerts"] ^ vb["restock_alerts"]),
        "traffic_scopes_differing": sum(va["traffic"].get(k) != vb["traffic"].get(k)
                                        for k in set(va["traffic"]) | set(vb["traffic"])),
        "traffic_counts": [va["traffic_counts"], vb["traffic_counts"]],
        "anomaly_alerts_symmetric_difference": len(va["anomaly_alerts"] ^ vb["anomaly_alerts"]),
        "forecast_series": (len(va["forecasts"]), len(vb["forecasts"])),
        "forecast_worst_relative_gap": worst,
        "forecast_worst": None if not worst else [worst_series, worst_field, va["forecasts"].get(worst_series),
                                                  vb["forecasts"].get(worst_series)],
        "late": [{name: v["forecast_metrics"].get(name) for name in ("late_events", "late_views", "late_corrections")}
                 for v in (va, vb)],
        "auc_gap": None if a.auc is None or b.auc is None else abs(a.auc - b.auc),
        "segment_agreement": matched / len(everyone) if everyone else 1.0,
    }


def run_arrival(arrival: str, events: list[Event], workdir: Path, rate: float, workers: int = 1,
                settle_timeout: float = 120.0, **overrides: Any) -> tuple[dict, int]:
    """Send ``events`` as ``arrival`` orders them to a fresh deployment; its views once every event is counted
    and the views stopped changing (idle paths release the last windows).

    ``topic-by-topic`` is a backfill: the events are in Kafka before the worker starts (a per-topic export
    replayed, a new deployment or a consumer group reset reading from the earliest offset). The other
    arrivals are sent to a running worker.
    """
    deployment = Deployment.start(workdir, appendonly=False, **overrides)
    try:
        backfill = arrival == "topic-by-topic"
        if backfill:
            send_events(deployment.settings, events, rate)
        for _ in range(workers):
            deployment.start_worker()
        deployment.wait_ready()
        if not backfill:
            send_events(deployment.settings, events, rate, lambda sent: deployment.restart_exited())
        last, moved = -1, time.monotonic()
        while time.monotonic() - moved < settle_timeout:
            counted = deployment.counted()
            if counted != last:
                last, moved = counted, time.monotonic()
            if counted >= len(events):
                break
            time.sleep(0.5)
        views = settled_views(deployment.settings)
        views["features"] = read_features(deployment.settings)
        (workdir / "views.json").write_text(json.dumps(views, default=sorted))
        return views, deployment.counted()
    finally:
        deployment.close()


def run_determinism(events: list[Event], fraud: set[str], workdir: Path, paced_rate: float,
                    arrivals: tuple[str, ...] = ARRIVALS, held_topic: str = "orders", held_days: float = 2.0,
                    report: Callable[[str], None] = print, **overrides: Any) -> tuple[list[RunSummary], list[dict]]:
    """Every arrival of ``events``, then every pair compared."""
    summaries = []
    for arrival in arrivals:
        started = time.monotonic()
        ordered = arrange(events, arrival, held_topic, held_days)
        rate = paced_rate if arrival == "paced" else 1e9
        views, counted = run_arrival(arrival, ordered, workdir / arrival, rate,
                                     workers=3 if arrival == "three-workers" else 1, **overrides)
        summary = summarise(arrival, views, events, counted, time.monotonic() - started, fraud)
        report(summary.row())
        summaries.append(summary)
    comparisons = []
    for a, b in itertools.combinations(summaries, 2):
        found = {"pair": f"{a.arrival} / {b.arrival}", **compare(a, b)}
        report(json.dumps(found))
        comparisons.append(found)
    return summaries, comparisons


TABLE_HEADER = ("| arrival | counted | labels learned/sent | labels late or unmatched | payments scored by the model "
                "| risk AUC (served scores vs planted fraud) | sales alerts | run |\n|---|---|---|---|---|---|---|---|")
