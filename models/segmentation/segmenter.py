"""Live customer segments: standardised incremental K-means over each customer's latest vector.

River parts: :class:`Segmenter` is a ``river.base.Clusterer`` (River's
``clone``, ``repr``, parameters and estimator checks; ``learn_one`` /
``predict_one`` on dicts, ``learn_many`` on a ``pandas.DataFrame`` indexed by
customer id as well as on a dict); the standardisation's moments are
``river.stats.Var`` (population variance), computed per worker with
``update_many`` and merged across workers with River's own parallel merge
(Chan et al.); the progressive mean squared distance on arrival
(``metrics()["mean_sq_distance"]``) is a ``river.stats.Mean``.

Not River: the clustering itself. River's ``cluster.KMeans`` moves each
centroid towards every point it sees (a running, halflife-weighted update with
no memory of the points), so a customer who updates ten times pulls ten times,
and its solution cannot be polished by exact Lloyd steps. On the Online Retail
customers (884, k = 6, in this segmenter's standard units) it measured
2.1-4.5x the inertia of batch K-means in one pass over the stream of their
vectors or over their final vectors (halflife 0.01-0.5, five seeds), where
this segmenter measures 1.006x (``python -m streams.tools.evaluation.segmentation
--river-kmeans``; BENCHMARKS.md, "River in segmentation,
baskets, forecasting"). River has no reservoir K-means with k-means++ seeding,
exact mergeable sufficient statistics or stable segment ids, so that part is
written here, as a River ``Clusterer``.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any, ClassVar, Self

import numpy as np
from river import base, stats

from models.base import check_state_tag, from_river_state, river_state
from models.segmentation.stable_ids import StableSegmentIds

#: Rows per block when computing distances (bounds the temporary n x k x d array).
BLOCK = 4096
#: Standard deviations at or below this are treated as 1 (a constant feature).
TINY_STD = 1e-9

def customer_hash(customer_id: str) -> int:
    """A 64-bit hash of a customer id, the same on every worker and after every restart."""
    return int.from_bytes(hashlib.blake2b(customer_id.encode(), digest_size=8).digest(), "big")


def _digest(array: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=8).digest()


def _distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared distance from every point to every centroid (same space), one row per point."""
    d2 = np.empty((len(points), len(centroids)))
    for start in range(0, len(points), BLOCK):
        block = points[start : start + BLOCK]
        d2[start : start + len(block)] = ((block[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return d2


def _nearest(points: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centroid per point and the squared distance to it (same space)."""
    d2 = _distances(points, centroids)
    nearest = d2.argmin(axis=1)
    return nearest, d2[np.arange(len(points)), nearest]


def _cluster_sums(points: np.ndarray, nearest: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster vector sums and member counts."""
    sums = np.zeros((k, points.shape[1]))
    for cluster in range(k):
        sums[cluster] = points[nearest == cluster].sum(axis=0)
    return sums, np.bincount(nearest, minlength=k)


def _means(sums: np.ndarray, counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Centroids as sums / counts; an empty cluster keeps its previous centroid."""
    centroids = previous.copy()
    filled = counts > 0
    centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


def _lloyd(points: np.ndarray, centroids: np.ndarray, max_iter: int = 100) -> tuple[np.ndarray, float]:
    """Lloyd iterations until assignments stop changing; the centroids and their inertia."""
    assigned: np.ndarray | None = None
    for _ in range(max_iter):
        nearest, distance = _nearest(points, centroids)
        if assigned is not None and np.array_equal(nearest, assigned):
            return centroids, float(distance.sum())
        assigned = nearest
        centroids = _means(*_cluster_sums(points, nearest, len(centroids)), centroids)
    return centroids, float(_nearest(points, centroids)[1].sum())


def _kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii; 2 + ln k trials per centre, as scikit-learn)."""
    trials = 2 + int(math.log(k))
    centres = [points[rng.integers(len(points))]]
    closest = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        potential = closest.sum()
        if potential <= 0:
            centres.append(points[rng.integers(len(points))])
            continue
        picks = np.searchsorted(np.cumsum(closest), rng.random(trials) * potential)
        picks = np.minimum(picks, len(points) - 1)
        candidates = np.minimum(closest, ((points[None, :, :] - points[picks][:, None, :]) ** 2).sum(axis=2))
        best = int(candidates.sum(axis=1).argmin())
        closest = candidates[best]
        centres.append(points[picks[best]])
    return np.array(centres)


def _moments(points: np.ndarray) -> list[stats.Var]:
    """Population mean and variance of each column (feature), as River ``stats.Var``."""
    moments = []
    for column in points.T:
        var = stats.Var(ddof=0)
        if len(column):
            var.update_many(column)
        moments.append(var)
    return moments


def _moments_state(moments: list[stats.Var]) -> dict[str, Any]:
    """Plain data of per-feature moments: count, means, sums of squared deviations."""
    n = moments[0].n if moments else 0
    return {"n": n, "mean": [v.mean.get() for v in moments], "m2": [v.get() * v.n for v in moments]}


def _merge_moments(parts: Iterable[dict[str, Any]]) -> tuple[float, np.ndarray, np.ndarray]:
    """Merge per-worker moments with River's parallel ``stats.Var`` merge: count, mean, standard deviation."""
    merged: list[stats.Var] | None = None
    for part in parts:
        if not part["n"]:
            continue
        moments = [
            stats.Var._from_state(part["n"], mean, m2 / part["n"], ddof=0)
            for mean, m2 in zip(part["mean"], part["m2"])
        ]
        if merged is None:
            merged = moments
        else:
            for total, moment in zip(merged, moments):
                total += moment
    if merged is None:
        return 0, np.zeros(0), np.zeros(0)
    return merged[0].n, np.array([v.mean.get() for v in merged]), np.sqrt(np.array([max(v.get(), 0.0) for v in merged]))


class Segmenter(base.Clusterer):
    """Standardised incremental K-means with k-means++ seeding, Lloyd refinement and stable ids.

    **Input.** ``learn_one({"customer_id": "c1", **vector})`` or, batched,
    ``learn_many({"c1": vector, ...})`` (or a ``pandas.DataFrame`` with one
    row per customer, indexed by customer id) with the customer's *latest*
    feature vector (e.g. :meth:`CustomerFeatures.vector`). The feature names
    are fixed by the first vector (or ``features``); a missing feature reads
    as 0.

    **Reservoir.** The latest vector of up to ``capacity`` customers, least
    recently updated evicted first. Memory: about ``capacity * (8 * d + 130)``
    bytes plus the id strings (d features; the ordered id index dominates):
    21 MB measured for 100k customers and 9 features. The checkpoint holds
    the same vectors (about 20 MB of JSON at 100k customers).

    **Learning.** Until ``warmup`` customers are known, nothing is assigned
    and :meth:`predict_one` answers 0. Then :meth:`refine` seeds: the best of
    ``n_init`` greedy k-means++ seedings, each run to convergence by Lloyd, on
    a sample of up to ``sample_size`` customers (those with the smallest
    :func:`customer_hash`, a uniform sample that merges exactly across
    workers). Each learned batch is assigned in standardised units and moves
    the centroids to the exact mean of their members' latest vectors (old
    vectors leave, new ones join). A customer changes segment only when
    another centroid is closer than its current one by more than
    ``stickiness`` standard units, so boundary customers do not flicker.
    Every ``refine_every`` learned vectors (``None``: only when called) a
    refine re-estimates the standardisation (mean and standard deviation of
    the reservoir, frozen in between so distances do not jitter), takes one
    exact Lloyd step over the whole reservoir, runs Lloyd from there to
    convergence on the sample, and compares that with fresh k-means++
    solutions on the sample: a fresh solution is adopted only if its inertia
    is lower by more than ``reseed_gain`` (so a stationary stream keeps its
    segments). :class:`StableSegmentIds` then matches the new centroids to the
    published ones, so ids survive all of this.

    **Scale-out.** Each worker learns its own customers. A sync round is
    ``stats = [w.export_stats() for w in workers]`` then
    ``w.merge_stats(stats)`` on every worker: per-centroid sums and counts
    (exactly distributed Lloyd), standardisation moments (Chan's merge) and
    the hash samples (their union's smallest hashes equal one worker's sample
    over all customers) combine deterministically, so every worker ends with
    the same centroids, scale and ids. :meth:`refine` is that round with one
    worker. With several workers set ``refine_every=None`` and sync instead.

    >>> segmenter = Segmenter(k=2, warmup=4, seed=1)
    >>> for i, (spend, visits) in enumerate([(5, 1), (90, 9), (6, 2), (95, 8), (4, 1), (88, 10)]):
    ...     segmenter.learn_one({"customer_id": f"c{i}", "spend": spend, "visits": visits})
    >>> big, small = segmenter.predict_one({"spend": 92, "visits": 9}), segmenter.predict_one({"spend": 5, "visits": 2})
    >>> big != small
    True
    >>> sorted(segmenter.sizes().values())
    [3, 3]
    >>> round(segmenter.centroids()[big]["spend"], 1)
    91.0
    """

    STATE_TAG: ClassVar[tuple[str, int]] = ("Segmenter", 2)
    STATS_TAG: ClassVar[tuple[str, int]] = ("SegmenterStats", 1)

    def __init__(
        self,
        k: int = 6,
        capacity: int = 100_000,
        warmup: int = 300,
        sample_size: int = 2048,
        refine_every: int | None = 10_000,
        n_init: int = 4,
        reseed_gain: float = 0.05,
        stickiness: float = 0.5,
        seed: int = 0,
        id_key: str = "customer_id",
        features: Iterable[str] | None = None,
    ) -> None:
        if not 1 <= k <= warmup <= capacity or sample_size < k or n_init < 1:
            raise ValueError("need 1 <= k <= warmup <= capacity, sample_size >= k and n_init >= 1")
        if stickiness < 0:
            raise ValueError("stickiness must be >= 0")
        if refine_every is not None and refine_every < 1:
            raise ValueError("refine_every must be >= 1 or None")
        self.k = k
        self.capacity = capacity
        self.warmup = warmup
        self.sample_size = sample_size
        self.refine_every = refine_every
        self.n_init = n_init
        self.reseed_gain = reseed_gain
        self.stickiness = stickiness
        self.seed = seed
        self.id_key = id_key
        self.features = features
        #: The feature names, from ``features`` or the first learned vector.
        self._features: list[str] | None = None if features is None else list(features)
        self._slots: OrderedDict[str, int] = OrderedDict()
        self._free: list[int] = []
        self._used = 0
        self._vectors = np.zeros((0, 0))
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._assigned = np.zeros(0, dtype=np.int64)
        self._centroids: np.ndarray | None = None
        self._counts = np.zeros(k, dtype=np.int64)
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        self._epoch: str | None = None
        self._ids = StableSegmentIds()
        self._learned = 0
        self._refines = 0
        #: Squared standardised distance of each learned vector to its nearest centroid on arrival.
        self._arrival_distance = stats.Mean()
        #: Customers pushed out of the full reservoir since :meth:`displaced` was last read.
        self._displaced: list[str] = []
        if self._features is not None:
            self._allocate_rows(0)

    def _params(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "capacity": self.capacity,
            "warmup": self.warmup,
            "sample_size": self.sample_size,
            "refine_every": self.refine_every,
            "n_init": self.n_init,
            "reseed_gain": self.reseed_gain,
            "stickiness": self.stickiness,
            "seed": self.seed,
            "id_key": self.id_key,
            "features": None if self.features is None else list(self.features),
        }

    # -- the reservoir ---------------------------------------------------

    def _allocate_rows(self, rows: int) -> None:
        """Make room for ``rows`` customers once the features are known (doubling, up to capacity)."""
        assert self._features is not None
        have = len(self._assigned)
        if self._vectors.shape != (have, len(self._features)):
            self._vectors = np.zeros((have, len(self._features)))
        if rows <= have:
            return
        grow = min(self.capacity, max(rows, 2 * have, 256)) - have
        self._vectors = np.concatenate([self._vectors, np.zeros((grow, len(self._features)))])
        self._hashes = np.concatenate([self._hashes, np.zeros(grow, dtype=np.uint64)])
        self._assigned = np.concatenate([self._assigned, np.full(grow, -1, dtype=np.int64)])

    def _slot_for(self, customer_id: str) -> int:
        if self._free:
            slot = self._free.pop()
        else:
            slot = self._used
            self._used += 1
            self._allocate_rows(self._used)
        self._slots[customer_id] = slot
        self._hashes[slot] = customer_hash(customer_id)
        self._assigned[slot] = -1
        return slot

    def _in_order(self) -> np.ndarray:
        """Slots from least to most recently updated customer (the order every pass uses)."""
        return np.fromiter(self._slots.values(), dtype=np.int64, count=len(self._slots))

    def _rows(self, vectors: Iterable[Mapping[str, float]]) -> np.ndarray:
        assert self._features is not None
        features = self._features
        rows = [[float(vector.get(name, 0.0)) for name in features] for vector in vectors]
        return np.array(rows, dtype=float).reshape(len(rows), len(features))

    def _standardised(self, rows: np.ndarray) -> np.ndarray:
        assert self._mean is not None and self._std is not None
        standardised: np.ndarray = (rows - self._mean) / self._std
        return standardised

    # -- learning and answering -----------------------------------------

    def learn_one(self, x: Mapping[str, Any]) -> None:
        """Learn one customer's latest vector; ``x`` carries the id under :attr:`id_key`."""
        if self.id_key not in x:
            raise ValueError(f"the vector needs the customer id under {self.id_key!r}")
        self.learn_many({str(x[self.id_key]): x})

    def learn_many(self, X: Mapping[str, Mapping[str, float]] | Any, published: Mapping[str, int] | None = None) -> None:
        """Learn a batch: customer id -> that customer's latest vector (one mini-batch step).

        ``X`` is a dict, or (as River's ``learn_many``) a ``pandas.DataFrame``
        with one row per customer, indexed by customer id. ``published``: segment ids customers not held
        were last published in (a refill after a restart), which they stick to as if they had been held.
        """
        vectors = X if isinstance(X, Mapping) else {str(i): row for i, row in X.to_dict(orient="index").items()}
        if not vectors:
            return
        if self._features is None:
            self._features = [name for name in next(iter(vectors.values())) if name != self.id_key]
            self._allocate_rows(0)
        items = iter(vectors.items())
        while chunk := list(islice(items, self.capacity)):
            self._learn_chunk(chunk, published or {})

    def _learn_chunk(self, chunk: list[tuple[str, Mapping[str, float]]], published: Mapping[str, int]) -> None:
        rows = self._rows(vector for _, vector in chunk)
        left_rows: list[np.ndarray] = []
        left_clusters: list[int] = []
        slots = np.empty(len(chunk), dtype=np.int64)
        previous = np.full(len(chunk), -1, dtype=np.int64)
        for i, (customer_id, _) in enumerate(chunk):
            slot = self._slots.get(customer_id)
            if slot is None:
                if len(self._slots) >= self.capacity:
                    displaced, evicted = self._slots.popitem(last=False)
                    self._displaced.append(displaced)
                    self._free.append(evicted)
                    self._leave(evicted, left_rows, left_clusters)
                slot = self._slot_for(customer_id)
                if customer_id in published and published[customer_id] in self._ids.ids:
                    previous[i] = self._ids.ids.index(published[customer_id])
            else:
                self._slots.move_to_end(customer_id)
                previous[i] = self._leave(slot, left_rows, left_clusters)
            slots[i] = slot
        self._vectors[slots] = rows
        before = self._learned
        self._learned += len(chunk)
        if self._centroids is not None:
            d2 = _distances(self._standardised(rows), self._standardised(self._centroids))
            joined = self._sticky(d2, previous)
            self._assigned[slots] = joined
            self._move_centroids(left_rows, left_clusters, rows, joined)
            self._arrival_distance.update_many(d2.min(axis=1))
        if self._centroids is None:
            if len(self._slots) >= self.warmup:
                self.refine()
        elif self.refine_every and self._learned // self.refine_every > before // self.refine_every:
            self.refine()

    def _leave(self, slot: int, rows: list[np.ndarray], clusters: list[int]) -> int:
        """Note that the vector in ``slot`` leaves its cluster; that cluster (-1: none)."""
        cluster = int(self._assigned[slot])
        if cluster >= 0:
            rows.append(self._vectors[slot].copy())
            clusters.append(cluster)
            self._assigned[slot] = -1
        return cluster

    def _sticky(self, d2: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """The nearest cluster per row, unless the previous one (-1: none) is within ``stickiness`` of it."""
        nearest = d2.argmin(axis=1)
        distance = np.sqrt(d2)
        rows = np.arange(len(d2))
        stays = (previous >= 0) & (
            distance[rows, np.maximum(previous, 0)] - distance[rows, nearest] <= self.stickiness
        )
        return np.where(stays, previous, nearest)

    def _move_centroids(
        self, left_rows: list[np.ndarray], left_clusters: list[int], rows: np.ndarray, joined: np.ndarray
    ) -> None:
        """Keep each touched centroid the exact mean of its members after leaves and joins."""
        assert self._centroids is not None
        counts = self._counts.copy()
        sums = self._centroids * counts[:, None]
        touched = np.zeros(self.k, dtype=bool)
        if left_clusters:
            np.subtract.at(sums, left_clusters, np.array(left_rows))
            np.subtract.at(counts, left_clusters, 1)
            touched[left_clusters] = True
        np.add.at(sums, joined, rows)
        np.add.at(counts, joined, 1)
        touched[joined] = True
        touched &= counts > 0
        self._centroids[touched] = sums[touched] / counts[touched, None]
        self._counts = counts

    def hold_many(self, vectors: Mapping[str, Mapping[str, float]], published: Mapping[str, int] | None = None) -> None:
        """Refill the reservoir without moving the centroids (after a restart: the centroids come from the
        synced statistics, which already reflect these customers); they are assigned and counted."""
        centroids = None if self._centroids is None else self._centroids.copy()
        self.learn_many(vectors, published)
        if centroids is not None:
            self._centroids = centroids

    def forget(self, customer_ids: Iterable[str]) -> None:
        """Drop customers from the reservoir; their centroids stay the exact mean of the others."""
        left_rows: list[np.ndarray] = []
        left_clusters: list[int] = []
        for customer_id in customer_ids:
            slot = self._slots.pop(customer_id, None)
            if slot is not None:
                self._leave(slot, left_rows, left_clusters)
                self._free.append(slot)
        if left_clusters and self._centroids is not None:
            self._move_centroids(left_rows, left_clusters, np.zeros((0, len(self._features or []))),
                                 np.zeros(0, dtype=np.int64))

    def displaced(self) -> list[str]:
        """Customers the full reservoir pushed out since the last call (least recently updated first)."""
        displaced, self._displaced = self._displaced, []
        return displaced

    def predict_one(self, x: Mapping[str, Any]) -> int:
        """The stable segment id of the centroid nearest to ``x`` (0 until seeded).

        A plain nearest-centroid answer for any vector; a held customer's
        published segment (which sticks, see ``stickiness``) is in :meth:`assignments`.
        """
        if self._centroids is None:
            return 0
        nearest, _ = _nearest(self._standardised(self._rows([x])), self._standardised(self._centroids))
        return self._ids.ids[int(nearest[0])]

    def assignments(self, customer_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Published segment id of the given (default: every) held customer; 0 until seeded.

        These are the (sticky) assignments made when each customer was last
        learned or refined: what the stream publishes, e.g. to republish after
        a refine. Customers the segmenter does not hold are left out.
        """
        ids = self._ids.ids
        wanted = self._slots if customer_ids is None else customer_ids
        segments = {}
        for customer_id in wanted:
            slot = self._slots.get(customer_id)
            if slot is not None:
                cluster = int(self._assigned[slot])
                segments[customer_id] = ids[cluster] if cluster >= 0 else 0
        return segments

    # -- refinement and scale-out --------------------------------------

    def refine(self, iterations: int = 1) -> None:
        """Run ``iterations`` Lloyd steps (with the reseed check) over the reservoir."""
        for _ in range(iterations):
            self.merge_stats([self.export_stats()])

    def export_stats(self) -> dict[str, Any]:
        """This worker's mergeable sufficient statistics (plain data, for the model-sync topic).

        Per-centroid sums and counts of the reservoir assigned to the current
        centroids, the reservoir's moments, its hash sample, and the current
        centroids, epoch and published ids.
        """
        model, version = self.STATS_TAG
        order = self._in_order()
        points = self._vectors[order] if len(order) else np.zeros((0, len(self._features or [])))
        moments = _moments(points)
        n = len(points)
        sample = np.argsort(self._hashes[order], kind="stable")[: self.sample_size]
        sums = counts = None
        if self._centroids is not None and n:
            nearest, _ = _nearest(self._standardised(points), self._standardised(self._centroids))
            sums, counts = _cluster_sums(points, nearest, self.k)
        return {
            "model": model,
            "version": version,
            "k": self.k,
            "features": self._features,
            "customers": n,
            "moments": _moments_state(moments),
            "sample": {"hashes": self._hashes[order][sample].tolist(), "vectors": points[sample].tolist()},
            "epoch": self._epoch,
            "centroids": None if self._centroids is None else self._centroids.tolist(),
            "sums": None if sums is None else sums.tolist(),
            "counts": None if counts is None else counts.tolist(),
            "ids": self._ids.state_dict(),
        }

    def merge_stats(self, stats: list[dict[str, Any]]) -> None:
        """Adopt the global model from every worker's :meth:`export_stats` (this one's included).

        Deterministic in the set of stats (their order does not matter), so all
        workers that merge the same round end with identical centroids and ids.
        """
        for part in stats:
            check_state_tag(part, *self.STATS_TAG)
            if part["k"] != self.k:
                raise ValueError(f"stats for k={part['k']} cannot merge into k={self.k}")
        parts = sorted(
            (part for part in stats if part["customers"] > 0),
            key=lambda part: (part["sample"]["hashes"][0], part["customers"]),
        )
        if not parts:
            return
        if self._features is None:
            self._features = list(parts[0]["features"])
            self._allocate_rows(0)
        if any(part["features"] != self._features for part in parts):
            raise ValueError("stats from segmenters with different features cannot merge")
        n, mean, std = _merge_moments(part["moments"] for part in parts)
        std[std <= TINY_STD] = 1.0
        hashes, first = np.unique(
            np.concatenate([np.array(part["sample"]["hashes"], dtype=np.uint64) for part in parts]),
            return_index=True,
        )
        sample_vectors = np.concatenate([np.array(part["sample"]["vectors"], dtype=float) for part in parts])
        sample = (sample_vectors[first[: self.sample_size]] - mean) / std
        rng = np.random.default_rng([self.seed, int.from_bytes(_digest(hashes[: self.sample_size]), "big")])
        candidate, candidate_inertia = min(
            (_lloyd(sample, _kmeans_plus_plus(sample, self.k, rng)) for _ in range(self.n_init)),
            key=lambda solution: solution[1],
        )
        seeded = [part for part in parts if part["centroids"] is not None]
        reference = max(seeded, key=lambda part: part["customers"]) if seeded else None
        centroids = candidate * std + mean
        epoch = _digest(centroids).hex()
        ids = StableSegmentIds()
        if reference is not None:
            ids = StableSegmentIds.from_state(reference["ids"])
            lineage = [part for part in seeded if part["epoch"] == reference["epoch"] and part["sums"] is not None]
            stepped = _means(
                np.sum([part["sums"] for part in lineage], axis=0),
                np.sum([part["counts"] for part in lineage], axis=0),
                np.array(reference["centroids"]),
            )
            polished, polished_inertia = _lloyd(sample, (stepped - mean) / std)
            if candidate_inertia >= (1.0 - self.reseed_gain) * polished_inertia:
                centroids, epoch = polished * std + mean, reference["epoch"]
        published = self._published_segments()
        ids.relabel(centroids, 1.0 / std**2)
        self._centroids, self._epoch, self._ids = centroids, epoch, ids
        self._mean, self._std = mean, std
        self._reassign(published)
        self._refines += 1

    def _published_segments(self) -> np.ndarray:
        """Each reservoir customer's segment id (-1: none yet), least recently updated first."""
        assigned = self._assigned[self._in_order()]
        if not self._ids.ids:
            return np.full(len(assigned), -1, dtype=np.int64)
        return np.where(assigned >= 0, np.array(self._ids.ids)[np.maximum(assigned, 0)], -1)

    def _reassign(self, published: np.ndarray) -> None:
        """Assign every reservoir customer to the new centroids (sticking to its segment id) and recount."""
        assert self._centroids is not None
        order = self._in_order()
        cluster_of = {segment: cluster for cluster, segment in enumerate(self._ids.ids)}
        previous = np.array([cluster_of.get(int(segment), -1) for segment in published], dtype=np.int64)
        d2 = _distances(self._standardised(self._vectors[order]), self._standardised(self._centroids))
        assigned = self._sticky(d2, previous)
        self._assigned[order] = assigned
        self._counts = np.bincount(assigned, minlength=self.k).astype(np.int64)

    # -- reading the model ---------------------------------------------

    def centroids(self, scaled: bool = False) -> dict[int, dict[str, float]]:
        """Segment id -> centroid, in the units of the learned vectors or standardised."""
        if self._centroids is None or self._features is None:
            return {}
        centroids = self._standardised(self._centroids) if scaled else self._centroids
        return {
            segment: dict(zip(self._features, centroid.tolist()))
            for segment, centroid in zip(self._ids.ids, centroids)
        }

    def feature_scale(self) -> dict[str, dict[str, float]]:
        """Population mean and standard deviation per feature, as of the last refine or sync."""
        if self._mean is None or self._std is None or self._features is None:
            return {"mean": {}, "std": {}}
        return {
            "mean": dict(zip(self._features, self._mean.tolist())),
            "std": dict(zip(self._features, self._std.tolist())),
        }

    def sizes(self) -> dict[int, int]:
        """Segment id -> number of this segmenter's customers in it (empty until seeded)."""
        if self._centroids is None:
            return {}
        return dict(zip(self._ids.ids, self._counts.tolist()))

    def standardise(self, vectors: Iterable[Mapping[str, float]]) -> np.ndarray:
        """Vectors as rows in the segmenter's standardised space (to compare with batch K-means)."""
        return self._standardised(self._rows(vectors))

    def inertia(self, vectors: Iterable[Mapping[str, float]]) -> float:
        """Sum of squared standardised distances from each vector to its nearest centroid."""
        if self._centroids is None:
            raise ValueError("the segmenter has no centroids yet")
        return float(_nearest(self.standardise(vectors), self._standardised(self._centroids))[1].sum())

    def metrics(self) -> dict[str, float]:
        """Customers held, vectors learned, refines run and the mean squared distance on arrival."""
        return {
            "customers": len(self._slots),
            "learned": self._learned,
            "refines": self._refines,
            "mean_sq_distance": self._arrival_distance.get(),
        }

    # -- checkpoints ---------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters, reservoir (least recent first), centroids, scale, ids."""
        model, version = self.STATE_TAG
        order = self._in_order()
        return {
            "model": model,
            "version": version,
            "params": self._params(),
            "features": self._features,
            "customers": list(self._slots),
            "vectors": self._vectors[order].tolist() if len(order) else [],
            "assigned": self._assigned[order].tolist(),
            "centroids": None if self._centroids is None else self._centroids.tolist(),
            "mean": None if self._mean is None else self._mean.tolist(),
            "std": None if self._std is None else self._std.tolist(),
            "epoch": self._epoch,
            "ids": self._ids.state_dict(),
            "learned": self._learned,
            "refines": self._refines,
            "arrival_distance": river_state(self._arrival_distance),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a segmenter from :meth:`state_dict` output (of this version or version 1)."""
        model, version = cls.STATE_TAG
        if state.get("model") == model and state.get("version") == 1:  # sums where version 2 has River's Mean
            count = state["distance_count"]
            mean = stats.Mean._from_state(count, state["distance_sum"] / count if count else 0.0)
            state = state | {"version": version, "arrival_distance": river_state(mean)}
        check_state_tag(state, *cls.STATE_TAG)
        segmenter = cls(**state["params"])
        if state["features"] is not None:
            segmenter._features = list(state["features"])
            segmenter._allocate_rows(len(state["customers"]))
        for customer_id, vector, cluster in zip(state["customers"], state["vectors"], state["assigned"]):
            slot = segmenter._slot_for(customer_id)
            segmenter._vectors[slot] = vector
            segmenter._assigned[slot] = cluster
        if state["centroids"] is not None:
            segmenter._centroids = np.array(state["centroids"], dtype=float)
            segmenter._mean = np.array(state["mean"], dtype=float)
            segmenter._std = np.array(state["std"], dtype=float)
            assigned = segmenter._assigned[segmenter._in_order()]
            segmenter._counts = np.bincount(assigned[assigned >= 0], minlength=segmenter.k).astype(np.int64)
        segmenter._epoch = state["epoch"]
        segmenter._ids = StableSegmentIds.from_state(state["ids"])
        segmenter._learned = state["learned"]
        segmenter._refines = state["refines"]
        segmenter._arrival_distance = from_river_state(state["arrival_distance"])
        return segmenter
