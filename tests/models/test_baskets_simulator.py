"""On the shop simulator's orders, every planted bundle is the top rule of its head SKU."""

from __future__ import annotations

import json

from models.baskets import BasketCounter
from streams.pipeline.events import Order
from streams.tools.evaluation.baskets import bundle_ranks
from streams.tools.simulation import ShopSimulator, SimulatorConfig


def test_planted_bundles_are_the_top_rules_of_their_heads() -> None:
    simulator = ShopSimulator(SimulatorConfig(customers=600, days=7, seed=7))
    counter = BasketCounter(epsilon=0.002, min_support=0.005, min_confidence=0.2)
    for event in simulator.events():
        if event.topic == "orders" and isinstance(event.value, dict):
            counter.learn_one(Order.model_validate_json(json.dumps(event.value)).to_record())
    assert counter.n_baskets > 1000
    bundles = simulator.ground_truth()["bundles"]
    assert len(bundles) >= 4 and any(len(b) == 3 for b in bundles)
    misses = [rank for rank in bundle_ranks(counter, bundles) if not rank["hit"]]
    assert misses == []
