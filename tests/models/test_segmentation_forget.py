"""Customers leave the segmenter: evicted ones (forget), pushed out of a full reservoir (displaced),
and a refill that sticks to the served segments (learn_many with ``published``)."""

from __future__ import annotations

import numpy as np
import pytest

from models.segmentation import Segmenter


def two_groups(n: int, seed: int = 3) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    vectors = {}
    for i in range(n):
        centre = (0.0, 0.0) if i % 2 else (10.0, 10.0)
        x, y = rng.normal(centre, 1.0)
        vectors[f"c{i}"] = {"x": float(x), "y": float(y)}
    return vectors


def test_forgotten_customers_leave_the_sizes_and_the_centroids_stay_the_mean_of_the_others() -> None:
    vectors = two_groups(40)
    segmenter = Segmenter(k=2, warmup=10, refine_every=None, seed=1)
    segmenter.learn_many(vectors)
    gone = [f"c{i}" for i in range(0, 20, 2)]  # ten of the (10, 10) group
    segmenter.forget(gone + ["never-seen"])
    assignments = segmenter.assignments()
    assert set(assignments) == set(vectors) - set(gone)
    assert sum(segmenter.sizes().values()) == 30
    for segment, centroid in segmenter.centroids().items():
        members = [vectors[c] for c, s in assignments.items() if s == segment]
        assert centroid["x"] == pytest.approx(np.mean([m["x"] for m in members]))
        assert centroid["y"] == pytest.approx(np.mean([m["y"] for m in members]))


def test_a_full_reservoir_reports_whom_it_pushed_out_least_recent_first() -> None:
    segmenter = Segmenter(k=2, warmup=4, capacity=6, refine_every=None)
    segmenter.learn_many({f"c{i}": {"x": float(i)} for i in range(6)})
    assert segmenter.displaced() == []
    segmenter.learn_many({"c0": {"x": 0.5}})  # c0 is now the most recent
    segmenter.learn_many({"n1": {"x": 7.0}, "n2": {"x": 8.0}})
    assert segmenter.displaced() == ["c1", "c2"]
    assert segmenter.displaced() == []
    assert sum(segmenter.sizes().values()) == 6


def test_a_refilled_segmenter_keeps_the_published_segment_of_a_customer_on_the_boundary() -> None:
    vectors = two_groups(40)
    model = Segmenter(k=2, warmup=10, refine_every=None, seed=1, stickiness=3.0)
    model.learn_many(vectors)
    stats = model.export_stats()
    far, near = model.predict_one({"x": 10.0, "y": 10.0}), model.predict_one({"x": 0.0, "y": 0.0})
    boundary = {"x": 4.0, "y": 4.0}  # nearer the (0, 0) centroid, but not by the stickiness margin

    fresh, sticky = Segmenter(k=2, warmup=10, refine_every=None, seed=1, stickiness=3.0), \
        Segmenter(k=2, warmup=10, refine_every=None, seed=1, stickiness=3.0)
    for refill in (fresh, sticky):
        refill.merge_stats([stats])
    fresh.learn_many({"b": boundary})
    sticky.learn_many({"b": boundary}, published={"b": far})
    assert fresh.assignments()["b"] == near
    assert sticky.assignments()["b"] == far


def test_holding_customers_again_counts_them_and_leaves_the_synced_centroids_where_they_are() -> None:
    vectors = two_groups(40)
    model = Segmenter(k=2, warmup=10, refine_every=None, seed=1)
    model.learn_many(vectors)
    refill = Segmenter(k=2, warmup=10, refine_every=None, seed=1)
    refill.merge_stats([model.export_stats()])
    centroids = refill.centroids()
    refill.hold_many({c: {k: v + 0.5 for k, v in x.items()} for c, x in vectors.items()}, model.assignments())
    assert refill.centroids() == centroids
    assert refill.assignments() == model.assignments()
    assert sum(refill.sizes().values()) == 40
