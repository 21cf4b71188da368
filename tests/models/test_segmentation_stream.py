"""Live segments over whole event streams: planted shoppers are found and stay put."""

from __future__ import annotations

import json
import math
import random
from typing import Any

from sklearn.metrics import adjusted_rand_score

from models.segmentation import Segmenter
from streams.pipeline.events import EVENT_TYPES
from streams.tools.evaluation.segmentation import SegmentationReplay, batched, score_against_batch
from streams.tools.simulation import ShopSimulator, SimulatorConfig

DAY = 86_400.0
Record = tuple[str, dict[str, Any]]

#: Steady shoppers: sessions per day, views per session, add-to-carts per browsing session,
#: chance a session ends in an order, lines per order, typical unit price.
KINDS = {
    "loyal_high_value": (0.35, 3.0, 0.3, 0.5, 3.0, 35.0),
    "bargain_hunters": (1.0, 6.0, 0.6, 0.2, 2.0, 7.0),
    "cart_abandoners": (0.6, 5.0, 2.0, 0.05, 1.5, 30.0),
    "occasional": (0.07, 2.5, 0.2, 0.6, 1.3, 45.0),
}


def poisson(rng: random.Random, mean: float) -> int:
    count, product, limit = 0, rng.random(), math.exp(-mean)
    while product >= limit:
        count += 1
        product *= rng.random()
    return count


def session(rng: random.Random, customer: str, t: float, habits: tuple[float, ...]) -> list[Record]:
    """One visit: views, then either a basket that is ordered and paid, or a cart left behind."""
    _, views, carts, buys, lines, price = habits
    name = f"{customer}-{t:.0f}"
    clicks: list[dict[str, Any]] = [{"action": "view", "price": round(price * math.exp(rng.gauss(0.0, 0.3)), 2)}
                                    for _ in range(poisson(rng, views))]
    records: list[Record] = []
    if rng.random() < buys:
        basket = [{"sku": f"sku{i}", "quantity": 1 + poisson(rng, 0.3),
                   "unit_price": round(price * math.exp(rng.gauss(0.0, 0.3)), 2)}
                  for i in range(1 + poisson(rng, lines - 1))]
        clicks += [{"action": "add_to_cart", "sku": line["sku"]} for line in basket]
        records.append(("orders", {"event_id": f"{name}-o", "order_id": f"{name}-o", "ts": t + 900,
                                   "customer_id": customer, "currency": "EUR", "lines": basket}))
        records.append(("payments", {"event_id": f"{name}-p", "payment_id": f"{name}-p", "order_id": f"{name}-o",
                                     "ts": t + 905, "customer_id": customer, "amount": 1.0, "currency": "EUR",
                                     "method": "card"}))
    else:
        clicks += [{"action": "add_to_cart", "sku": "left"} for _ in range(poisson(rng, carts))]
    records += [("clicks", {"event_id": f"{name}-{i}", "ts": t + 20 * i, "customer_id": customer,
                            "session_id": name, **click}) for i, click in enumerate(clicks)]
    return records


def steady_shop(customers: int, days: float, seed: int = 0) -> tuple[list[Record], dict[str, str]]:
    """Records of customers who behave the same way all along (Poisson visits), in time order."""
    rng = random.Random(seed)
    records: list[Record] = []
    kinds = {f"c{n}": list(KINDS)[n % len(KINDS)] for n in range(customers)}
    for customer, kind in kinds.items():
        habits = tuple(v * math.exp(rng.gauss(0.0, 0.2)) for v in KINDS[kind])
        t = rng.expovariate(habits[0]) * DAY
        while t < days * DAY:
            records += session(rng, customer, t, habits)
            t += rng.expovariate(habits[0]) * DAY
    records.sort(key=lambda record: record[1]["ts"])
    return records, kinds


def test_after_warm_up_a_steady_shop_reassigns_under_two_percent_of_customers_per_10k_events() -> None:
    records, kinds = steady_shop(customers=400, days=120)
    replay = SegmentationReplay(Segmenter(k=4, warmup=200, seed=0))
    warm_up_until = 90 * DAY  # three half-lives: the decayed features have settled
    before: dict[str, int] | None = None
    rates: list[float] = []
    since = 0
    for batch in batched(records, 500):
        replay.fold(batch)
        since += len(batch)
        if replay.now >= warm_up_until and since >= 10_000:
            now, since = replay.segmenter.assignments(), 0
            if before is not None:
                rates.append(sum(before[c] != now[c] for c in before) / len(before))
            before = now
    # With 400 customers, 10k events are ~5 days of the whole shop's behaviour.
    assert len(rates) >= 4
    assert sum(rates) / len(rates) < 0.02, rates
    published = replay.segmenter.assignments()
    assert adjusted_rand_score([kinds[c] for c in published], list(published.values())) >= 0.8


def test_the_simulated_shops_planted_segments_are_found_live() -> None:
    simulator = ShopSimulator(SimulatorConfig(customers=300, days=14, seed=1))
    replay = SegmentationReplay(Segmenter(k=5, warmup=150, seed=0))
    records = (
        (event.topic, EVENT_TYPES[event.topic].model_validate_json(json.dumps(event.value)).to_record())
        for event in simulator.events()
        if event.topic != "labels" and isinstance(event.value, dict)
    )
    for batch in batched(records, 500):
        replay.fold(batch)
    replay.sweep()
    planted = simulator.ground_truth()["segments"]
    published = replay.segmenter.assignments()
    shoppers = [c for c in published if c in planted]  # fraudsters' fresh accounts have no planted segment
    assert len(shoppers) >= 290
    assert adjusted_rand_score([planted[c] for c in shoppers], [published[c] for c in shoppers]) >= 0.8
    assert score_against_batch(replay.segmenter, replay.vectors())["inertia_ratio"] <= 1.10
