"""Segment ids a marketer can rely on while centroids drift, reseed and merge."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from scipy.optimize import linear_sum_assignment

from models.base import check_state_tag


class StableSegmentIds:
    """Give each new set of centroids the ids of the published centroids they continue.

    :meth:`relabel` matches the new centroids to the previously published ones
    by Hungarian assignment on (weighted) squared distance, so a centroid keeps
    its id however the centroids are reordered or nudged: segment 3 stays
    segment 3. When ``k`` grows, unmatched centroids get fresh ids that were
    never used; when it shrinks, the ids of unmatched old centroids retire.
    Memory: the ``k`` published centroids and their ids.

    >>> import numpy as np
    >>> ids = StableSegmentIds()
    >>> ids.relabel(np.array([[0.0, 0.0], [10.0, 10.0], [0.0, 10.0]]))
    [0, 1, 2]
    >>> ids.relabel(np.array([[0.5, 9.5], [9.0, 10.5], [0.2, -0.3]]))
    [2, 1, 0]
    """

    STATE_TAG: ClassVar[tuple[str, int]] = ("StableSegmentIds", 1)

    def __init__(self) -> None:
        self.centroids: np.ndarray | None = None
        #: ``ids[i]`` is the published id of ``centroids[i]``.
        self.ids: list[int] = []
        self.next_id = 0

    def relabel(self, centroids: np.ndarray, weights: np.ndarray | None = None) -> list[int]:
        """Ids for ``centroids`` (one row each), which become the published reference.

        ``weights`` scales each coordinate's squared difference (e.g. inverse
        variances, so matching happens in standardised units); default 1.
        """
        centroids = np.array(centroids, dtype=float)
        if self.centroids is None or len(self.centroids) == 0:
            ids = list(range(self.next_id, self.next_id + len(centroids)))
        else:
            w = np.ones(centroids.shape[1]) if weights is None else np.asarray(weights, dtype=float)
            cost = (((centroids[:, None, :] - self.centroids[None, :, :]) ** 2) * w).sum(axis=2)
            rows, cols = linear_sum_assignment(cost)
            matched = dict(zip(rows.tolist(), cols.tolist()))
            fresh = iter(range(self.next_id, self.next_id + len(centroids)))
            ids = [self.ids[matched[i]] if i in matched else next(fresh) for i in range(len(centroids))]
        self.next_id = max([self.next_id, *(i + 1 for i in ids)])
        self.centroids = centroids
        self.ids = ids
        return list(ids)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: the published centroids, their ids and the next fresh id."""
        model, version = self.STATE_TAG
        return {
            "model": model,
            "version": version,
            "centroids": None if self.centroids is None else self.centroids.tolist(),
            "ids": list(self.ids),
            "next_id": self.next_id,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output."""
        check_state_tag(state, *cls.STATE_TAG)
        stable = cls()
        if state["centroids"] is not None:
            stable.centroids = np.array(state["centroids"], dtype=float)
        stable.ids = [int(i) for i in state["ids"]]
        stable.next_id = int(state["next_id"])
        return stable
