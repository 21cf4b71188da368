"""The simulated shop's stock: counts over the same stream, restocks, planted sell-outs in the ground truth."""

from __future__ import annotations

import pytest

from streams.tools.simulation import ShopSimulator, SimulatorConfig
from tests.test_simulator import assert_valid_stream


def test_inventory_counts_are_laid_over_the_same_stream_and_sell_outs_are_recorded() -> None:
    config = SimulatorConfig(customers=150, days=9, seed=3, surges=0, inventory_skus=4, sellouts=2)
    simulator = ShopSimulator(config)
    events = list(simulator.events())
    assert_valid_stream(events)
    plain = [e for e in ShopSimulator(config.model_copy(update={"inventory_skus": 0, "sellouts": 0})).events()]
    assert [e for e in events if e.topic != "inventory"] == plain  # the other events do not change
    truth = simulator.ground_truth()["inventory"]
    counts = [e.value for e in events if e.topic == "inventory"]
    assert {c["sku"] for c in counts} == set(truth["skus"]) and len(truth["skus"]) == 4
    assert len(counts) == truth["counts"] >= 4 * 9 * 12
    assert len(truth["sellouts"]) == 2
    for sellout in truth["sellouts"]:
        assert sellout["sold_out_at"] is not None and sellout["planted_at"] < sellout["sold_out_at"]
        # The count at the planting says what was left; a count after the sell-out says 0 until the restock.
        planted = [c for c in counts if c["sku"] == sellout["sku"] and c["on_hand"] == sellout["on_hand_at_plant"]]
        assert planted
        after = [c["on_hand"] for c in counts if c["sku"] == sellout["sku"]
                 and sellout["sold_out_at"] < _ts(c) < (sellout["restocked_at"] or config.end_ts)]
        assert after and set(after) == {0}


def _ts(count: dict) -> float:
    from datetime import datetime

    return datetime.fromisoformat(count["ts"]).timestamp()


def test_planted_sell_outs_need_inventory_and_a_long_enough_run() -> None:
    with pytest.raises(ValueError, match="inventory_skus"):
        SimulatorConfig(sellouts=1)
    with pytest.raises(ValueError, match="more than 8 days"):
        SimulatorConfig(customers=20, days=5, inventory_skus=2, sellouts=1)
