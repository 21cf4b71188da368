"""The live segmenter finds the planted segments, matches batch K-means, scales out and restarts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from models.segmentation import Segmenter
from streams.tools.evaluation.segmentation import score_against_batch

FEATURES = ("recency", "frequency", "monetary", "browsing")
#: Features on wildly different scales: standardisation has to undo this.
SCALES = np.array([1.0, 10.0, 0.1, 100.0])
CENTRES = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, 1.0, 0.0, 2.0], [0.0, 3.0, 2.5, 0.0], [2.5, 2.5, 2.5, 2.5]])

Vectors = dict[str, dict[str, float]]


def planted_customers(n: int, seed: int, spread: float = 0.6) -> tuple[list[Vectors], dict[str, int]]:
    """Three snapshots of every customer's vector (noisy, less noisy, final) and each one's planted group."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n) % len(CENTRES)
    final = CENTRES[groups] + rng.normal(0.0, spread, (n, len(FEATURES)))
    snapshots = [final + rng.normal(0.0, noise, final.shape) for noise in (0.5, 0.2)] + [final]
    ids = [f"c{i}" for i in range(n)]
    return (
        [{cid: dict(zip(FEATURES, row * SCALES)) for cid, row in zip(ids, points)} for points in snapshots],
        dict(zip(ids, groups.tolist())),
    )


def heavy_tailed_customers(n: int, seed: int) -> list[Vectors]:
    """RFM-like vectors with no real clusters (log-compressed exponential/lognormal/gamma/beta), three snapshots."""
    rng = np.random.default_rng(seed)
    raw = np.column_stack([
        rng.exponential(1.0, n), rng.lognormal(0.5, 0.7, n), rng.lognormal(3.5, 0.9, n), rng.gamma(2.0, 1.0, n),
    ])
    final = np.log1p(raw)
    snapshots = [final + rng.normal(0.0, noise, final.shape) for noise in (0.3, 0.1)] + [final]
    return [{f"c{i}": dict(zip(FEATURES, row)) for i, row in enumerate(points)} for points in snapshots]


def stream(segmenter: Segmenter, snapshots: list[Vectors], batch: int = 50, seed: int = 0) -> None:
    """Learn each snapshot in shuffled batches of touched customers, as the stream does."""
    rng = np.random.default_rng(seed)
    for vectors in snapshots:
        ids = list(vectors)
        order = rng.permutation(len(ids))
        for start in range(0, len(ids), batch):
            segmenter.learn_many({ids[i]: vectors[ids[i]] for i in order[start : start + batch]})


def test_before_warm_up_every_customer_is_in_segment_zero() -> None:
    segmenter = Segmenter(k=4, warmup=100)
    snapshots, _ = planted_customers(60, seed=1)
    stream(segmenter, snapshots)
    assert set(segmenter.assignments().values()) == {0}
    assert segmenter.predict_one(snapshots[-1]["c1"]) == 0
    assert segmenter.centroids() == {} and segmenter.sizes() == {}


def test_the_planted_segments_are_recovered_as_well_as_batch_kmeans_would() -> None:
    segmenter = Segmenter(k=4, warmup=100, refine_every=400, seed=2)
    snapshots, planted = planted_customers(600, seed=2)
    stream(segmenter, snapshots)
    published = segmenter.assignments()
    assert adjusted_rand_score([planted[c] for c in published], list(published.values())) >= 0.8
    assert score_against_batch(segmenter, snapshots[-1])["inertia_ratio"] <= 1.10
    assert sum(segmenter.sizes().values()) == 600


@pytest.mark.parametrize("seed", [0, 1])
def test_on_clusterless_heavy_tailed_rfm_the_live_centroids_stay_within_ten_percent_of_batch(seed: int) -> None:
    # A plain online K-means lands near 1.4-1.5x here; seeding and refinement must do better.
    segmenter = Segmenter(k=6, warmup=150, refine_every=1000, seed=seed)
    snapshots = heavy_tailed_customers(1200, seed)
    stream(segmenter, snapshots, seed=seed)
    assert score_against_batch(segmenter, snapshots[-1])["inertia_ratio"] <= 1.10


def test_two_workers_that_sync_find_the_same_segments_as_one_worker() -> None:
    snapshots, _ = planted_customers(800, seed=3)
    alone = Segmenter(k=4, warmup=100, refine_every=None, seed=3)
    workers = [Segmenter(k=4, warmup=100, refine_every=None, seed=3) for _ in range(2)]
    stream(alone, snapshots)
    for worker, parity in zip(workers, (0, 1)):
        # Customers are partitioned: each worker only ever sees its own.
        stream(worker, [{c: v for c, v in vectors.items() if int(c[1:]) % 2 == parity} for vectors in snapshots])
    for _ in range(4):
        alone.refine()
        stats = [worker.export_stats() for worker in workers]
        wire = json.loads(json.dumps(stats))  # the stats travel through the model-sync topic
        for worker in workers:
            worker.merge_stats(wire)
    assert workers[0].centroids() == workers[1].centroids()  # every worker holds the same model
    one = np.array([list(c.values()) for c in alone.centroids(scaled=True).values()])
    two = np.array([list(c.values()) for c in workers[0].centroids(scaled=True).values()])
    rows, cols = linear_sum_assignment(((one[:, None, :] - two[None, :, :]) ** 2).sum(axis=2))
    # Touching clusters have nearby Lloyd fixed points; the two paths may settle a hair apart.
    assert np.abs(one[rows] - two[cols]).max() < 0.02  # standardised units
    split = {**workers[0].assignments(), **workers[1].assignments()}
    together = alone.assignments()
    assert adjusted_rand_score([together[c] for c in split], list(split.values())) >= 0.95


def test_a_restarted_worker_resumes_with_the_same_segments() -> None:
    snapshots, _ = planted_customers(300, seed=4)
    running = Segmenter(k=4, warmup=100, refine_every=200, seed=4)
    stream(running, snapshots[:2])
    restarted = Segmenter.from_state(json.loads(json.dumps(running.state_dict())))
    assert restarted.assignments() == running.assignments()
    assert restarted.centroids() == running.centroids()
    stream(running, snapshots[2:])
    stream(restarted, snapshots[2:])
    assert restarted.assignments() == running.assignments()
    assert json.dumps(restarted.state_dict()) == json.dumps(running.state_dict())


def test_the_reservoir_forgets_the_least_recently_updated_customers_first() -> None:
    segmenter = Segmenter(k=2, capacity=50, warmup=10)
    snapshots, _ = planted_customers(80, seed=5)
    vectors = snapshots[-1]
    segmenter.learn_many({c: vectors[c] for c in list(vectors)[:50]})
    segmenter.learn_one({"customer_id": "c0", **vectors["c0"]})  # c0 is fresh again
    segmenter.learn_many({c: vectors[c] for c in list(vectors)[50:60]})
    held = segmenter.assignments()
    assert len(held) == 50 and sum(segmenter.sizes().values()) == 50
    assert "c0" in held and "c1" not in held and "c10" not in held and "c11" in held


def test_a_customer_on_a_boundary_does_not_flicker_between_segments() -> None:
    segmenter = Segmenter(k=2, warmup=40, refine_every=None, stickiness=0.5, seed=6)
    rng = np.random.default_rng(6)
    left, right = rng.normal(-3.0, 0.5, (20, 2)), rng.normal(3.0, 0.5, (20, 2))
    segmenter.learn_many({f"c{i}": {"x": x, "y": y} for i, (x, y) in enumerate(np.vstack([left, right]))})
    segmenter.learn_one({"customer_id": "edge", "x": -0.2, "y": 0.0})
    first = segmenter.assignments(["edge"])["edge"]
    for x in (0.1, -0.1, 0.15, -0.05):  # small wobbles across the middle
        segmenter.learn_one({"customer_id": "edge", "x": x, "y": 0.0})
        assert segmenter.assignments(["edge"])["edge"] == first
    segmenter.learn_one({"customer_id": "edge", "x": 2.5, "y": 0.0})  # a real move
    assert segmenter.assignments(["edge"])["edge"] != first


def test_stats_from_a_differently_shaped_segmenter_are_refused() -> None:
    snapshots, _ = planted_customers(40, seed=7)
    three, four = Segmenter(k=3, warmup=10), Segmenter(k=4, warmup=10)
    three.learn_many(snapshots[-1])
    with pytest.raises(ValueError, match="k=3"):
        four.merge_stats([three.export_stats()])
    other = Segmenter(k=3, warmup=10)
    other.learn_many({c: {"spend": 1.0} for c in snapshots[-1]})
    with pytest.raises(ValueError, match="features"):
        other.merge_stats([three.export_stats()])


def test_a_vector_without_a_customer_id_is_refused() -> None:
    with pytest.raises(ValueError, match="customer_id"):
        Segmenter().learn_one({"recency": 1.0})


def test_metrics_report_progress() -> None:
    segmenter = Segmenter(k=4, warmup=100, refine_every=500, seed=8)
    snapshots, _ = planted_customers(200, seed=8)
    stream(segmenter, snapshots)
    metrics = segmenter.metrics()
    assert metrics["customers"] == 200 and metrics["learned"] == 600
    assert metrics["refines"] >= 2 and 0.0 < metrics["mean_sq_distance"] < 4.0
    scale = segmenter.feature_scale()
    assert list(scale["std"]) == list(FEATURES)
    assert scale["std"]["browsing"] == pytest.approx(100 * scale["std"]["recency"], rel=0.5)


def test_a_version_1_checkpoint_restores_its_arrival_distances_into_rivers_mean() -> None:
    snapshots, _ = planted_customers(300, seed=4)
    segmenter = Segmenter(k=4, warmup=100, seed=2)
    for snapshot in snapshots:
        segmenter.learn_many(snapshot)
    state = json.loads(json.dumps(segmenter.state_dict()))
    n = 700  # version 1 kept the sum and count of the squared distances; the mean is what is reported
    old = {key: value for key, value in state.items() if key != "arrival_distance"} | {"version": 1}
    old |= {"distance_count": n, "distance_sum": segmenter.metrics()["mean_sq_distance"] * n}

    restored = Segmenter.from_state(old)

    assert restored.metrics() == pytest.approx(segmenter.metrics())
    assert restored.predict_one(snapshots[-1]["c7"]) == segmenter.predict_one(snapshots[-1]["c7"])


def test_the_segmenter_is_a_river_clusterer_in_a_river_pipeline_and_learns_a_dataframe() -> None:
    import pandas as pd
    from river import compose

    snapshots, planted = planted_customers(300, seed=6)
    segmenter = Segmenter(k=4, warmup=100, seed=1)
    for snapshot in snapshots:  # River's learn_many form: a DataFrame indexed by customer id
        segmenter.learn_many(pd.DataFrame.from_dict(snapshot, orient="index"))
    by_dict = Segmenter(k=4, warmup=100, seed=1)
    for snapshot in snapshots:
        by_dict.learn_many(snapshot)
    assert segmenter.assignments() == by_dict.assignments()

    scaled = compose.FuncTransformer(lambda x: {name: x[name] * scale for name, scale in zip(FEATURES, SCALES)})
    pipeline = scaled | segmenter
    final = snapshots[-1]
    unscaled = {c: {name: v / scale for (name, v), scale in zip(final[c].items(), SCALES)} for c in final}
    labels = [pipeline.predict_one(unscaled[c]) for c in final]
    assert adjusted_rand_score([planted[c] for c in final], labels) > 0.9
