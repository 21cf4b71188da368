"""Evaluate the traffic anomaly alerts on simulated shops with planted incidents.

Run ``python -m streams.tools.evaluation.anomaly`` (``--help`` for options), or
``kairos bench --suite anomaly``. Each shop (one seed) is simulated with
five incidents of the five kinds (``streams.tools.simulation.incidents``:
bot burst, gateway failure, checkout break, card-testing wave, broken
producer); its events go through the stage's own path: validated (a reject
is a dead letter, dated at its topic's latest event time, as the stage dates
it at its path's), duplicates dropped by event id, a payment's ``new_device``
read from its customer's :class:`~models.risk.features.PaymentHistory`, the
traffic record built by :func:`~streams.pipeline.stages.anomaly.traffic_record`,
then into a :class:`~models.anomaly.TrafficMonitor` advanced to each event's
time (the stream is in event-time order).

Scoring, per incident: **caught** when an alert (any scope) is raised for a
minute that ends at most ``--within`` seconds (300) after the incident's start
(and does not end before it); ``delay`` is that minute's end minus the start.
**Other alerts** are alerts of minutes outside every incident (from its
start's minute to 15 minutes after its end), per simulated day.

Two batch answers over the same shop-wide per-minute signals (the seven
signals over 1 and 5 minutes, as the detector scores them), with hindsight:
scikit-learn's ``IsolationForest`` fitted on the whole stream, and River's
``HalfSpaceTrees`` run progressively (score, then learn; inputs min-max
scaled). Each flags the minutes of its top-scored fraction ``q``, with ``q``
the largest of a grid that keeps other alerts at most 1 per day (chosen on
the results: an upper bound of what a threshold could do), and the flagged
minutes become alerts with the same episode rule as the monitor's.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from models.anomaly import SIGNALS, TrafficMonitor
from models.risk.features import PaymentHistory
from streams.pipeline.stages.anomaly import traffic_record
from streams.pipeline.validation import EventValidator
from streams.tools.simulation import ShopSimulator, SimulatorConfig

MINUTE = 60.0
#: Event ids remembered to drop redeliveries (as the customers stage's per-customer window does).
RECENT_IDS = 100_000
#: Minutes after an incident's end whose alerts still belong to it.
AFTERMATH = 15
#: Fractions of minutes the batch answers may flag (the grid their threshold is chosen from).
QUANTILES = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02)


@dataclass
class ShopRun:
    """One shop's records, planted incidents, days, and the shop-wide per-minute counts the monitor closed."""

    seed: int
    records: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    days: float
    minutes: list[tuple[float, dict[str, float]]] = field(default_factory=list)


def shop_records(seed: int, customers: int, days: float, incidents: int, chaos: float) -> ShopRun:
    """Simulate a shop and turn its stream into traffic records, as the pipeline would."""
    simulator = ShopSimulator(SimulatorConfig(seed=seed, customers=customers, days=days, incidents=incidents,
                                              chaos=chaos))
    validator = EventValidator(1 << 20)
    histories: dict[str, PaymentHistory] = {}
    recent: OrderedDict[str, None] = OrderedDict()
    latest: dict[str, float] = {}
    records = []
    for event in simulator.events():
        if event.topic == "labels":
            continue
        raw = event.value if isinstance(event.value, bytes) else orjson.dumps(event.value)
        record = validator.check(event.topic, raw).record
        if record is None:
            if event.topic in latest:
                records.append({"ts": latest[event.topic], "kind": "dead"})
            continue
        latest[event.topic] = max(latest.get(event.topic, record["ts"]), record["ts"])
        if record["event_id"] in recent:
            continue
        recent[record["event_id"]] = None
        if len(recent) > RECENT_IDS:
            recent.popitem(last=False)
        new_device = False
        if event.topic == "payments":
            history = histories.setdefault(record["customer_id"], PaymentHistory())
            new_device = bool(history.features(record)["new_device"])
            history.update(record)
        traffic = traffic_record(event.topic, record, new_device)
        if traffic is not None:
            records.append(traffic)
    return ShopRun(seed, records, simulator.ground_truth()["incidents"], days)


def run_monitor(shop: ShopRun, threshold: float, scopes: Iterable[str], scope_threshold: float | None = None,
                signal_thresholds: dict[str, float] | None = None) -> list[tuple[str, float, list[str]]]:
    """The alerts ``(scope, minute, reasons)`` of a monitor fed the shop's records in order; keeps the shop-wide
    minutes' counts in ``shop.minutes``."""
    monitor = TrafficMonitor(scopes=tuple(scopes), scope_threshold=scope_threshold,
                             detector={"threshold": threshold, "signal_thresholds": signal_thresholds or {}})
    alerts, shop.minutes = [], []
    current = -math.inf

    def advance(mark: float) -> None:
        update = monitor.advance(mark)
        alerts.extend((a.scope, a.minute, a.reasons()) for a in update.alerts)
        if "all:all" in update.views:  # only the latest closed minute is in a view: advance minute by minute
            view = update.views["all:all"]
            shop.minutes.append((view["minute"], {k[6:]: v for k, v in view.items() if k.startswith("count_")}))

    for record in shop.records:
        minute = math.floor(record["ts"] / MINUTE)
        if minute > current:
            for step in range(int(min(minute - current, 10_000)) if math.isfinite(current) else 0):
                advance((current + step + 1) * MINUTE + monitor.allowed_lateness)
            current = minute
        monitor.add(record)
    advance(current * MINUTE + MINUTE + monitor.allowed_lateness)
    return alerts


def score_alerts(alerts: list[tuple[str, float, list[str]]], incidents: list[dict[str, Any]],
                 within: float) -> dict[str, Any]:
    """Caught incidents (with delays) and the alerts outside every incident."""
    caught, delays, per_kind = 0, [], {}
    for incident in incidents:
        start = incident["start_ts"]
        ends = sorted(minute + MINUTE for _, minute, _ in alerts if 0 <= minute + MINUTE - start <= within)
        hit = bool(ends)
        caught += hit
        if hit:
            delays.append(ends[0] - start)
        ok, total = per_kind.get(incident["kind"], (0, 0))
        per_kind[incident["kind"]] = (ok + hit, total + 1)
    others = [a for a in alerts if not any(
        i["start_ts"] <= a[1] + MINUTE and a[1] <= i["end_ts"] + AFTERMATH * MINUTE for i in incidents)]
    return {"incidents": len(incidents), "caught": caught, "delays": delays, "per_kind": per_kind, "others": others}


def signal_matrix(minutes: list[tuple[float, dict[str, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Per shop-wide minute: the seven signals over 1 and 5 minutes (rates 0 without support); and the minutes."""
    starts = np.array([m for m, _ in minutes])
    rows = []
    for i in range(len(minutes)):
        row = []
        for span in (1, 5):
            window = [counts for _, counts in minutes[max(0, i - span + 1):i + 1]]
            total = {name: sum(c.get(name, 0) for c in window) for name in window[0]}
            for signal in sorted(SIGNALS):
                numerator, denominator, _ = SIGNALS[signal]
                if denominator is None:
                    row.append(total[numerator] / len(window))
                else:
                    row.append(total[numerator] / total[denominator] if total[denominator] else 0.0)
        rows.append(row)
    return np.array(rows), starts


def flagged_alerts(starts: np.ndarray, scores: np.ndarray, q: float, gap: int = 10) -> list[tuple[str, float, list]]:
    """The top-``q`` scored minutes as alerts, one per episode (a flagged minute more than ``gap`` after the last)."""
    cut = np.quantile(scores, 1 - q)
    alerts, last = [], -math.inf
    for minute, score in zip(starts, scores):
        if score >= cut:
            if minute - last > gap * MINUTE:
                alerts.append(("all:all", float(minute), []))
            last = minute
    return alerts


def isolation_forest_scores(matrix: np.ndarray) -> np.ndarray:
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=200, random_state=0).fit(matrix)
    return -forest.score_samples(matrix)


def half_space_trees_scores(matrix: np.ndarray) -> np.ndarray:
    from river import anomaly, compose, preprocessing

    model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(n_trees=25, height=8,
                                                                                   window_size=250, seed=0))
    scores = []
    for row in matrix:
        x = {f"f{i}": float(v) for i, v in enumerate(row)}
        scores.append(model.score_one(x))
        model.learn_one(x)
    return np.array(scores)


def summarise(name: str, results: list[dict[str, Any]], days: float) -> dict[str, Any]:
    incidents = sum(r["incidents"] for r in results)
    caught = sum(r["caught"] for r in results)
    delays = [d for r in results for d in r["delays"]]
    others = sum(len(r["others"]) for r in results)
    per_kind: dict[str, list[int]] = {}
    for r in results:
        for kind, (ok, total) in r["per_kind"].items():
            per_kind.setdefault(kind, [0, 0])
            per_kind[kind][0] += ok
            per_kind[kind][1] += total
    return {"method": name, "incidents": incidents, "caught_within": caught,
            "caught_share": round(caught / incidents, 3) if incidents else None,
            "median_delay_s": round(float(np.median(delays)), 1) if delays else None,
            "max_delay_s": round(max(delays), 1) if delays else None,
            "other_alerts": others, "other_alerts_per_day": round(others / days, 2),
            "per_kind": {kind: f"{ok}/{total}" for kind, (ok, total) in sorted(per_kind.items())}}


def batch_best(name: str, shops: list[tuple[ShopRun, np.ndarray, np.ndarray]], scorer: Any, within: float,
               days: float) -> dict[str, Any]:
    """A batch answer at the largest fraction of flagged minutes that keeps other alerts ≤ 1 per day."""
    scored = [(shop, starts, scorer(matrix)) for shop, matrix, starts in shops]
    best = None
    for q in QUANTILES:
        results = [score_alerts(flagged_alerts(starts, scores, q), shop.incidents, within)
                   for shop, starts, scores in scored]
        summary = summarise(f"{name} (q={q})", results, days)
        if best is None or summary["other_alerts_per_day"] <= 1.0:
            best = summary
    return best


def evaluate(seeds: list[int], customers: int, days: float, incidents: int, chaos: float,
             thresholds: list[float], scope_threshold: float | None, within: float, compare: bool,
             conversion_threshold: float | None = None, report: Any = print) -> list[dict[str, Any]]:
    """The summaries of the monitor (every scope, and shop-wide only) per threshold, and the batch answers."""
    results: dict[tuple[float, str], list[dict[str, Any]]] = {}
    examples: list[str] = []
    shops = []
    started = time.perf_counter()
    for seed in seeds:
        shop = shop_records(seed, customers, days, incidents, chaos)
        for threshold in thresholds:
            fed = time.perf_counter()
            alerts = run_monitor(shop, threshold, ("all", "category", "country", "method"), scope_threshold,
                                 {"conversion_rate": conversion_threshold} if conversion_threshold else None)
            elapsed = time.perf_counter() - fed
            for label, chosen in (("all scopes", alerts), ("shop-wide", [a for a in alerts if a[0] == "all:all"])):
                results.setdefault((threshold, label), []).append(score_alerts(chosen, shop.incidents, within))
            if threshold == thresholds[0]:
                examples += [f"seed {seed} {scope} {time.strftime('%H:%M', time.gmtime(minute))}: {reasons[0]}"
                             for scope, minute, reasons in alerts[:3]]
        report(f"seed {seed}: {len(shop.records):,} records, {len(shop.incidents)} incidents, monitor "
               f"{len(shop.records) / elapsed:,.0f} records/s ({time.perf_counter() - started:.0f} s so far)")
        if compare:
            matrix, starts = signal_matrix(shop.minutes)
            shops.append((shop, matrix, starts))
        shop.records = []
    total_days = days * len(seeds)
    conversion = f", conversion {conversion_threshold}" if conversion_threshold else ""
    summaries = [summarise(f"TrafficMonitor threshold {t}{conversion} ({label})", r, total_days)
                 for (t, label), r in results.items()]
    if compare:
        summaries.append(batch_best("scikit-learn IsolationForest, batch, shop-wide", shops,
                                    isolation_forest_scores, within, total_days))
        summaries.append(batch_best("River HalfSpaceTrees, progressive, shop-wide", shops,
                                    half_space_trees_scores, within, total_days))
    for summary in summaries:
        report(json.dumps(summary))
    report("example alerts: " + json.dumps(examples[:6], indent=1))
    return summaries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--incidents", type=int, default=5)
    parser.add_argument("--chaos", type=float, default=0.002, help="share of background bad messages/redeliveries")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[5.0])
    parser.add_argument("--scope-threshold", type=float, default=7.0,
                        help="threshold of the category/country/method scopes (0: the shop-wide one)")
    parser.add_argument("--conversion-threshold", type=float, default=4.5,
                        help="threshold of the shop-wide conversion rate (0: the shop-wide one)")
    parser.add_argument("--within", type=float, default=300.0)
    parser.add_argument("--no-compare", dest="compare", action="store_false")
    args = parser.parse_args(argv)
    evaluate(args.seeds, args.customers, args.days, args.incidents, args.chaos, args.thresholds,
             args.scope_threshold or None, args.within, args.compare, args.conversion_threshold or None)


if __name__ == "__main__":
    main()
