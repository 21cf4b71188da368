"""Payment risk: features, an online River scorer with a cold start, analyst rules, late labels.

Start with :class:`~models.risk.scorer.RiskScorer`, a ``river.base.Classifier``
built on River's ``StandardScaler | LogisticRegression`` (its docstring says
which River parts it uses and why the rest is not River); its progressive
metrics (:mod:`models.risk.metrics`) are River metrics and its drift test is
River's ``PageHinkley``. The streaming layer keeps
one :class:`~models.risk.features.PaymentHistory` per customer, asks it for a
payment's features, lets the :class:`~models.risk.rules.RuleBook` and the scorer
assess the payment, and holds the feature snapshot in
:class:`~models.risk.pending.PendingLabels` until the late label (or maturity)
lets the scorer learn from exactly those features.
"""

from __future__ import annotations

import random

from models.base import ContractCase
from models.risk.assessment import RiskAssessment, RiskReason
from models.risk.coldstart import ColdStartScorer
from models.risk.expression import RuleExpression, RuleSyntaxError
from models.risk.features import FEATURE_NAMES, RISK_INDICATORS, PaymentHistory
from models.risk.metrics import ProgressiveRiskMetrics
from models.risk.pending import LabelledPayment, PendingLabels
from models.risk.rules import RULE_FIELDS, RiskRule, RuleBook
from models.risk.scorer import RiskScorer
from models.risk.threshold import AlertThreshold

__all__ = [
    "FEATURE_NAMES",
    "RISK_INDICATORS",
    "RULE_FIELDS",
    "AlertThreshold",
    "ColdStartScorer",
    "LabelledPayment",
    "PaymentHistory",
    "PendingLabels",
    "ProgressiveRiskMetrics",
    "RiskAssessment",
    "RiskReason",
    "RiskRule",
    "RiskScorer",
    "RuleBook",
    "RuleExpression",
    "RuleSyntaxError",
    "CONTRACT_CASES",
]


def _contract_samples(count: int, seed: int) -> list[tuple[dict[str, float], bool]]:
    """Small labelled feature dicts: frauds have large amounts on new devices abroad."""
    rng = random.Random(seed)
    samples = []
    for _ in range(count):
        is_fraud = rng.random() < 0.2
        features = {
            "amount_z": rng.gauss(5.0 if is_fraud else 0.0, 1.0),
            "new_device": float(rng.random() < (0.8 if is_fraud else 0.1)),
            "country_mismatch": float(rng.random() < (0.7 if is_fraud else 0.05)),
            "velocity_1m": float(rng.randrange(4 if is_fraud else 2)),
        }
        features["method_card" if rng.random() < 0.7 else "method_paypal"] = 1.0
        samples.append((features, is_fraud))
    return samples


CONTRACT_CASES = [
    ContractCase(
        name="RiskScorer-cold-start",
        factory=RiskScorer,
        samples=_contract_samples(40, seed=1),
        predict_inputs=[x for x, _ in _contract_samples(5, seed=2)],
    ),
    ContractCase(
        name="RiskScorer-model",
        factory=lambda: RiskScorer(min_labels=20, min_positives=3, threshold=AlertThreshold.fixed(0.5)),
        samples=_contract_samples(80, seed=3),
        predict_inputs=[x for x, _ in _contract_samples(5, seed=4)],
    ),
]
