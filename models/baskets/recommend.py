"""Recommendations for a whole cart: merge the rules of its items, then fall back to best-sellers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Source = Literal["rule", "segment", "global"]


@dataclass(frozen=True)
class Recommendation:
    """One recommended SKU, its score and where it came from."""

    sku: str
    score: float
    source: Source


class CartRecommender:
    """Top-N SKUs to suggest for a cart of several SKUs.

    Inputs are what the serving layer reads back: for each cart SKU its top
    consequents with their confidences (``kairos:reco:item:{sku}``), the
    customer's segment best-sellers and the global best-sellers (each a list of
    ``(sku, score)`` best first).

    Merge rule: a consequent suggested by several cart SKUs gets the noisy-or
    of their confidences, ``1 - Π (1 - confidence)`` (confidences are clipped
    to [0, 1]), so agreement between cart items raises a suggestion above any
    single rule while the score stays a probability-like number in [0, 1].
    Rule suggestions come first, best score first (ties by SKU); remaining
    places are filled with segment best-sellers, then global best-sellers, in
    their given order and with their given scores. SKUs already in the cart
    and SKUs already chosen are skipped everywhere.

    Stateless and pure: no memory beyond the call.

    >>> recommender = CartRecommender(top_n=4)
    >>> picks = recommender.recommend(
    ...     cart=["tea", "scones"],
    ...     item_rules={"tea": [("milk", 0.5), ("scones", 0.4)], "scones": [("jam", 0.6), ("milk", 0.2)]},
    ...     segment_best=[("jam", 30.0), ("honey", 12.0)],
    ...     global_best=[("bread", 99.0), ("tea", 80.0)],
    ... )
    >>> [(p.sku, round(p.score, 2), p.source) for p in picks]
    [('jam', 0.6, 'rule'), ('milk', 0.6, 'rule'), ('honey', 12.0, 'segment'), ('bread', 99.0, 'global')]
    """

    def __init__(self, top_n: int = 10) -> None:
        if top_n < 1:
            raise ValueError("top_n must be at least 1")
        self.top_n = top_n

    def recommend(
        self,
        cart: Iterable[str],
        item_rules: Mapping[str, Sequence[tuple[str, float]]],
        segment_best: Sequence[tuple[str, float]] = (),
        global_best: Sequence[tuple[str, float]] = (),
    ) -> list[Recommendation]:
        """The top-N suggestions for ``cart``, rule-based first, then the fallbacks."""
        in_cart = set(cart)
        miss: dict[str, float] = {}
        for sku in sorted(in_cart):
            for consequent, confidence in item_rules.get(sku, ()):
                if consequent not in in_cart:
                    miss[consequent] = miss.get(consequent, 1.0) * (1.0 - min(1.0, max(0.0, confidence)))
        ranked = sorted(((1.0 - m, sku) for sku, m in miss.items()), key=lambda pair: (-pair[0], pair[1]))
        picks = [Recommendation(sku, score, "rule") for score, sku in ranked[: self.top_n]]
        chosen = in_cart | {p.sku for p in picks}
        for source, best in (("segment", segment_best), ("global", global_best)):
            for sku, score in best:
                if len(picks) == self.top_n:
                    return picks
                if sku not in chosen:
                    picks.append(Recommendation(sku, score, source))
                    chosen.add(sku)
        return picks
