"""CartRecommender: a cart's item rules merged, then segment and global best-sellers."""

from __future__ import annotations

import pytest

from models.baskets import CartRecommender, Recommendation

RULES = {
    "tent": [("sleeping bag", 0.6), ("stove", 0.3), ("lantern", 0.3)],
    "stove": [("gas", 0.9), ("lantern", 0.5), ("tent", 0.4)],
}


def test_a_consequent_backed_by_several_cart_items_ranks_higher() -> None:
    picks = CartRecommender(top_n=3).recommend(["tent", "stove"], RULES)
    assert [p.sku for p in picks] == ["gas", "lantern", "sleeping bag"]
    assert picks[1].score == pytest.approx(1 - 0.7 * 0.5)  # noisy-or of 0.3 and 0.5: 0.65, above either alone
    assert {p.source for p in picks} == {"rule"}


def test_cart_items_are_never_suggested() -> None:
    picks = CartRecommender(top_n=10).recommend(
        ["tent", "stove"], RULES, segment_best=[("tent", 50.0)], global_best=[("stove", 70.0), ("map", 5.0)]
    )
    assert not {"tent", "stove"} & {p.sku for p in picks}
    assert picks[-1] == Recommendation("map", 5.0, "global")


def test_an_item_without_rules_falls_back_to_segment_then_global_best_sellers() -> None:
    picks = CartRecommender(top_n=4).recommend(
        ["kettle"],
        RULES,
        segment_best=[("mug", 40.0), ("tea", 30.0)],
        global_best=[("tea", 90.0), ("bread", 80.0), ("milk", 70.0)],
    )
    assert picks == [
        Recommendation("mug", 40.0, "segment"),
        Recommendation("tea", 30.0, "segment"),
        Recommendation("bread", 80.0, "global"),
        Recommendation("milk", 70.0, "global"),
    ]


def test_rules_fill_first_and_fallbacks_only_the_remaining_places() -> None:
    picks = CartRecommender(top_n=4).recommend(["tent"], RULES, segment_best=[("stove", 9.0), ("boots", 8.0)])
    assert [(p.sku, p.source) for p in picks] == [
        ("sleeping bag", "rule"), ("lantern", "rule"), ("stove", "rule"), ("boots", "segment"),
    ]


def test_out_of_range_scores_are_clipped_to_probabilities() -> None:
    (pick,) = CartRecommender(top_n=1).recommend(["a"], {"a": [("b", 1.7)]})
    assert pick.score == 1.0


def test_an_empty_cart_gets_the_best_sellers() -> None:
    picks = CartRecommender(top_n=2).recommend([], RULES, global_best=[("bread", 80.0), ("milk", 70.0)])
    assert [p.sku for p in picks] == ["bread", "milk"]
