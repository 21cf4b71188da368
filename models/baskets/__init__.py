"""Basket analysis: what sells together, counted as orders arrive.

Start reading at :class:`BasketCounter`: frequent itemsets of up to five SKUs
(``max_size``) of the order stream by Lossy Counting over segments of baskets,
each mined by Eclat on per-SKU bitsets (a proven error bound, optional time
decay, partitioned by each itemset's smallest SKU across workers), and the :class:`AssociationRule` objects it derives
(support, confidence, lift, count). :class:`CartRecommender` merges the rules
of every SKU in a cart and falls back to segment and global best-sellers
(:class:`SegmentBestSellers`);
:class:`RisingPairs` raises ``trend`` alerts for pairs whose support or lift
jumps against their own history.
"""

from __future__ import annotations

import random

from models.base import ContractCase
from models.baskets.bestsellers import SegmentBestSellers
from models.baskets.counter import BasketCounter, owner_partition
from models.baskets.recommend import CartRecommender, Recommendation
from models.baskets.rising import RisingPairs, TrendAlert
from models.baskets.rules import AssociationRule

__all__ = [
    "AssociationRule",
    "BasketCounter",
    "CONTRACT_CASES",
    "CartRecommender",
    "Recommendation",
    "RisingPairs",
    "SegmentBestSellers",
    "TrendAlert",
    "owner_partition",
]


def _orders() -> list[tuple[dict, None]]:
    """Order records over a 12-SKU catalogue with a planted bundle (A, B, C), one every ten minutes."""
    rng = random.Random(11)
    catalogue = [f"S{i}" for i in range(9)]
    samples = []
    for k in range(240):
        skus = set(rng.sample(catalogue, rng.randint(1, 4)))
        if rng.random() < 0.3:
            skus |= {"A", "B", "C"}
        lines = [{"sku": sku, "quantity": 1, "unit_price": 2.5} for sku in sorted(skus)]
        samples.append(({"event_id": f"e{k}", "order_id": f"o{k}", "ts": 1.8e9 + 600.0 * k, "lines": lines}, None))
    return samples


def _pair_observations() -> list[tuple[dict, None]]:
    """Hourly pair snapshots: a steady pair, then a pair that rises from nothing."""
    samples = []
    for hour in range(24):
        pairs = [["A", "B", 0.05 + 0.001 * (hour % 3), 1.8]]
        if hour >= 12:
            pairs.append(["C", "D", 0.01 * (hour - 10), 3.0])
        samples.append(({"ts": 3600.0 * hour, "min_support": 0.01, "pairs": pairs}, None))
    return samples


_CARTS = [["A"], ["A", "B"], {"lines": [{"sku": "S1", "quantity": 2, "unit_price": 1.0}]}, []]

CONTRACT_CASES = [
    ContractCase(
        name="baskets.BasketCounter",
        factory=lambda: BasketCounter(epsilon=0.02, min_support=0.05, min_confidence=0.3, top_n=3, segment=64),
        samples=_orders(),
        predict_inputs=_CARTS,
    ),
    ContractCase(
        name="baskets.BasketCounter.decayed",
        factory=lambda: BasketCounter(
            epsilon=0.02, itemset_epsilon=0.04, half_life=1200.0, min_support=0.05, segment=50
        ),
        samples=_orders(),
        predict_inputs=_CARTS,
    ),
    ContractCase(
        name="baskets.BasketCounter.partition",
        factory=lambda: BasketCounter(epsilon=0.02, min_support=0.05, partition=1, partitions=3, segment=100),
        samples=_orders(),
        predict_inputs=_CARTS,
    ),
    ContractCase(
        name="baskets.SegmentBestSellers",
        factory=lambda: SegmentBestSellers(top_n=3, half_life=3600.0, capacity=8),
        samples=[({**order, "segment": k % 3}, None) for k, (order, _) in enumerate(_orders())],
        predict_inputs=["global", 0, 1, 7],
    ),
    ContractCase(
        name="baskets.RisingPairs",
        factory=lambda: RisingPairs(ratio=2.0, warmup=3, cooldown=4 * 3600.0),
        samples=_pair_observations(),
        predict_inputs=[
            {"ts": 90_000.0, "min_support": 0.01, "pairs": [["A", "B", 0.2, 1.8], ["C", "D", 0.5, 3.0]]},
            {"ts": 90_000.0, "min_support": 0.01, "pairs": []},
        ],
    ),
]
