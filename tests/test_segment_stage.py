"""The segment stage publishes what the served keys must hold (``streams/pipeline/stages/segments.py``)."""

from __future__ import annotations

import random

from models.segmentation import CustomerFeatures
from streams.pipeline.model_sync import ModelSync
from streams.pipeline.stages.segments import SegmentStage
from streams.settings import KairosSettings


def vector(rng: random.Random, heavy: bool) -> dict[str, float]:
    base = 3.0 if heavy else 0.2
    return {name: base + rng.random() * 0.1 for name in CustomerFeatures.FEATURES}


def test_the_batch_that_seeds_the_segmenter_publishes_the_customers_learned_during_warmup() -> None:
    settings = KairosSettings(segment_k=2, segment_warmup=10)
    stage = SegmentStage(settings, ModelSync(settings))
    rng = random.Random(3)
    early = {f"early-{i}": vector(rng, i % 2 == 0) for i in range(6)}
    assert stage.observe(early, now=1.0).segments == {}  # not seeded: no segment id means anything yet
    assert not stage.seeded
    late = {f"late-{i}": vector(rng, i % 2 == 0) for i in range(6)}
    update = stage.observe(late, now=2.0)
    assert stage.seeded
    # The warm-up customers are not in this batch, and may never send another event: published now.
    assert set(update.segments) == set(early) | set(late)
    assert update.segments == stage.segmenter.assignments()
    assert len(set(update.segments.values())) == 2
