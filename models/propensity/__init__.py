"""Conversion propensity: the probability that a live session ends in an order.

Start reading at :class:`~models.propensity.tracker.SessionTracker`: click
and order records, in event-time order, keep one
:class:`~models.propensity.session.LiveSession` of counters per open session;
each session is scored by a :class:`ConversionClassifier` (a River Hoeffding
adaptive tree) as it is clicked, and learned when it ends: converted by its
customer's next order, or not after a timeout of event time. The model
learns at minute boundaries only, so scores do not depend on batching; the
``abandon`` rule flags high-value carts whose probability falls. The tree's
leaves read as rules (:meth:`ConversionClassifier.explain`).
"""

import random

from models.base import ContractCase
from models.propensity.classifier import ConversionClassifier
from models.propensity.session import FEATURES, LiveSession
from models.propensity.tracker import AbandonAlert, PropensityUpdate, SessionTracker, session_view

__all__ = ["AbandonAlert", "CONTRACT_CASES", "ConversionClassifier", "FEATURES", "LiveSession", "PropensityUpdate",
           "SessionTracker", "session_view"]


def _sessions(n: int, seed: int = 5) -> list[tuple[dict, bool]]:
    """Sessions' features at their last click: carts and a returning customer convert more."""
    rng, samples = random.Random(seed), []
    for _ in range(n):
        carts, orders = rng.randint(0, 3), rng.randint(0, 4)
        x = {"views": rng.randint(1, 12), "carts": carts, "cart_value": round(carts * rng.uniform(5, 60), 2),
             "orders_before": orders, "last_action": rng.choice(["view", "search", "add_to_cart"])}
        samples.append((x, rng.random() < (0.1 + 0.5 * (carts > 0) + 0.1 * (orders > 0))))
    return samples


CONTRACT_CASES = [
    ContractCase(
        name="ConversionClassifier",
        factory=lambda: ConversionClassifier(grace_period=50),
        samples=_sessions(400),
        predict_inputs=[x for x, _ in _sessions(5, seed=6)],
    ),
]
