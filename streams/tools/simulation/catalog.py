"""The shop's catalog: SKUs in categories with lognormal prices, Zipf popularity and planted bundles."""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Generic, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Category:
    """A product category: its price distribution and what shoppers type when looking for it."""

    name: str
    median_price: float
    price_spread: float
    queries: tuple[str, ...]


#: Every category a simulated shop can carry; a config with ``categories=n`` uses the first ``n``.
CATEGORIES: tuple[Category, ...] = (
    Category("electronics", 120.0, 0.9, ("headphones", "usb c cable", "laptop", "phone case", "smart watch")),
    Category("home", 35.0, 0.7, ("lamp", "bed sheets", "coffee maker", "storage box", "rug")),
    Category("fashion", 40.0, 0.6, ("sneakers", "winter jacket", "jeans", "scarf", "dress")),
    Category("beauty", 18.0, 0.5, ("face cream", "shampoo", "perfume", "lipstick", "sunscreen")),
    Category("toys", 22.0, 0.6, ("lego", "puzzle", "doll", "board game", "rc car")),
    Category("grocery", 5.0, 0.5, ("coffee beans", "olive oil", "pasta", "chocolate", "tea")),
    Category("sports", 45.0, 0.7, ("yoga mat", "running shoes", "dumbbells", "bike light", "water bottle")),
    Category("books", 14.0, 0.35, ("cookbook", "thriller", "children book", "biography", "fantasy")),
    Category("garden", 30.0, 0.7, ("seeds", "garden hose", "planter", "pruning shears", "bird feeder")),
    Category("pets", 15.0, 0.6, ("dog food", "cat litter", "leash", "pet bed", "aquarium")),
    Category("office", 12.0, 0.6, ("notebook", "pens", "desk lamp", "printer paper", "stapler")),
    Category("jewelry", 80.0, 0.9, ("ring", "necklace", "earrings", "bracelet", "watch")),
)


class WeightedChoice(Generic[T]):
    """Draw items with given weights in O(log n) per draw (cumulative weights and bisection).

    >>> choice = WeightedChoice(["a", "b"], [0.0, 1.0])
    >>> choice.draw(random.Random(1))
    'b'
    """

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        self.items = list(items)
        self._cumulative = list(accumulate(weights))
        if not self.items or self._cumulative[-1] <= 0:
            raise ValueError("need at least one item with positive weight")

    def draw(self, rng: random.Random) -> T:
        """One item, drawn in proportion to its weight."""
        return self.items[bisect_right(self._cumulative, rng.random() * self._cumulative[-1])]

    def probabilities(self) -> dict[T, float]:
        """Each item's chance of being drawn."""
        total, previous = self._cumulative[-1], 0.0
        chances: dict[T, float] = {}
        for item, cumulative in zip(self.items, self._cumulative):
            chances[item] = chances.get(item, 0.0) + (cumulative - previous) / total
            previous = cumulative
        return chances


def shop_price(raw: float) -> float:
    """A raw price rounded the way shops price: 0.99 endings, at least 0.99."""
    return max(0.99, round(raw) - 0.01)


@dataclass(frozen=True, slots=True)
class Bundle:
    """SKUs bought together: a basket holding ``head`` gains each of ``companions`` with ``strength``."""

    head: str
    companions: tuple[str, ...]
    strength: float


class Catalog:
    """SKUs ``SKU-0001…`` with category, lognormal price per category and Zipf popularity.

    Memory is O(skus). Draws are seeded by the caller's generator.

    >>> catalog = Catalog(random.Random(3), skus=40, categories=4)
    >>> catalog.skus[0], len(catalog.skus), sorted(set(catalog.category.values()))
    ('SKU-0001', 40, ['beauty', 'electronics', 'fashion', 'home'])
    """

    def __init__(self, rng: random.Random, skus: int, categories: int) -> None:
        self.categories = CATEGORIES[:categories]
        self.skus = [f"SKU-{i + 1:04d}" for i in range(skus)]
        kinds = list(self.categories) + [rng.choice(self.categories) for _ in range(skus - categories)]
        rng.shuffle(kinds)
        self.queries = {kind.name: kind.queries for kind in self.categories}
        self.category = {sku: kind.name for sku, kind in zip(self.skus, kinds)}
        self.price = {
            sku: shop_price(kind.median_price * math.exp(rng.gauss(0.0, kind.price_spread)))
            for sku, kind in zip(self.skus, kinds)
        }
        ranks = list(range(skus))
        rng.shuffle(ranks)
        #: General appeal, Zipf-like over a shuffled rank (segment tastes reshape it per shopper).
        self.popularity = {sku: (rank + 5) ** -0.8 for sku, rank in zip(self.skus, ranks)}
        self.by_category = {
            kind.name: WeightedChoice(members, [self.popularity[s] for s in members])
            for kind in self.categories
            if (members := [s for s in self.skus if self.category[s] == kind.name])
        }
        #: Any SKU, drawn by popularity.
        self.popular = WeightedChoice(self.skus, [self.popularity[s] for s in self.skus])
        by_price = sorted(self.skus, key=self.price.__getitem__, reverse=True)
        luxury = by_price[: max(3, skus // 10)]
        #: Expensive SKUs, drawn by popularity: big purchases and fraudsters' targets.
        self.luxury = WeightedChoice(luxury, [self.popularity[s] for s in luxury])

    def sampler(self, affinity: dict[str, float], unit_price: float, price_tolerance: float) -> WeightedChoice[str]:
        """SKU draws for a kind of shopper: popularity x category affinity x closeness to their price level."""
        log_level = math.log(unit_price)
        weights = [
            self.popularity[s]
            * affinity.get(self.category[s], 1.0)
            * math.exp(-((math.log(self.price[s]) - log_level) ** 2) / (2 * price_tolerance**2))
            for s in self.skus
        ]
        return WeightedChoice(self.skus, weights)


def plant_bundles(rng: random.Random, catalog: Catalog, best_selling: list[str]) -> list[Bundle]:
    """Up to 8 bundles (one in three a triple) of strength 0.6–0.8, given SKUs by expected sales.

    Heads are well-selling SKUs (ranks 3–30) so their rules have support;
    companions come from the middle of the range (ranks 20–150), where a
    bundle stands out against ordinary co-occurrence, and cost 0.4–2.5x the
    head, so a bundle does not change who can afford the basket.

    >>> catalog = Catalog(random.Random(1), skus=300, categories=8)
    >>> [len(b.companions) for b in plant_bundles(random.Random(1), catalog, catalog.skus)]
    [1, 1, 2, 1, 1, 2, 1, 1]
    """
    count = min(8, len(best_selling) // 25)
    heads = best_selling[2:30]
    rng.shuffle(heads)
    heads = heads[:count]
    pool = [s for s in best_selling[20:150] if s not in heads]
    rng.shuffle(pool)
    bundles = []
    for i, head in enumerate(heads):
        size = 2 if i % 3 == 2 else 1
        price = catalog.price[head]
        fitting = [s for s in pool if 0.4 * price <= catalog.price[s] <= 2.5 * price]
        companions = tuple((fitting + [s for s in pool if s not in fitting])[:size])
        pool = [s for s in pool if s not in companions]
        bundles.append(Bundle(head, companions, round(rng.uniform(0.6, 0.8), 3)))
    return bundles
