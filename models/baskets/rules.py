"""An association rule X → y with the numbers that explain it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AssociationRule:
    """Baskets holding every SKU of ``antecedent`` also hold ``consequent`` this often.

    ``support`` is the share of baskets holding ``antecedent`` and
    ``consequent`` together, ``confidence`` the share of baskets holding the
    antecedent that also hold the consequent, ``lift`` the confidence over the
    consequent's own support (above 1: bought together more than chance), and
    ``count`` the number of baskets holding the whole itemset (a decayed weight
    when the counter decays). The antecedent is sorted.

    >>> rule = AssociationRule(("bread",), "butter", support=0.2, confidence=0.5, lift=2.0, count=20)
    >>> rule.itemset
    ('bread', 'butter')
    """

    antecedent: tuple[str, ...]
    consequent: str
    support: float
    confidence: float
    lift: float
    count: float

    @property
    def itemset(self) -> tuple[str, ...]:
        """All SKUs of the rule, sorted."""
        return tuple(sorted((*self.antecedent, self.consequent)))
