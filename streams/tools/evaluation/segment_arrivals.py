"""Do the segments depend on how the events arrived? The segmenter alone, fed the same shop in different batchings.

Run (the figures in BENCHMARKS.md, "The same events, four arrivals")::

    python -m streams.tools.evaluation.segment_arrivals --customers 1000 --days 8 --stickiness 0.5 0.2 0

One simulated shop's clicks, orders and payments, in event-time order, are
folded into customer features and learned by a :class:`Segmenter` as the
customers stage does (touched customers at their own latest event or the day's
sweep time, quiet ones re-learned at each event-time day), in batches of 20,
200 and 2,000 events, with a sync round (``merge_stats``) every 1, 5 or 20
batches: batch sizes and round timing are what arrival speed changes in the
stream. After ten more rounds, the final assignments are compared pairwise (ids
matched by largest overlap). Per stickiness: the worst and best agreement.
"""

from __future__ import annotations

import argparse
import collections
import itertools
from collections.abc import Sequence
from datetime import datetime

from models.segmentation import CustomerFeatures, Segmenter
from streams.tools.simulation import ShopSimulator, SimulatorConfig

DAY = 86_400.0
#: (events per batch, batches per sync round): the arrivals compared.
BATCHINGS = ((20, 5), (200, 1), (2000, 1), (200, 20))


def shop_records(customers: int, days: float, seed: int) -> list[tuple[str, dict]]:
    """The simulated shop's customer events in event-time order, times as epoch seconds."""
    records = []
    for event in ShopSimulator(SimulatorConfig(seed=seed, customers=customers, days=days)).events():
        if event.topic in ("clicks", "orders", "payments") and isinstance(event.value, dict):
            record = dict(event.value)
            ts = record["ts"]
            record["ts"] = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() if isinstance(ts, str) else ts
            records.append((event.topic, record))
    return sorted(records, key=lambda item: item[1]["ts"])


def final_segments(records: Sequence[tuple[str, dict]], batch: int, sync_every: int, stickiness: float,
                   k: int = 6, warmup: int = 300) -> dict[str, int]:
    """Each customer's segment after the whole stream, learned in ``batch``-event batches."""
    segmenter = Segmenter(k=k, warmup=warmup, capacity=200_000, refine_every=None, stickiness=stickiness,
                          features=CustomerFeatures.FEATURES)
    features: dict[str, CustomerFeatures] = {}
    swept_at = None
    for number, first in enumerate(range(0, len(records), batch), start=1):
        touched: dict[str, CustomerFeatures] = {}
        for topic, record in records[first:first + batch]:
            customer = features.setdefault(record["customer_id"], CustomerFeatures(30.0))
            customer.apply(topic, record)
            touched[record["customer_id"]] = customer
        now = records[min(first + batch, len(records)) - 1][1]["ts"]
        swept_at = now if swept_at is None else swept_at
        refreshed = {}
        if now - swept_at >= DAY:
            swept_at += DAY * ((now - swept_at) // DAY)
            refreshed = {cid: f.vector(swept_at) for cid, f in features.items() if cid not in touched}
        segmenter.learn_many({**refreshed, **{cid: f.vector(max(swept_at, f.last_seen)) for cid, f in touched.items()}})
        if number % sync_every == 0 and segmenter.sizes():
            segmenter.merge_stats([segmenter.export_stats()])
    for _ in range(10):
        segmenter.merge_stats([segmenter.export_stats()])
    return segmenter.assignments()


def agreement(a: dict[str, int], b: dict[str, int]) -> float:
    """Share of customers in the same segment, segment ids matched greedily by largest overlap.

    >>> agreement({"x": 0, "y": 0, "z": 1}, {"x": 5, "y": 5, "z": 5})
    0.6666666666666666
    """
    common = [c for c in a if c in b]
    matched_a, matched_b, same = set(), set(), 0
    for (x, y), n in collections.Counter((a[c], b[c]) for c in common).most_common():
        if x not in matched_a and y not in matched_b:
            matched_a.add(x)
            matched_b.add(y)
            same += n
    return same / len(common)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--stickiness", type=float, nargs="+", default=[0.5, 0.2, 0.0])
    args = parser.parse_args(argv)
    records = shop_records(args.customers, args.days, args.seed)
    warmup = min(300, args.customers // 2)
    for stickiness in args.stickiness:
        runs = [final_segments(records, batch, every, stickiness, warmup=warmup) for batch, every in BATCHINGS]
        found = [agreement(a, b) for a, b in itertools.combinations(runs, 2)]
        print(f"stickiness {stickiness}: segments agree for {min(found):.4f}-{max(found):.4f} of customers "
              f"({len(records):,} events, {args.customers} customers, batchings {BATCHINGS})", flush=True)


if __name__ == "__main__":
    main()
