"""How good are the live segments? Replay records the way the stream folds them, compare with batch K-means.

Run on the Online Retail month::

    python -m streams.tools.evaluation.segmentation ../shared/datasets/online-retail-2010-12

The replay (:class:`SegmentationReplay`) does what the streaming layer does:
fold each batch of records into the customers' :class:`CustomerFeatures`,
learn the touched customers' vectors at the batch's event time in one
``learn_many``, and once per ``sweep_every`` of event time re-learn every
customer's vector at that time (so recency and decay reach customers who have
gone quiet). At the end it sweeps once more at the last event time and
scores the segmenter's centroids on exactly those final vectors against
scikit-learn ``KMeans(n_init=10)`` in the segmenter's standardised space.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from models.segmentation import CustomerFeatures, Segmenter

DAY = 86_400.0
#: Stock codes of real products in Online Retail (five digits, maybe a letter); others are postage, fees, discounts.
PRODUCT_CODE = re.compile(r"^\d{5}")

Record = tuple[str, dict[str, Any]]
T = TypeVar("T")


class SegmentationReplay:
    """Customers' features and a segmenter, folded batch by batch exactly as the stream folds them.

    >>> replay = SegmentationReplay(Segmenter(k=2, warmup=2))
    >>> order = {"event_id": "e1", "order_id": "o1", "ts": 0.0, "customer_id": "c1",
    ...          "currency": "EUR", "lines": [{"sku": "A", "quantity": 1, "unit_price": 5.0}]}
    >>> replay.fold([("orders", order)])
    {'c1': 0}
    """

    def __init__(self, segmenter: Segmenter, half_life_days: float = 30.0, sweep_every: float = DAY) -> None:
        self.segmenter = segmenter
        self.half_life_days = half_life_days
        self.sweep_every = sweep_every
        self.customers: dict[str, CustomerFeatures] = {}
        #: Stream time: the latest event time folded so far.
        self.now = float("-inf")
        self._next_sweep: float | None = None

    def fold(self, batch: Iterable[Record]) -> dict[str, int]:
        """Fold one batch of ``(topic, record)``; the touched customers' segments, as the stream publishes them."""
        touched: dict[str, None] = {}
        for topic, record in batch:
            customer_id = record["customer_id"]
            features = self.customers.get(customer_id)
            if features is None:
                features = self.customers[customer_id] = CustomerFeatures(self.half_life_days)
            features.apply(topic, record)
            touched[customer_id] = None
            self.now = max(self.now, float(record["ts"]))
        if not touched:
            return {}
        vectors = {customer_id: self.customers[customer_id].vector(self.now) for customer_id in touched}
        self.segmenter.learn_many(vectors)
        if self._next_sweep is None:
            self._next_sweep = self.now + self.sweep_every
        elif self.now >= self._next_sweep:
            self.sweep()
        return self.segmenter.assignments(vectors)

    def sweep(self) -> None:
        """Re-learn every customer's vector at the current stream time, then refine over them."""
        self.segmenter.learn_many(self.vectors())
        self.segmenter.refine()
        self._next_sweep = self.now + self.sweep_every

    def vectors(self) -> dict[str, dict[str, float]]:
        """Every customer's vector at the current stream time."""
        return {customer_id: features.vector(self.now) for customer_id, features in self.customers.items()}


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive batches of ``size`` items (the last one may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def online_retail_orders(folder: str | Path) -> tuple[list[Record], dict[str, int]]:
    """The Online Retail days in ``folder`` as order records in time order, and what was skipped.

    Rows without a CustomerID are skipped (no customer to segment). Invoices
    starting with ``C`` are cancellations with negative quantities: the wire
    contract has no refunds (quantity > 0), so they are skipped rather than
    netted against the original order. Lines whose stock code is not a product
    (``POST``, ``DOT``, ``M``, ``C2``, ``D``, ``AMAZONFEE``, ``BANK CHARGES``…)
    are dropped; an invoice left without product lines is skipped. Invoice
    times are minutes without a zone, read as UTC. Money is GBP.
    """
    skipped = {"rows_without_customer": 0, "cancellation_rows": 0, "non_product_rows": 0}
    invoices: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if not row["CustomerID"]:
                    skipped["rows_without_customer"] += 1
                elif row["InvoiceNo"].startswith("C"):
                    skipped["cancellation_rows"] += 1
                elif not PRODUCT_CODE.match(row["StockCode"]) or int(row["Quantity"]) <= 0:
                    skipped["non_product_rows"] += 1
                else:
                    invoice = invoices.get(row["InvoiceNo"])
                    if invoice is None:
                        ts = datetime.fromisoformat(row["InvoiceDate"]).replace(tzinfo=UTC).timestamp()
                        invoice = invoices[row["InvoiceNo"]] = {
                            "event_id": f"inv-{row['InvoiceNo']}",
                            "order_id": row["InvoiceNo"],
                            "ts": ts,
                            "customer_id": str(int(float(row["CustomerID"]))),
                            "currency": "GBP",
                            "lines": [],
                        }
                    quantity, price = int(row["Quantity"]), float(row["UnitPrice"])
                    invoice["lines"].append({"sku": row["StockCode"], "quantity": quantity, "unit_price": price})
    orders = sorted(invoices.values(), key=lambda order: order["ts"])
    return [("orders", order) for order in orders], skipped


def score_against_batch(segmenter: Segmenter, vectors: dict[str, dict[str, float]], seed: int = 0) -> dict[str, float]:
    """Live centroids vs scikit-learn ``KMeans(n_init=10)`` on the same vectors, in the segmenter's standard units.

    scikit-learn runs single-threaded: its OpenMP threads crawl on a busy machine.
    """
    rows = list(vectors.values())
    points = segmenter.standardise(rows)
    with threadpool_limits(limits=1):
        batch = KMeans(n_clusters=segmenter.k, n_init=10, random_state=seed).fit(points)
    live_inertia = segmenter.inertia(rows)
    live_labels = [segmenter.predict_one(vector) for vector in rows]
    return {
        "live_inertia": live_inertia,
        "batch_inertia": float(batch.inertia_),
        "inertia_ratio": live_inertia / float(batch.inertia_),
        "ari_live_vs_batch": float(adjusted_rand_score(batch.labels_, live_labels)),
    }


def river_kmeans_ratios(
    segmenter: Segmenter, updates: list[dict[str, float]], final: list[dict[str, float]],
    halflives: tuple[float, ...] = (0.5, 0.1, 0.01), seeds: int = 5,
) -> dict[str, list[float]]:
    """River's ``cluster.KMeans`` fed the stream's vector ``updates`` (in order, one pass) or the ``final`` vectors
    (one pass), in the segmenter's standard units: min and median over ``seeds`` of its inertia over batch K-means'.
    """
    from river import cluster

    names = list(segmenter.feature_scale()["mean"])
    points = segmenter.standardise(final)
    with threadpool_limits(limits=1):
        batch = float(KMeans(n_clusters=segmenter.k, n_init=10, random_state=0).fit(points).inertia_)

    def ratio(stream: Any, halflife: float, seed: int) -> float:
        model = cluster.KMeans(n_clusters=segmenter.k, halflife=halflife, sigma=3.0, seed=seed)
        for row in stream:
            model.learn_one(dict(zip(names, row.tolist())))
        centres = np.array([[centre[name] for name in names] for centre in model.centers.values()])
        return float(((points[:, None, :] - centres[None]) ** 2).sum(axis=2).min(axis=1).sum()) / batch

    report = {}
    for label, stream in (("updates", segmenter.standardise(updates)), ("final", points)):
        for halflife in halflives:
            ratios = sorted(ratio(stream, halflife, seed) for seed in range(seeds))
            report[f"{label}, halflife {halflife}"] = [round(ratios[0], 3), round(float(np.median(ratios)), 3)]
    return report


def evaluate_online_retail(
    path_to_folder: str | Path, k: int = 6, batch_size: int = 50, half_life_days: float = 30.0, seed: int = 0,
    river_kmeans: bool = False,
) -> dict[str, Any]:
    """Replay the Online Retail month through the live segmentation; score it against batch K-means."""
    records, skipped = online_retail_orders(path_to_folder)
    replay = SegmentationReplay(Segmenter(k=k, seed=seed), half_life_days)
    updates: list[dict[str, float]] = []  # every vector the segmenter learns, in order (for River's KMeans)
    if river_kmeans:
        learn_many = replay.segmenter.learn_many

        def recording(vectors: dict[str, dict[str, float]]) -> None:
            updates.extend(vectors.values())
            learn_many(vectors)

        replay.segmenter.learn_many = recording  # type: ignore[method-assign]
    for batch in batched(records, batch_size):
        replay.fold(batch)
    replay.sweep()
    final = replay.vectors()
    extra = {}
    if river_kmeans:
        extra["river_kmeans_inertia_ratio_min_median"] = river_kmeans_ratios(replay.segmenter, updates, list(final.values()))
    return {
        "customers": len(final),
        "orders": len(records),
        "skipped": skipped,
        "k": k,
        "batch_size": batch_size,
        "half_life_days": half_life_days,
        "refines": replay.segmenter.metrics()["refines"],
        **score_against_batch(replay.segmenter, final, seed),
        **extra,
    }


def evaluate_simulator(customers: int = 5000, days: float = 28.0, k: int = 5, seed: int = 1,
                       batch_size: int = 500, stability_every: int = 10_000) -> dict[str, Any]:
    """The simulated shop at scale: planted segments found (ARI), inertia vs batch, stability of the ids.

    Stability: after a warm-up of half the simulated period, every
    ``stability_every`` events the published assignment of every known
    customer is compared with the previous one; the report gives the mean and
    worst share of customers that changed segment per ``stability_every`` events.
    """
    from streams.pipeline.events import EVENT_TYPES
    from streams.tools.simulation import ShopSimulator, SimulatorConfig

    simulator = ShopSimulator(SimulatorConfig(customers=customers, days=days, seed=seed))
    replay = SegmentationReplay(Segmenter(k=k, seed=0))
    records = (
        (event.topic, EVENT_TYPES[event.topic].model_validate_json(json.dumps(event.value)).to_record())
        for event in simulator.events()
        if event.topic != "labels" and isinstance(event.value, dict)
    )
    started = time.perf_counter()
    warm_up_until: float | None = None
    before: dict[str, int] | None = None
    rates: list[float] = []
    events = since = 0
    for batch in batched(records, batch_size):
        replay.fold(batch)
        events += len(batch)
        since += len(batch)
        if warm_up_until is None:
            warm_up_until = replay.now + days * DAY / 2
        if replay.now >= warm_up_until and since >= stability_every:
            now, since = replay.segmenter.assignments(), 0
            if before is not None:
                rates.append(sum(before[c] != now[c] for c in before) / len(before))
            before = now
    elapsed = time.perf_counter() - started
    replay.sweep()
    planted = simulator.ground_truth()["segments"]
    published = replay.segmenter.assignments()
    shoppers = [c for c in published if c in planted]
    return {
        "customers": len(published),
        "events": events,
        "k": k,
        "ari_vs_planted": float(adjusted_rand_score([planted[c] for c in shoppers],
                                                    [published[c] for c in shoppers])),
        "reassigned_per_10k_events_mean": sum(rates) / len(rates) if rates else None,
        "reassigned_per_10k_events_max": max(rates) if rates else None,
        "stability_checks": len(rates),
        "events_per_second_folded": events / elapsed,
        **score_against_batch(replay.segmenter, replay.vectors()),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: print the evaluations as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="../shared/datasets/online-retail-2010-12",
                        help="the online-retail-2010-12 folder (one CSV per day)")
    parser.add_argument("-k", type=int, default=6, help="number of segments (Online Retail)")
    parser.add_argument("--batch-size", type=int, default=50, help="records per folded batch")
    parser.add_argument("--half-life-days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--customers", type=int, default=5000, help="simulated customers (0: skip the simulator)")
    parser.add_argument("--days", type=float, default=28.0, help="simulated days")
    parser.add_argument("--river-kmeans", action="store_true",
                        help="also score River's cluster.KMeans on the Online Retail stream (min/median of 5 seeds)")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    if Path(args.folder).is_dir():
        report["online_retail"] = evaluate_online_retail(args.folder, args.k, args.batch_size,
                                                         args.half_life_days, args.seed, args.river_kmeans)
    if args.customers:
        report["simulator"] = evaluate_simulator(args.customers, args.days)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
