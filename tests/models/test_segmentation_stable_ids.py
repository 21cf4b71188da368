"""Segment 3 stays segment 3: ids follow their centroids through reorderings, drift and reseeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.base import StateVersionError
from models.segmentation import Segmenter, StableSegmentIds

CENTROIDS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 20.0]])


def published(centroids: np.ndarray = CENTROIDS) -> StableSegmentIds:
    ids = StableSegmentIds()
    assert ids.relabel(centroids) == list(range(len(centroids)))
    return ids


def test_reordered_centroids_keep_their_ids() -> None:
    ids = published()
    order = [3, 0, 4, 2, 1]
    assert ids.relabel(CENTROIDS[order]) == order


def test_drifting_centroids_keep_their_ids() -> None:
    ids = published()
    rng = np.random.default_rng(0)
    drifted = CENTROIDS.copy()
    for _ in range(20):
        drifted = drifted + rng.normal(0.0, 0.5, drifted.shape)
        permutation = rng.permutation(len(drifted))
        assert ids.relabel(drifted[permutation]) == permutation.tolist()
        drifted = drifted[permutation][np.argsort(permutation)]


def test_matching_happens_in_weighted_units() -> None:
    before, after = np.array([[0.0, 0.0], [10.0, 1.0]]), np.array([[10.0, 0.0], [0.0, 1.0]])
    assert published(before).relabel(after) == [1, 0]  # raw units: the x axis decides
    assert published(before).relabel(after, weights=np.array([1e-6, 1.0])) == [0, 1]  # x barely counts


def test_more_segments_get_fresh_ids_and_fewer_retire_some() -> None:
    ids = published()
    grown = np.vstack([CENTROIDS, [[30.0, 30.0]]])
    assert ids.relabel(grown) == [0, 1, 2, 3, 4, 5]
    assert ids.relabel(grown[[5, 1, 2]]) == [5, 1, 2]
    assert ids.relabel(grown[[0, 5, 1, 2]]) == [6, 5, 1, 2]  # a retired id is never reused


def test_the_published_reference_survives_a_checkpoint() -> None:
    ids = published()
    ids.relabel(CENTROIDS[[1, 0, 2, 3, 4]])
    restored = StableSegmentIds.from_state(json.loads(json.dumps(ids.state_dict())))
    assert restored.state_dict() == ids.state_dict()
    assert restored.relabel(CENTROIDS) == ids.relabel(CENTROIDS)
    state = ids.state_dict()
    state["model"] = "Segmenter"
    with pytest.raises(StateVersionError):
        StableSegmentIds.from_state(state)


def test_a_segmenter_keeps_each_group_under_the_same_id_while_the_groups_drift() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]])
    groups = np.arange(400) % 4
    segmenter = Segmenter(k=4, warmup=100, refine_every=200, seed=1)
    first: dict[int, int] = {}
    for step in range(12):
        drift = np.array([step * 0.3, -step * 0.2])  # every group wanders off together
        points = centres[groups] + drift + rng.normal(0.0, 0.7, (400, 2))
        segmenter.learn_many({f"c{i}": {"x": x, "y": y} for i, (x, y) in enumerate(points)})
        segmenter.refine()
        segments = segmenter.assignments()
        for group in range(4):
            members = [segments[f"c{i}"] for i in np.flatnonzero(groups == group)]
            majority = max(set(members), key=members.count)
            assert members.count(majority) >= 0.9 * len(members)
            assert first.setdefault(group, majority) == majority
    assert len(set(first.values())) == 4
