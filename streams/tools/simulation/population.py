"""The shop's customers: five latent segments, each customer a noisy copy of their segment."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from streams.tools.simulation.catalog import Catalog, WeightedChoice
from streams.tools.simulation.draws import spread

#: Countries customers live in (billing countries), with their share of customers.
HOME_COUNTRIES = {"DE": 0.30, "FR": 0.20, "NL": 0.10, "ES": 0.10, "IT": 0.10, "PL": 0.07, "BE": 0.05, "AT": 0.05, "SE": 0.03}
#: Payment methods and how often customers prefer each.
METHODS = {"card": 0.60, "paypal": 0.25, "apple_pay": 0.10, "klarna": 0.05}


@dataclass(frozen=True, slots=True)
class Segment:
    """How a kind of customer behaves, in segment means (each customer scatters around them).

    Customers browse in sessions (a Poisson process, ``browse_per_day``) and
    buy on a fairly regular cycle (a renewal process with gamma gaps averaging
    ``order_every_days``); both follow the shop's seasonality. A browsing
    session leaves items in the cart with ``abandon_prob``.
    """

    name: str
    share: float
    browse_per_day: float
    order_every_days: float
    views_per_session: float
    searches_per_session: float
    abandon_prob: float
    lines_per_order: float
    extra_units_per_line: float
    unit_price: float
    affinity: dict[str, float] = field(default_factory=dict)
    active_fraction: float | None = None
    app_share: float = 0.4


#: The latent segments, in ground-truth order; ``active_fraction`` makes a segment
#: go silent after that share of the run.
SEGMENTS: tuple[Segment, ...] = (
    Segment(
        "loyal_high_value", share=0.15, browse_per_day=0.25, order_every_days=2.0,
        views_per_session=3.0, searches_per_session=0.3, abandon_prob=0.15,
        lines_per_order=3.0, extra_units_per_line=0.35, unit_price=35.0,
        affinity={"electronics": 2.0, "home": 1.5, "beauty": 1.5, "grocery": 0.5}, app_share=0.7,
    ),
    Segment(
        "bargain_hunters", share=0.25, browse_per_day=0.6, order_every_days=3.5,
        views_per_session=11.0, searches_per_session=3.0, abandon_prob=0.2,
        lines_per_order=2.5, extra_units_per_line=0.5, unit_price=5.0,
        affinity={"grocery": 2.5, "books": 1.5, "beauty": 1.5, "electronics": 0.3, "jewelry": 0.2},
    ),
    Segment(
        "window_shoppers", share=0.20, browse_per_day=2.0, order_every_days=7.0,
        views_per_session=9.0, searches_per_session=1.5, abandon_prob=0.7,
        lines_per_order=1.5, extra_units_per_line=0.1, unit_price=28.0,
        affinity={"fashion": 2.5, "electronics": 1.5, "sports": 1.5, "jewelry": 1.5, "grocery": 0.3}, app_share=0.6,
    ),
    Segment(
        "occasional", share=0.25, browse_per_day=0.06, order_every_days=6.0,
        views_per_session=2.5, searches_per_session=0.3, abandon_prob=0.1,
        lines_per_order=1.3, extra_units_per_line=0.1, unit_price=35.0,
        affinity={"books": 2.0, "home": 1.5, "toys": 1.5, "garden": 1.5}, app_share=0.2,
    ),
    Segment(
        "lapsing", share=0.15, browse_per_day=2.5, order_every_days=1.0,
        views_per_session=5.0, searches_per_session=0.5, abandon_prob=0.2,
        lines_per_order=2.5, extra_units_per_line=0.2, unit_price=30.0,
        affinity={"fashion": 1.5, "sports": 2.0, "beauty": 1.5}, active_fraction=0.28,
    ),
)
#: Gamma shape of the gaps between a customer's orders: 1 would be Poisson, higher is more regular.
ORDER_REGULARITY = 5.0


@dataclass(slots=True)
class Customer:
    """One customer: fixed traits drawn at construction, plus the wallet that changes as they shop.

    ``cards``, ``devices``, ``orders`` and ``spend`` are the mutable wallet; the
    simulator rebuilds customers for every run so runs are independent.
    """

    id: str
    segment: int
    browse_per_day: float
    order_every_days: float
    views_per_session: float
    searches_per_session: float
    abandon_prob: float
    lines_per_order: float
    extra_units_per_line: float
    app_share: float
    lapse_at: float
    home: str
    method: str
    cards: list[str]
    devices: list[str]
    orders: int = 0
    spend: float = 0.0

    @property
    def usual_amount(self) -> float:
        """What this customer usually pays per order (their history, else their expected basket)."""
        if self.orders:
            return self.spend / self.orders
        return self.lines_per_order * (1 + self.extra_units_per_line) * SEGMENTS[self.segment].unit_price


def instrument_id(rng: random.Random, kind: str) -> str:
    """A fresh card fingerprint or device id, e.g. ``card-3f9a0c12d4e7``."""
    return f"{kind}-{rng.getrandbits(48):012x}"


def segment_sizes(customers: int) -> list[int]:
    """Customers per segment for the fixed shares (largest remainder, sums to ``customers``).

    >>> segment_sizes(100), segment_sizes(7)
    ([15, 25, 20, 25, 15], [1, 2, 1, 2, 1])
    """
    exact = [customers * s.share for s in SEGMENTS]
    sizes = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(SEGMENTS)), key=lambda i: sizes[i] - exact[i])
    for i in by_remainder[: customers - sum(sizes)]:
        sizes[i] += 1
    return sizes


def populate(rng: random.Random, customers: int, start_ts: float, end_ts: float,
             browsing: float = 1.0) -> list[Customer]:
    """Customers ``cust-000001…`` with segments in fixed proportions, in shuffled order.

    ``browsing`` scales every segment's browsing sessions per day (the sessions that need not end in an order):
    below 1, fewer clicks per order.
    """
    segments = [i for i, size in enumerate(segment_sizes(customers)) for _ in range(size)]
    rng.shuffle(segments)
    homes = WeightedChoice(list(HOME_COUNTRIES), list(HOME_COUNTRIES.values()))
    methods = WeightedChoice(list(METHODS), list(METHODS.values()))
    population = []
    for number, index in enumerate(segments, start=1):
        seg = SEGMENTS[index]
        lapse_at = math.inf
        if seg.active_fraction is not None:
            fraction = min(0.45, max(0.15, rng.gauss(seg.active_fraction, 0.04)))
            lapse_at = start_ts + fraction * (end_ts - start_ts)
        population.append(Customer(
            id=f"cust-{number:06d}",
            segment=index,
            browse_per_day=spread(rng, seg.browse_per_day * browsing, 0.3),
            order_every_days=spread(rng, seg.order_every_days, 0.2),
            views_per_session=spread(rng, seg.views_per_session, 0.25),
            searches_per_session=spread(rng, seg.searches_per_session, 0.3),
            abandon_prob=min(0.97, spread(rng, seg.abandon_prob, 0.2)),
            lines_per_order=max(1.0, spread(rng, seg.lines_per_order, 0.2)),
            extra_units_per_line=spread(rng, seg.extra_units_per_line, 0.2),
            app_share=seg.app_share,
            lapse_at=lapse_at,
            home=homes.draw(rng),
            method=methods.draw(rng),
            cards=[instrument_id(rng, "card") for _ in range(rng.randint(1, 2))],
            devices=[instrument_id(rng, "dev") for _ in range(rng.randint(1, 2))],
        ))
    return population


def segment_samplers(catalog: Catalog) -> list[WeightedChoice[str]]:
    """Per segment, SKU draws shaped by the segment's category affinity and price level."""
    return [catalog.sampler(seg.affinity, seg.unit_price, 0.35) for seg in SEGMENTS]


def best_selling(samplers: list[WeightedChoice[str]]) -> list[str]:
    """SKUs by expected order lines over the segment mix, best first."""
    demand: dict[str, float] = {}
    for seg, sampler in zip(SEGMENTS, samplers):
        lines_per_day = seg.share * seg.lines_per_order / seg.order_every_days * (seg.active_fraction or 1.0)
        for sku, chance in sampler.probabilities().items():
            demand[sku] = demand.get(sku, 0.0) + lines_per_day * chance
    return sorted(demand, key=lambda sku: (-demand[sku], sku))
