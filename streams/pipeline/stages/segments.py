"""Live segmentation: every feature update re-assigns its customer; sync rounds merge workers.

Per batch, the customers stage hands over the customers it touched; their
latest feature vectors (at the worker's event-time watermark) are learned in
one ``learn_many`` and their segment is published. Quiet customers are
re-learned by the customers stage's event-time sweep (their vectors at the
sweep's event time, so recency and decay reach them); of those, only the ones
whose segment moved are published. Customers the stage evicts, and those the
full reservoir pushes out, leave the segmenter and lose their served segment
key, so the served keys and ``segment:sizes`` (written with every update)
count the same customers. Every ``KAIROS_SEGMENT_SYNC_SECONDS`` a sync round
publishes this worker's sufficient statistics on the model-sync topic, merges
the latest statistics of every worker (exactly distributed Lloyd, stable ids)
and republishes profiles and every customer whose segment the merge moved.

The segmenter is rebuilt from the customers table and the synced statistics
after a restart or rebalance; its state is derived, not checkpointed: the
customer features are (exactly, in the changelog) and so is the merged model
(on the compacted model-sync topic), so a restarted worker resumes with the
same centroids and segment ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.segmentation import CustomerFeatures, Segmenter, profile_segments
from streams.pipeline.model_sync import ModelSync, SyncedState
from streams.settings import KairosSettings

log = logging.getLogger(__name__)

SYNC_KEY_PREFIX = "segments:"


@dataclass
class SegmentChange:
    """A customer moved from one segment to another (published on ``segment-changes``)."""

    customer_id: str
    previous: int
    current: int
    ts: float

    def to_event(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "from_segment": self.previous,
                "to_segment": self.current, "ts": self.ts}


@dataclass
class SegmentUpdate:
    """What a batch or a sync round publishes: customers' segments, the moves among them, and the
    customers that left the segmenter (their served segment key goes)."""

    segments: dict[str, int] = field(default_factory=dict)
    changes: list[SegmentChange] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def merge(self, other: SegmentUpdate) -> None:
        self.segments.update(other.segments)
        self.changes += other.changes
        self.removed += other.removed


def select_current(states: list[SyncedState]) -> list[SyncedState]:
    """The newest state per partition: a state counts only if no newer one claims any of its partitions."""
    claimed: set[int] = set()
    chosen = []
    for state in states:  # newest first
        partitions = set(state.payload["partitions"])
        if partitions & claimed:
            continue
        claimed |= partitions
        chosen.append(state)
    return chosen


class SegmentStage:
    """One worker's segmenter, fed by the customers stage and synced with the other workers."""

    def __init__(self, settings: KairosSettings, model_sync: ModelSync) -> None:
        self.settings = settings
        self.model_sync = model_sync
        self.segmenter = self._new_segmenter()
        self.now = float("-inf")
        self.rounds = 0
        #: Set while a sync round computes in a worker thread; batches then wait in ``_deferred``.
        self._syncing = False
        self._deferred: dict[str, dict[str, float]] = {}
        self._deferred_forget: list[str] = []
        #: Segment sizes of the other workers, as of their last sync.
        self._peer_sizes: dict[int, int] = {}

    def _new_segmenter(self) -> Segmenter:
        s = self.settings
        return Segmenter(k=s.segment_k, warmup=s.segment_warmup, capacity=s.segment_capacity,
                         refine_every=None, stickiness=s.segment_stickiness, features=CustomerFeatures.FEATURES)

    @property
    def seeded(self) -> bool:
        """True once the segmenter has centroids (before that, segment ids mean nothing)."""
        return bool(self.segmenter.sizes())

    def segment_of(self, customer_id: str) -> int | None:
        """The customer's published segment (None before seeding or for an unknown customer)."""
        if not self.seeded or self._syncing:
            return None
        return self.segmenter.assignments([customer_id]).get(customer_id)

    def observe(self, vectors: Mapping[str, dict[str, float]], now: float,
                refreshed: Mapping[str, dict[str, float]] | None = None) -> SegmentUpdate:
        """Learn the touched customers' latest vectors (and quiet customers' ``refreshed`` ones, in the
        same step); the touched customers' segments, the refreshed ones that moved, and any moves."""
        self.now = max(self.now, now)
        refreshed = {cid: vector for cid, vector in (refreshed or {}).items() if cid not in vectors}
        if not vectors and not refreshed:
            return SegmentUpdate()
        if self._syncing:  # the round's thread owns the segmenter: learn these when it is done
            self._deferred.update(refreshed)
            self._deferred.update(vectors)
            return SegmentUpdate()
        learned = {**refreshed, **vectors}
        was_seeded = self.seeded
        before = self.segmenter.assignments(learned) if was_seeded else {}
        self.segmenter.learn_many(learned)
        # The batch that seeds the segmenter publishes every customer it holds: those learned before
        # (during the warm-up) have no served segment yet, and none may wait for an event of theirs.
        after = self.segmenter.assignments(learned if was_seeded else None)
        update = self._update(before, after, changed_only=True)
        update.segments.update(self.segmenter.assignments(vectors) if self.seeded else {})
        update.removed = self.segmenter.displaced()
        return update

    def refill(self, vectors: Mapping[str, dict[str, float]], published: Mapping[str, int]) -> SegmentUpdate:
        """Put the customers of a fresh segmenter back (after a restart or rebalance) without moving the
        synced centroids, each sticking to its served segment (``published``); those whose segment moved."""
        before = dict(published)
        self.segmenter.hold_many(vectors, published)
        update = self._update(before, self.segmenter.assignments(vectors), changed_only=True)
        update.removed = self.segmenter.displaced()
        return update

    def forget(self, customer_ids: list[str]) -> None:
        """Evicted customers leave the segmenter (after the running sync round, if one is)."""
        if self._syncing:
            self._deferred_forget += customer_ids
        elif customer_ids:
            self.segmenter.forget(customer_ids)

    def sizes(self) -> dict[int, int]:
        """Customers per segment: this worker's now, the other workers' as of their last sync."""
        sizes = dict(self.segmenter.sizes())
        for segment, count in self._peer_sizes.items():
            sizes[segment] = sizes.get(segment, 0) + count
        return sizes

    def _update(self, before: dict[str, int], after: dict[str, int], changed_only: bool) -> SegmentUpdate:
        """Segments to publish (all of ``after``, or only those that moved) and the moves."""
        if not self.seeded:
            return SegmentUpdate()
        moved = {cid: segment for cid, segment in after.items() if before.get(cid) != segment}
        return SegmentUpdate(
            segments=moved if changed_only else after,
            changes=[SegmentChange(cid, before[cid], segment, self.now)
                     for cid, segment in moved.items() if cid in before],
        )

    async def sync(self, partitions: set[int]) -> SegmentUpdate:
        """A sync round of this worker (``partitions`` it owns now) with the other workers.

        The numerical part (export, merge) runs in a worker thread so batches
        keep flowing (their vectors are learned right after). A merge may move
        any customer the segmenter holds (new centroids, a reseed): every one
        that moved is published, so the served keys stay what the sizes count.
        """
        if self.now == float("-inf") or not self.segmenter.metrics()["customers"]:
            return SegmentUpdate()
        key = SYNC_KEY_PREFIX + ",".join(str(p) for p in sorted(partitions))
        peers = [s for s in select_current(self.model_sync.states(SYNC_KEY_PREFIX)) if s.key != key]
        self._syncing = True
        try:
            before, stats = await asyncio.to_thread(self._round, [p.payload["stats"] for p in peers])
        finally:
            self._syncing = False
        deferred, self._deferred = self._deferred, {}
        forgotten, self._deferred_forget = self._deferred_forget, []
        await self.model_sync.publish(key, {
            "partitions": sorted(partitions), "stats": stats,
            "sizes": {str(k): v for k, v in self.segmenter.sizes().items()}, "now": self.now,
        })
        self._peer_sizes = self._sizes_of([peer.payload for peer in peers])
        self.rounds += 1
        update = self._update(before, self.segmenter.assignments(), changed_only=True)
        self.forget(forgotten)
        if deferred:
            update.merge(self.observe(deferred, self.now))
        return update

    def _round(self, peers: list[dict[str, Any]]) -> tuple[dict, dict]:
        """Merge with the peers' statistics; the assignments before and our new stats."""
        before = self.segmenter.assignments() if self.seeded else {}
        self.segmenter.merge_stats([self.segmenter.export_stats()] + peers)
        return before, self.segmenter.export_stats()

    @staticmethod
    def _sizes_of(peers: list[dict[str, Any]]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for peer in peers:
            for segment, count in peer.get("sizes", {}).items():
                sizes[int(segment)] = sizes.get(int(segment), 0) + count
        return sizes

    def resume(self) -> None:
        """Seed a fresh segmenter from the latest synced statistics (after a restart or rebalance)."""
        self.segmenter = self._new_segmenter()
        stats = [state.payload["stats"] for state in select_current(self.model_sync.states(SYNC_KEY_PREFIX))]
        if stats:
            self.segmenter.merge_stats(stats)
            log.info("segments: resumed from %d synced worker states", len(stats))

    def profiles(self) -> list[dict[str, Any]]:
        """Readable profiles with population sizes (all workers), for the Redis view."""
        if not self.segmenter.sizes():
            return []
        sizes = self.sizes()
        profiles = []
        for profile in profile_segments(self.segmenter, updated_at=self.now):
            view = profile.to_dict()
            view["size"] = sizes.get(profile.segment_id, profile.size)
            view["published_at"] = time.time()
            profiles.append(view)
        return profiles

    def metrics(self) -> dict[str, float]:
        report = {f"segmenter_{k}": v for k, v in self.segmenter.metrics().items()}
        report["sync_rounds"] = self.rounds
        report["segments"] = len(self.segmenter.sizes())
        report["population"] = sum(self.sizes().values())
        return report
