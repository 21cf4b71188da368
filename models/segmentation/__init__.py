"""Live customer segmentation: features, segmenter, stable ids, readable profiles.

Start with :class:`CustomerFeatures` (one customer's behaviour folded from
clicks, orders and payments, read as a vector at an event time), then
:class:`Segmenter` (standardised incremental K-means over the latest vector of
each customer, mergeable across workers), :class:`StableSegmentIds` (ids that
survive drift) and :func:`profile_segments` (names and summaries a marketer
can read).
"""

from __future__ import annotations

import random

from models.base import ContractCase
from models.segmentation.features import CustomerFeatures
from models.segmentation.profiles import SegmentProfile, profile_segments, segment_names
from models.segmentation.segmenter import Segmenter
from models.segmentation.stable_ids import StableSegmentIds

__all__ = [
    "CONTRACT_CASES",
    "CustomerFeatures",
    "SegmentProfile",
    "Segmenter",
    "StableSegmentIds",
    "profile_segments",
    "segment_names",
]


def _contract_samples() -> list[tuple[dict[str, float | str], None]]:
    """Three blobs of 40 customers, each customer updated three times."""
    rng = random.Random(5)
    centres = [(0.0, 0.0, 1.0), (4.0, 1.0, 0.0), (1.0, 5.0, 3.0)]
    samples: list[tuple[dict[str, float | str], None]] = []
    for _ in range(3):
        for customer in range(40):
            centre = centres[customer % 3]
            vector = {name: rng.gauss(mu, 0.4) for name, mu in zip(("recency", "frequency", "monetary"), centre)}
            samples.append(({"customer_id": f"c{customer}", **vector}, None))
    return samples


CONTRACT_CASES = [
    ContractCase(
        name="segmentation.Segmenter",
        factory=lambda: Segmenter(k=3, capacity=64, warmup=20, sample_size=32, refine_every=25, seed=3),
        samples=_contract_samples(),
        predict_inputs=[
            {"customer_id": "c0", "recency": 0.1, "frequency": 0.0, "monetary": 1.1},
            {"recency": 4.0, "frequency": 1.2, "monetary": 0.1},
            {"customer_id": "new", "recency": 1.0, "frequency": 5.0, "monetary": 3.0},
            {},
        ],
    ),
]
