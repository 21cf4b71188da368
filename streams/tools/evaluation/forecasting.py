"""Evaluate the sales forecasters and surge alerts on replayed orders.

Run ``python -m streams.tools.evaluation.forecasting`` (``--help`` for options).
Orders go through :class:`~models.forecasting.SalesMonitor` exactly as the
stream feeds it (add each order record, advance the watermark to its event
time), with hourly windows and a 24-window season, and the report gives:

- per scope (``total``, ``category``, ``sku``) the units forecasters' progressive
  MAE and sMAPE after a one-week warm-up, pooled over the scope's series (sums
  of absolute errors), next to seasonal-naive's on the same windows, and their
  ratio ``mae_ratio`` (below 1: the model beats seasonal-naive);
- on the simulator, per planted surge: the alerts on its series during the
  surge, how many windows after the one holding its start the first came
  (``delay``: 0 = that window; an alert raised while a window is open counts
  for that window), and ``ok`` when exactly one came with delay at most 1
  (within two windows of the start); ``echo_alerts`` on series the surge
  really moved (the total, the SKU's category, the category's SKUs);
  ``other_alerts`` for everything else (false alerts, though a surge's extra
  orders also carry other items, so a few fall during surges), over
  ``alert_days`` (alerts start once a forecaster has two days of residuals),
  and ``other_alerts_per_day``;
- with ``--seeds``, the surges caught within two windows, the other alerts
  per day and the drift alerts over several simulated shops
  (:func:`evaluate_surges`; ``--surges 0`` plants none);
- with ``--compare``, the candidate models the forecaster was chosen from,
  on the same hourly series;
- per scope (``river``), the share of the units forecasters' scored windows
  whose point forecast was River's Holt-Winters, River Page-Hinkley's
  drift signals on units (``drift_signals``), and the drifts the monitor
  reports, one per series and change over units, revenue and views: the
  stream's ``drift`` alerts (``drift_alerts``);
- with ``--drift``, the drift signals on simulated hourly series
  (:func:`evaluate_drift`): steady ones (false signals) and ones whose daily
  shape moves six hours (found, and how many windows later).

**Online Retail** (``../shared/datasets/online-retail-2010-12``, a UK online
wholesaler, 2010-12-01 to 12-23): invoices become orders (``ts`` the invoice
minute, read as UTC: December in the UK is GMT); cancellations (``C…``),
non-positive quantities and non-product codes (postage, manual, bank charges,
fees) are dropped. The data has no categories, so the **category is derived
from the description's last word** (the product noun: ``HOLDER``, ``BOTTLE``,
``BAG``, ``MUG`` …), lower-cased, for the 30 most frequent last words of the
month; lines with any other last word form the category ``other`` (a shop
would map its catalog to a few dozen categories; 700 raw last words would
make hundreds of near-empty series). ``total:all`` is the shop total. The shop
sells 07:00–20:00 only, on no Saturday, and little on Sundays: seasonal-naive
(yesterday's same hour) misses every Sunday and Monday, while the forecaster's
day-of-week factors learn them only from the few weeks the month has.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from models.forecasting import (
    Alert,
    ForecastErrors,
    SalesForecaster,
    SalesMonitor,
    SalesWindows,
    SeasonalNaive,
    SurgeDetector,
)
from streams.pipeline.stages.sales import sales_view
from streams.pipeline.validation import EventValidator
from streams.tools.simulation import ShopSimulator, SimulatorConfig

HOUR = 3600.0
DAY_WINDOWS = 24
WEEK_WINDOWS = 7 * DAY_WINDOWS
DEFAULT_RETAIL = Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets" / "online-retail-2010-12"
#: Online Retail stock codes that are not products.
NOT_PRODUCTS = frozenset({"POST", "DOT", "M", "D", "C2", "S", "B", "CRUK", "PADS", "AMAZONFEE", "BANK CHARGES"})
SCOPES = ("total", "category", "sku")


def hourly_monitor(top_skus: int = 50, warmup: int = WEEK_WINDOWS) -> SalesMonitor:
    """The monitor the evaluations use: hourly windows, a 24-hour season, default forecaster and detector."""
    return SalesMonitor(
        SalesWindows(size=HOUR, top_skus=top_skus),
        SalesForecaster(window_size=HOUR, season_length=DAY_WINDOWS, warmup=warmup),
        SurgeDetector(),
    )


def replay(orders: Iterable[dict[str, Any]], monitor: SalesMonitor, end: float | None = None,
           drifts: list[dict[str, Any]] | None = None) -> list[Alert]:
    """Feed order records (and product view records) in stream order, advancing after each; at the end close
    every window before ``end``. Returns the alerts; the drifts reported go to ``drifts`` if given.

    A view record has ``"view": True`` (see :func:`simulator_records`). ``end``
    defaults to the end of the last record's window.
    """
    alerts: list[Alert] = []
    reported = [] if drifts is None else drifts
    last_ts = 0.0
    for record in orders:
        if record.get("view"):
            monitor.add_view(record)
        else:
            monitor.add_order(record)
        update = monitor.advance(views=False)  # nothing is served here: no views to build
        alerts.extend(update.alerts)
        reported.extend(update.drifts)
        last_ts = record["ts"]
    update = monitor.advance(_window_end(last_ts) if end is None else end)
    alerts.extend(update.alerts)
    reported.extend(update.drifts)
    return alerts


def _window_end(ts: float) -> float:
    """End of the hourly window holding ``ts``."""
    return ts // HOUR * HOUR + HOUR


def river_report(monitor: SalesMonitor, drifts: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per scope: the share of scored units windows whose point was River's Holt-Winters, the units forecasters'
    drift signals, and the drifts reported (``drifts``, from :func:`replay`: the stream's drift alerts)."""
    report = {}
    for scope in SCOPES:
        units = [models["units"] for series, models in monitor._forecasters.items() if series.startswith(scope + ":")]
        windows = sum(model.metrics().get("windows", 0) for model in units)
        if windows:
            report[scope] = {
                "holt_winters_share": round(sum(model.metrics().get("holt_winters_windows", 0) for model in units) / windows, 3),
                "drift_signals": sum(model.drifts for model in units),
                "drift_alerts": sum(drift["series"].startswith(scope + ":") for drift in drifts),
            }
    return report


def _drift_line(drift: dict[str, Any]) -> str:
    """One reported drift as a line: series, measure, window (UTC) and the error before and after."""
    window = datetime.fromtimestamp(drift["window_start"], timezone.utc).strftime("%Y-%m-%d %H:%M")
    return f"{drift['series']} {drift['measure']} {window} {drift['before']:.2f} -> {drift['after']:.2f}"


def scope_report(monitor: SalesMonitor) -> dict[str, dict[str, float]]:
    """Pooled units errors per scope, and the number of series behind each."""
    report = {}
    for scope in SCOPES:
        errors = monitor.pooled_errors(scope).as_dict()
        if errors:
            series = sum(s.startswith(scope + ":") for s in monitor.windows.series)
            report[scope] = {"series": series} | {k: round(v, 4) for k, v in errors.items()}
    return report


# -- the simulator ---------------------------------------------------------------------


def simulator_orders(simulator: ShopSimulator) -> Iterator[dict[str, Any]]:
    """The simulator's valid orders as records, validated as the stream validates them."""
    return (record for record in simulator_records(simulator) if not record.get("view"))


def simulator_records(simulator: ShopSimulator) -> Iterator[dict[str, Any]]:
    """The simulator's valid orders, and its product views as ``{"view": True, "ts", "sku", "category"}``.

    Both are validated as the stream validates them; a view is what the
    customers stage sends the sales stage for a ``view`` click.
    """
    validator = EventValidator(max_bytes=1 << 20)
    for event in simulator.events():
        if event.topic not in ("orders", "clicks") or not isinstance(event.value, dict):
            continue
        if event.topic == "clicks" and (event.value.get("action") != "view" or not event.value.get("sku")):
            continue
        record = validator.check(event.topic, json.dumps(event.value).encode()).record
        if record is None:
            continue
        if event.topic == "orders":
            yield record
        else:
            yield sales_view(record) | {"view": True}


def surge_evidence(
    truth: list[dict[str, Any]], counts: list[int], active_days: Callable[[float, float], float],
    window: float = HOUR, windows: int = 2,
) -> list[float]:
    """Per planted surge, the most evidence of it its series' first ``windows`` windows hold.

    ``counts[i]`` is the number of orders holding surge ``i``'s item (its SKU,
    or a SKU of its category) in those windows, the first being the one
    holding its start. The evidence is the log-likelihood ratio of those
    orders under the surge against under no surge, both known exactly from
    the simulator (``usual_orders_per_active_day``, ``factor`` and the shop's
    activity between two instants, ``active_days``): a Poisson test told the
    surge's start and size, the best any detector can do. It is on the scale
    of :class:`~models.forecasting.SurgeDetector`'s ``threshold``, which the
    detector's own evidence (not told the size, and divided by the series'
    dispersion) must reach.
    """
    evidence = []
    for surge, orders in zip(truth, counts):
        start = datetime.fromisoformat(surge["start"]).timestamp()
        first, end = start - start % window, datetime.fromisoformat(surge["end"]).timestamp()
        horizon = first + windows * window
        usual = surge["usual_orders_per_active_day"] * active_days(first, horizon)
        extra = surge["usual_orders_per_active_day"] * (surge["factor"] - 1) * active_days(start, min(end, horizon))
        evidence.append(orders * math.log((usual + extra) / usual) - extra if usual > 0 else 0.0)
    return evidence


def _count_surge_orders(
    orders: Iterable[dict[str, Any]], truth: list[dict[str, Any]], counts: list[int], window: float = HOUR,
    windows: int = 2,
) -> Iterator[dict[str, Any]]:
    """Pass ``orders`` through, counting in ``counts`` those holding each surge's item in its first windows."""
    spans = []
    for surge in truth:
        start = datetime.fromisoformat(surge["start"]).timestamp()
        spans.append((start - start % window, start - start % window + windows * window, surge))
    for order in orders:
        if order.get("view"):
            yield order
            continue
        for i, (begin, end, surge) in enumerate(spans):
            if begin <= order["ts"] < end and any(
                line.get(surge["scope"]) == surge["key"]
                for line in order["lines"]
            ):
                counts[i] += 1
        yield order


def score_surges(
    truth: list[dict[str, Any]], alerts: list[Alert], category_of: dict[str, str], window: float = HOUR,
    alert_days: float | None = None, evidence: list[float] | None = None, threshold: float | None = None,
) -> dict[str, Any]:
    """Match alerts to planted surges; count the other alerts per scope and kind (and per day, given ``alert_days``).

    With ``evidence`` (see :func:`surge_evidence`) and ``threshold``, each
    surge also says how much evidence its first two windows' orders held and
    whether it reached the threshold (``in_data``). ``interest`` is the views'
    evidence the first alert carried, and ``led_by`` what raised it (``orders``
    or ``views``, see :class:`~models.forecasting.SurgeDetector`).

    An alert on a series *related* to a surge during it (the total, the surging
    SKU's category, a SKU of the surging category) is an ``echo``: the surge
    really moved that series too. Every other alert is counted in ``other_alerts``.
    """
    surges, matched, echoes = [], set(), 0
    for index, surge in enumerate(truth):
        series = f"{surge['scope']}:{surge['key']}"
        start = datetime.fromisoformat(surge["start"]).timestamp()
        end = datetime.fromisoformat(surge["end"]).timestamp()
        first_window = start - start % window
        during = [a for a in alerts if a.kind == "surge" and first_window <= a.window_start < end]
        hits = [a for a in during if a.series == series]
        related = [a for a in during if a.series != series and _related(a.series, surge, category_of)]
        matched.update(id(a) for a in hits + related)
        echoes += len(related)
        delay = round((hits[0].window_start - first_window) / window) if hits else None
        surges.append(
            {"series": series, "start": surge["start"], "hours": round((end - start) / HOUR, 1),
             "factor": surge["factor"], "alerts": len(hits), "delay": delay,
             "ok": len(hits) == 1 and delay is not None and delay <= 1,
             "interest": round(hits[0].interest, 2) if hits else None,
             "led_by": hits[0].led_by if hits else None}
        )
        if evidence is not None and threshold is not None:
            surges[-1] |= {"evidence": round(evidence[index], 2), "in_data": evidence[index] >= threshold}
    others: dict[str, int] = {}
    for alert in alerts:
        if id(alert) not in matched:
            name = f"{alert.series.partition(':')[0]} {alert.kind}"
            others[name] = others.get(name, 0) + 1
    report = {"surges": surges, "echo_alerts": echoes, "other_alerts": dict(sorted(others.items()))}
    if alert_days:
        report["other_alerts_per_day"] = round(sum(others.values()) / alert_days, 2)
    return report


def _related(series: str, surge: dict[str, Any], category_of: dict[str, str]) -> bool:
    scope, _, key = series.partition(":")
    if scope == "total":
        return True
    if surge["scope"] == "sku":
        return scope == "category" and category_of.get(surge["key"]) == key
    return scope == "sku" and category_of.get(key) == surge["key"]


def evaluate_simulator(
    seed: int = 7, customers: int = 2000, days: float = 28.0, surges: int = 4, warmup_days: int = 7
) -> dict[str, Any]:
    """Replay a simulated shop through the monitor; errors per scope and planted surges against alerts."""
    config = SimulatorConfig(seed=seed, customers=customers, days=days, surges=surges)
    simulator = ShopSimulator(config)
    monitor = hourly_monitor(warmup=warmup_days * DAY_WINDOWS)
    truth = simulator.ground_truth()["surges"]
    counts = [0] * len(truth)
    drifts: list[dict[str, Any]] = []
    alerts = replay(_count_surge_orders(simulator_records(simulator), truth, counts), monitor, end=config.end_ts,
                    drifts=drifts)
    evidence = surge_evidence(truth, counts, simulator.clock.active_days)
    alert_days = round(days - 2, 1)
    return {
        "source": f"simulator seed={seed} customers={customers} days={days:g} surges={surges}",
        "windows": f"hourly, season 24, warm-up {warmup_days} days",
        "scopes": scope_report(monitor),
        "river": river_report(monitor, drifts),
        "drift_alerts": [_drift_line(drift) for drift in drifts],
        "alert_days": alert_days,
    } | score_surges(truth, alerts, simulator.catalog.category, alert_days=alert_days, evidence=evidence,
                     threshold=monitor.detector.threshold)


def evaluate_surges(seeds: list[int], customers: int = 2000, days: float = 28.0, surges: int = 4) -> dict[str, Any]:
    """Planted surges caught within two windows, and other alerts per day, over one simulated shop per seed."""
    runs = [evaluate_simulator(seed, customers, days, surges) for seed in seeds]
    planted = [surge for run in runs for surge in run["surges"]]
    other = sum(sum(run["other_alerts"].values()) for run in runs)
    return {
        "source": f"simulator customers={customers} days={days:g} surges={surges} seeds={seeds}",
        "within_two_windows": sum(surge["ok"] for surge in planted),
        "surges": len(planted),
        "within_two_windows_of_those_in_data": sum(surge["ok"] for surge in planted if surge["in_data"]),
        "in_data": sum(surge["in_data"] for surge in planted),
        "other_alerts_per_day": round(other / sum(run["alert_days"] for run in runs), 2),
        "drift_alerts": sum(len(run["drift_alerts"]) for run in runs),
        "per_seed": [{"source": run["source"], "surges": run["surges"], "other_alerts": run["other_alerts"],
                      "drift_alerts": run["drift_alerts"]} for run in runs],
    }


# -- Online Retail ----------------------------------------------------------------------


def _product_rows(folder: Path) -> Iterator[dict[str, str]]:
    """The month's CSV rows in file order, products only (no cancellations, returns or fees)."""
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                cancelled = row["InvoiceNo"].startswith("C") or int(row["Quantity"]) <= 0
                if not cancelled and row["StockCode"] not in NOT_PRODUCTS:
                    yield row


def _last_word(row: dict[str, str]) -> str:
    words = row["Description"].split()
    return words[-1].lower() if words else "other"


def online_retail_orders(folder: Path, categories: int = 30) -> list[dict[str, Any]]:
    """The month's invoices as order records (see the module docstring for the mapping)."""
    rows = list(_product_rows(folder))
    counts: dict[str, int] = {}
    for row in rows:
        counts[_last_word(row)] = counts.get(_last_word(row), 0) + 1
    kept = set(sorted(counts, key=lambda word: (-counts[word], word))[:categories])
    orders: dict[str, dict[str, Any]] = {}
    for row in rows:
        ts = datetime.fromisoformat(row["InvoiceDate"]).replace(tzinfo=timezone.utc).timestamp()
        invoice = row["InvoiceNo"]
        order = orders.setdefault(invoice, {"order_id": invoice, "ts": ts, "currency": "GBP", "lines": []})
        word = _last_word(row)
        order["lines"].append({"sku": row["StockCode"], "quantity": int(row["Quantity"]),
                               "unit_price": float(row["UnitPrice"]), "category": word if word in kept else "other"})
    return sorted(orders.values(), key=lambda o: o["ts"])


def evaluate_online_retail(folder: Path = DEFAULT_RETAIL) -> dict[str, Any]:
    """Replay the Online Retail month through the monitor; errors per scope and the alerts raised."""
    monitor = hourly_monitor()
    orders = online_retail_orders(folder)
    drifts: list[dict[str, Any]] = []
    alerts = replay(orders, monitor, drifts=drifts)
    kinds = {kind: sum(a.kind == kind for a in alerts) for kind in ("surge", "slump")}
    return {
        "source": f"online retail {folder.name}: {len(orders)} invoices",
        "windows": "hourly, season 24, warm-up one week; category = last word of the description (top 30, else other)",
        "scopes": scope_report(monitor),
        "river": river_report(monitor, drifts),
        "drift_alerts": [_drift_line(drift) for drift in drifts],
        "alerts": kinds,
    }


# -- drift signals ----------------------------------------------------------------------


def _daily_shape(phase: float) -> float:
    """Relative sales at ``phase`` of the day (0-1): quiet nights, a lunch peak and an evening peak."""
    return 0.08 + math.exp(-(((phase - 0.5) / 0.12) ** 2)) + 0.8 * math.exp(-(((phase - 0.83) / 0.07) ** 2))


def shifted_sales(seed: int, days: int, peak: float, change_day: int | None = None) -> list[float]:
    """Hourly Poisson sales around a daily shape and weekday factors; from ``change_day`` the shape is 6 h later."""
    rng = np.random.default_rng(seed)
    week = (0.8, 0.85, 1.0, 1.0, 1.1, 1.4, 1.25)
    return [
        float(rng.poisson(peak * week[k // DAY_WINDOWS % 7] * _daily_shape(
            ((k % DAY_WINDOWS) / DAY_WINDOWS + (0.25 if change_day is not None and k >= change_day * DAY_WINDOWS
                                                else 0.0)) % 1.0)))
        for k in range(days * DAY_WINDOWS)
    ]


def evaluate_drift(peaks: tuple[float, ...] = (2.0, 20.0, 200.0), steady: int = 30, shifted: int = 15,
                   days: int = 28, change_day: int = 14) -> dict[str, Any]:
    """River Page-Hinkley's drift signals of a default forecaster: false ones on ``steady`` series (per 1,000
    series-days after the warm-up week) and, on ``shifted`` series, the windows from the shape's move to the first."""
    report: dict[str, Any] = {}
    for peak in peaks:
        false = 0
        for seed in range(steady):
            forecaster = SalesForecaster(window_size=HOUR, season_length=DAY_WINDOWS)
            for k, y in enumerate(shifted_sales(1000 + seed, days, peak)):
                forecaster.learn_one({"window_start": k * HOUR}, y)
                false += forecaster.drift_detected
        delays = []
        for seed in range(shifted):
            forecaster = SalesForecaster(window_size=HOUR, season_length=DAY_WINDOWS)
            first = None
            for k, y in enumerate(shifted_sales(seed, days, peak, change_day)):
                forecaster.learn_one({"window_start": k * HOUR}, y)
                if forecaster.drift_detected and k >= change_day * DAY_WINDOWS and first is None:
                    first = k - change_day * DAY_WINDOWS
            delays.append(first)
        found = sorted(d for d in delays if d is not None)
        report[f"peak {peak:g}"] = {
            "false_per_1000_series_days": round(1000 * false / (steady * (days - 7)), 2),
            "found": f"{len(found)}/{shifted}",
            "median_delay": found[len(found) // 2] if found else None,
            "max_delay": found[-1] if found else None,
        }
    return report


# -- choosing the model -----------------------------------------------------------------


def hourly_series(orders: Iterable[dict[str, Any]], prefix: str = "category:") -> dict[str, list[float]]:
    """Units per hourly window of every series named ``prefix…``, empty windows included."""
    windows = SalesWindows(size=HOUR)
    closed = []
    last_ts = 0.0
    for order in orders:
        windows.add_order(order)
        closed += windows.advance()
        last_ts = order["ts"]
    closed += windows.advance(_window_end(last_ts))
    series: dict[str, list[float]] = {}
    for window in closed:
        if window.series.startswith(prefix):
            series.setdefault(window.series, []).append(window.units)
    return series


Candidate = Callable[[list[float]], list[float | None]]


def _river_candidates() -> dict[str, Candidate]:
    """River models, each as one-step-ahead forecasts over a series (``None`` while it cannot answer)."""
    from river import compose, linear_model, optim, preprocessing, time_series

    def forecasting(factory: Callable[[], Any], ready: int) -> Candidate:
        def run(values: list[float]) -> list[float | None]:
            model, out = factory(), []
            for t, y in enumerate(values):
                out.append(model.forecast(horizon=1)[0] if t >= ready else None)
                model.learn_one(y)
            return out

        return run

    def regression(values: list[float]) -> list[float | None]:
        model = compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LinearRegression(optimizer=optim.SGD(0.01), intercept_lr=0.01),
        )
        out: list[float | None] = []
        for t, y in enumerate(values):
            x = {f"hour_{t % DAY_WINDOWS}": 1.0, f"weekday_{t // DAY_WINDOWS % 7}": 1.0,
                 "lag_1": values[t - 1] if t >= 1 else 0.0,
                 "lag_day": values[t - DAY_WINDOWS] if t >= DAY_WINDOWS else 0.0,
                 "lag_week": values[t - WEEK_WINDOWS] if t >= WEEK_WINDOWS else 0.0}
            out.append(model.predict_one(x) if t >= DAY_WINDOWS else None)
            model.learn_one(x, y)
        return out

    return {
        "river HoltWinters(a=.1, b=.001, g=.1, m=24)": forecasting(
            lambda: time_series.HoltWinters(alpha=0.1, beta=0.001, gamma=0.1, seasonality=DAY_WINDOWS),
            2 * DAY_WINDOWS),
        "river SNARIMAX(1,0,0)(1,1,1)24": forecasting(
            lambda: time_series.SNARIMAX(p=1, d=0, q=0, m=DAY_WINDOWS, sp=1, sd=1, sq=1), 2 * DAY_WINDOWS),
        "river LinearRegression(lags 1/24/168 + hour, weekday one-hots)": regression,
    }


def _kairos(factory: Callable[[], SalesForecaster | SeasonalNaive]) -> Candidate:
    """A Kairos model as one-step-ahead forecasts over a series."""

    def run(values: list[float]) -> list[float | None]:
        model, out = factory(), []
        for t, y in enumerate(values):
            x = {"window_start": t * HOUR}
            out.append(model.predict_one(x))  # a number (or None while seasonal-naive has no answer)
            model.learn_one(x, y)
        return out

    return run


def compare_candidates(series: dict[str, list[float]], warmup: int = WEEK_WINDOWS) -> dict[str, dict[str, float]]:
    """Progressive MAE of each candidate pooled over ``series``, after ``warmup`` windows, vs seasonal-naive."""
    candidates: dict[str, Candidate] = {
        "SalesForecaster (default)": _kairos(lambda: SalesForecaster(HOUR, DAY_WINDOWS)),
        "SalesForecaster without day-of-week": _kairos(lambda: SalesForecaster(HOUR, DAY_WINDOWS, days_per_week=1)),
        "SalesForecaster without level": _kairos(lambda: SalesForecaster(HOUR, DAY_WINDOWS, level_rate=0.0)),
        "SalesForecaster without robust update": _kairos(
            lambda: SalesForecaster(HOUR, DAY_WINDOWS, robustness=float("inf"))),
    } | _river_candidates()
    naive = _kairos(lambda: SeasonalNaive(HOUR, DAY_WINDOWS))
    report = {}
    for name, candidate in candidates.items():
        parts = []
        for values in series.values():
            errors = ForecastErrors()
            for t, (y, f, b) in enumerate(zip(values, candidate(values), naive(values))):
                if t >= warmup and f is not None and b is not None:
                    errors.update(y, f, b)
            parts.append(errors)
        pooled = ForecastErrors.pooled(parts).as_dict()
        report[name] = {k: round(pooled[k], 4) for k in ("mae", "naive_mae", "mae_ratio", "smape")}
    return report


def main(argv: list[str] | None = None) -> None:
    """Command line: print the evaluations as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--retail", type=Path, default=DEFAULT_RETAIL, help="Online Retail folder (one CSV per day)")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument("--customers", type=int, default=2000, help="simulated customers")
    parser.add_argument("--days", type=float, default=28.0, help="simulated days")
    parser.add_argument("--surges", type=int, default=4, help="surges planted in the simulated shop")
    parser.add_argument("--seeds", type=int, nargs="+", help="also score planted surges over these simulator seeds")
    parser.add_argument("--compare", action="store_true", help="also compare the candidate models")
    parser.add_argument("--drift", action="store_true", help="also score the drift signals on simulated series")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "simulator": evaluate_simulator(args.seed, args.customers, args.days, args.surges),
        "online_retail": evaluate_online_retail(args.retail),
    }
    if args.seeds:
        report["simulator_surges"] = evaluate_surges(args.seeds, args.customers, args.days, args.surges)
    if args.drift:
        report["drift"] = evaluate_drift()
    if args.compare:
        sim = SimulatorConfig(seed=args.seed, customers=args.customers, days=args.days)
        report["candidates"] = {
            "simulator categories": compare_candidates(hourly_series(simulator_orders(ShopSimulator(sim)))),
            "online retail categories": compare_candidates(hourly_series(online_retail_orders(args.retail))),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
