"""Stock-out risk on simulated shops: are planted sell-outs alerted in time, and how many alerts are false?

Each shop is simulated with inventory counts and planted sell-outs
(:mod:`streams.tools.simulation.inventory`); its orders, product views and
counts go, validated as the ingest validates them and in event-time order,
through the sales stage's own :class:`~streams.pipeline.stages.sales.SalesState`
(the monitor, the forecasters and the :class:`~models.forecasting.StockBook`,
no broker). Scored against the ground truth:

* a planted sell-out is **caught** when a ``restock`` alert for its SKU comes
  between its planting and ``lead_hours`` (6) of event time before the order
  that took the last unit; sell-outs the run ended before are not counted;
* an alert is **false** when its SKU had no planted sell-out under way (from
  its planting to its restock): the shop restocks every other SKU long before
  it could run out.

``python -m streams.tools.evaluation.stockout --seeds 1 2 3 4`` (what
``kairos bench --suite stockout`` runs) prints the figures per shop and in total.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

import orjson

from models.forecasting import RestockAlert
from streams.pipeline.packing import PackedBatch
from streams.pipeline.stages.sales import SalesState, sales_view
from streams.pipeline.validation import EventValidator
from streams.settings import KairosSettings
from streams.tools.simulation import ShopSimulator, SimulatorConfig

#: A sell-out counts as caught when alerted at least this many hours of event time before it.
LEAD_HOURS = 6.0


class _Clock:
    """Wall clock for the stage: every path counts as just heard until the end, when all fall idle."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sales_batches(simulator: ShopSimulator, validator: EventValidator) -> Iterator[PackedBatch]:
    """The shop's orders, product views and inventory counts as the sales stage receives them, in event-time
    order: one path per topic, a new batch whenever the path changes."""
    offsets: dict[str, int] = {}
    batch: PackedBatch | None = None
    for event in simulator.events():
        if event.topic not in ("orders", "clicks", "inventory") or isinstance(event.value, bytes):
            continue
        record = validator.check(event.topic, orjson.dumps(event.value)).record
        if record is None:
            continue
        if event.topic == "clicks":
            if record["action"] != "view" or "sku" not in record:
                continue
            kind, record = "views", sales_view(record)
        else:
            kind = event.topic
        path = f"{event.topic}:0"
        offset = offsets[path] = offsets.get(path, -1) + 1
        if batch is None or batch.path != path:
            if batch is not None:
                yield batch
            batch = PackedBatch(kind, path)
        batch.entries.append((offset, record))
    if batch is not None:
        yield batch


def run_shop(config: SimulatorConfig, settings: KairosSettings) -> tuple[list[RestockAlert], dict[str, Any]]:
    """The ``restock`` alerts the sales stage raises on a simulated shop, and the shop's inventory truth."""
    simulator = ShopSimulator(config)
    clock = _Clock()
    fresh = SalesState.new(settings)
    state = SalesState(fresh.monitor, idle_seconds=settings.sales_idle_path_seconds, clock=clock, stock=fresh.stock)
    clock.now = settings.sales_idle_path_seconds + 1  # past the start-up hold: every path is heard from now on
    alerts: list[RestockAlert] = []
    for batch in sales_batches(simulator, EventValidator(settings.max_event_bytes)):
        alerts += state.apply(batch).restocks
    clock.now += 2 * settings.sales_idle_path_seconds + 1  # the stream stopped: every path is idle
    alerts += state.tick().restocks
    return alerts, simulator.ground_truth()["inventory"]


def score(alerts: list[RestockAlert], truth: dict[str, Any], days: float, end: float,
          lead_hours: float = LEAD_HOURS) -> dict[str, Any]:
    """Caught sell-outs (alerted ``lead_hours`` ahead), their lead times, and the false alerts per day."""
    sold_out = [s for s in truth["sellouts"] if s["sold_out_at"] is not None]
    leads, caught = [], 0
    for sellout in sold_out:
        times = [a.ts for a in alerts if a.sku == sellout["sku"] and sellout["planted_at"] <= a.ts]
        first = min(times, default=None)
        if first is not None and first <= sellout["sold_out_at"]:
            lead = (sellout["sold_out_at"] - first) / 3600.0
            leads.append(round(lead, 1))
            caught += lead >= lead_hours
        else:
            leads.append(None)
    under_way = [(s["sku"], s["planted_at"], s["restocked_at"] or end) for s in truth["sellouts"]]
    false = [a for a in alerts if not any(sku == a.sku and start <= a.ts <= stop for sku, start, stop in under_way)]
    return {"sellouts": len(sold_out), "caught": caught, "recall": caught / len(sold_out) if sold_out else None,
            "lead_hours": leads, "alerts": len(alerts), "false_alerts": len(false),
            "false_per_day": len(false) / days, "not_sold_out_by_end": len(truth["sellouts"]) - len(sold_out),
            "false": [{"sku": a.sku, "ts": a.ts, "on_hand": a.on_hand,
                       "hours_latest": a.hours_to_stockout_latest} for a in false]}


def evaluate(seeds: list[int], customers: int = 2000, days: float = 14.0, inventory_skus: int = 20,
             sellouts: int = 8, settings: KairosSettings | None = None) -> dict[str, Any]:
    """Every shop's score and the totals."""
    settings = settings or KairosSettings()
    shops, started = {}, time.perf_counter()
    for seed in seeds:
        config = SimulatorConfig(seed=seed, customers=customers, days=days, inventory_skus=inventory_skus,
                                 sellouts=sellouts)
        alerts, truth = run_shop(config, settings)
        shops[seed] = score(alerts, truth, days, config.end_ts)
    sold = sum(s["sellouts"] for s in shops.values())
    caught = sum(s["caught"] for s in shops.values())
    false = sum(s["false_alerts"] for s in shops.values())
    return {"shops": shops, "sellouts": sold, "caught": caught, "recall": caught / sold if sold else None,
            "false_alerts": false, "false_per_day": false / (days * len(seeds)),
            "horizon_hours": settings.restock_horizon_hours, "lead_hours": LEAD_HOURS,
            "seconds": round(time.perf_counter() - started, 1),
            "shop": {"customers": customers, "days": days, "inventory_skus": inventory_skus, "sellouts": sellouts}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--inventory-skus", type=int, default=20)
    parser.add_argument("--sellouts", type=int, default=8)
    args = parser.parse_args(argv)
    report = evaluate(args.seeds, args.customers, args.days, args.inventory_skus, args.sellouts)
    for seed, shop in report["shops"].items():
        print(f"seed {seed}: {shop['caught']}/{shop['sellouts']} sell-outs alerted >= {LEAD_HOURS:g} h ahead "
              f"(lead hours {shop['lead_hours']}), {shop['false_alerts']} false alerts "
              f"({shop['false_per_day']:.2f}/day), {shop['not_sold_out_by_end']} not sold out by the end")
    recall = report["recall"]
    print(f"total: {report['caught']}/{report['sellouts']} = {recall:.1%} alerted >= {LEAD_HOURS:g} h ahead "
          f"(target >= 80%); {report['false_alerts']} false restock alerts = {report['false_per_day']:.2f} per day "
          f"(target <= 1); horizon {report['horizon_hours']:g} h; {report['seconds']} s")
    print(json.dumps({k: v for k, v in report.items() if k != "shops"}))
    return report


if __name__ == "__main__":
    main()
